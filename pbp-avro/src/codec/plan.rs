//! How to read data written with a given writer schema into a record type.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::RecordSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::writer::datum::GenericDatumWriter;

use super::CodecBuildError;
use crate::model::AvroRecord;

/// Largest allocation apache-avro may make for one length-prefixed value while decoding (its default is
/// 512 MiB). The limit is process-wide in apache-avro and can be set once: pbp-avro sets it when the first
/// codec is built, unless the application did before.
pub const MAX_ALLOCATION_BYTES: usize = 16 * 1024 * 1024;

/// Sets apache-avro's process-wide allocation limit to [`MAX_ALLOCATION_BYTES`] unless it is already set.
pub(crate) fn limit_allocations() {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
}

/// Schemas parsed once per process and kept for its lifetime, by canonical form, so that readers and writers
/// holding a `&'static Schema` can be cached inside codecs. Bounded by the number of distinct schemas seen.
fn intern(schema: Schema) -> &'static Schema {
    static SCHEMAS: OnceLock<Mutex<HashMap<String, &'static Schema>>> = OnceLock::new();
    let mut map = SCHEMAS.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(schema.canonical_form()).or_insert_with(|| Box::leak(Box::new(schema)))
}

fn parse(text: &str) -> Result<&'static Schema, String> {
    Schema::parse_str(text).map(intern).map_err(|e| e.to_string())
}

/// The record type's own schema, with a writer and a reader built on it once.
pub(crate) struct ReaderSchema {
    pub(crate) schema: &'static Schema,
    pub(crate) writer: GenericDatumWriter<'static>,
}

impl ReaderSchema {
    pub(crate) fn of<T: AvroRecord>() -> Result<Self, CodecBuildError> {
        limit_allocations();
        let error = |reason: String| CodecBuildError::Schema { record: T::FULL_NAME, reason };
        let schema = parse(T::SCHEMA).map_err(error)?;
        // Values come from our own structs, whose shape the model tests check against the schema.
        let writer = GenericDatumWriter::builder(schema).validate(false).build().map_err(|e| error(e.to_string()))?;
        Ok(Self { schema, writer })
    }
}

/// How data written with one schema id is read.
pub enum ReadPlan {
    /// The record's own schema, for a record that mirrors it: pbp-avro's binary decoder, no schema walk.
    Mirror,
    /// Deserialize the struct straight from the bytes with serde, walking the writer's schema. Used for the
    /// reader's own schema, and for a writer schema whose differences serde resolves exactly as Avro would:
    /// writer fields the reader lacks (skipped) and reader fields the writer lacks whose default is `null`
    /// (`None`).
    Direct(Box<GenericDatumReader<'static>>),
    /// Full Avro schema resolution (defaults, promotions, union changes) through apache-avro's value tree,
    /// then into the struct: slower, used only when the writer's schema needs more than `Direct` does.
    Resolve(Box<GenericDatumReader<'static>>),
    /// Data with this schema cannot be read as the record; the reason is kept for each failing message.
    Unreadable(String),
}

impl ReadPlan {
    /// The plan for the reader's own schema.
    pub(crate) fn own(reader: &ReaderSchema) -> Result<Self, String> {
        Self::direct(reader.schema)
    }

    fn direct(writer: &'static Schema) -> Result<Self, String> {
        Ok(Self::Direct(Box::new(GenericDatumReader::builder(writer).build().map_err(|e| e.to_string())?)))
    }

    /// Chooses the plan for data written with `writer` (schema text) read as `reader`. `Err` if the writer
    /// schema is invalid or cannot be resolved to the reader's.
    pub(crate) fn new<T: AvroRecord>(writer: &str, reader: &ReaderSchema) -> Result<Self, String> {
        let writer = parse(writer).map_err(|e| format!("invalid writer schema: {e}"))?;
        if std::ptr::eq(writer, reader.schema) {
            return if T::MIRRORS_SCHEMA { Ok(Self::Mirror) } else { Self::own(reader) };
        }
        SchemaCompatibility::can_read(writer, reader.schema).map_err(|e| e.to_string())?;
        if serde_resolves_exactly(writer, reader.schema) {
            Self::direct(writer)
        } else {
            let resolving =
                GenericDatumReader::builder(writer).reader_schema(reader.schema).build().map_err(|e| e.to_string())?;
            Ok(Self::Resolve(Box::new(resolving)))
        }
    }

    /// A short name of the plan, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mirror => "mirror",
            Self::Direct(_) => "direct",
            Self::Resolve(_) => "resolve",
            Self::Unreadable(_) => "unreadable",
        }
    }

    pub(crate) fn decode<T: AvroRecord>(&self, payload: &[u8]) -> Result<T, String> {
        let mut rest = payload;
        let value = match self {
            Self::Mirror => {
                let (value, left) = super::binary::from_slice::<T>(payload).map_err(|e| e.to_string())?;
                rest = &payload[payload.len() - left..];
                value
            }
            Self::Direct(reader) => reader.read_deser::<T>(&mut rest).map_err(|e| e.to_string())?,
            Self::Resolve(reader) => {
                let value = reader.read_value(&mut rest).map_err(|e| e.to_string())?;
                apache_avro::from_value(&value).map_err(|e| e.to_string())?
            }
            Self::Unreadable(reason) => return Err(reason.clone()),
        };
        if rest.is_empty() { Ok(value) } else { Err(format!("{} trailing bytes after the record", rest.len())) }
    }
}

/// True when deserializing the reader's struct with the writer's schema gives what Avro resolution gives:
/// both are records with the same name; every field in both has the same type (compared by canonical form,
/// nested records included); every reader field missing from the writer is a `["null", ...]` union with
/// default `null` (serde fills `Option` fields with `None`). Writer-only fields are skipped by serde.
fn serde_resolves_exactly(writer: &Schema, reader: &Schema) -> bool {
    let (
        Schema::Record(RecordSchema { name: wn, fields: wf, .. }),
        Schema::Record(RecordSchema { name: rn, fields: rf, .. }),
    ) = (writer, reader)
    else {
        return false;
    };
    if wn != rn {
        return false;
    }
    rf.iter().all(|r| match wf.iter().find(|w| w.name == r.name) {
        Some(w) => w.schema.canonical_form() == r.schema.canonical_form(),
        None => {
            matches!(&r.schema, Schema::Union(u) if matches!(u.variants().first(), Some(Schema::Null)))
                && r.default.as_ref().is_some_and(serde_json::Value::is_null)
        }
    })
}
