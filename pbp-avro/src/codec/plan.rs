//! How to read data written with a given writer schema into a record type.

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::RecordSchema;
use apache_avro::schema_compatibility::SchemaCompatibility;

use super::CodecBuildError;
use crate::model::AvroRecord;

/// The record type's own schema, parsed for both Avro libraries.
pub(crate) struct ReaderSchema {
    pub(crate) fast: Arc<serde_avro_fast::Schema>,
    pub(crate) avro: Schema,
}

impl ReaderSchema {
    pub(crate) fn of<T: AvroRecord>() -> Result<Self, CodecBuildError> {
        let error = |reason: String| CodecBuildError::Schema { record: T::FULL_NAME, reason };
        Ok(Self {
            fast: Arc::new(T::SCHEMA.parse().map_err(|e: serde_avro_fast::schema::SchemaError| error(e.to_string()))?),
            avro: Schema::parse_str(T::SCHEMA).map_err(|e| error(e.to_string()))?,
        })
    }
}

/// How data written with one schema id is read.
pub enum ReadPlan {
    /// Deserialize the struct straight from the bytes, walking the writer's schema. Used for the reader's own
    /// schema, and for a writer schema whose differences serde resolves exactly as Avro would: writer fields
    /// the reader lacks (skipped) and reader fields the writer lacks whose default is `null` (`None`).
    Direct(Arc<serde_avro_fast::Schema>),
    /// Full Avro schema resolution (defaults, promotions, union changes) through apache-avro's value tree,
    /// then into the struct: slower, used only when the writer's schema needs more than `Direct` does.
    Resolve(Box<Schema>),
    /// Data with this schema cannot be read as the record; the reason is kept for each failing message.
    Unreadable(String),
}

impl ReadPlan {
    /// Chooses the plan for data written with `writer` (schema text) read as `reader`. `Err` if the writer
    /// schema is invalid or cannot be resolved to the reader's.
    pub(crate) fn new(writer: &str, reader: &ReaderSchema) -> Result<Self, String> {
        let writer_avro = Schema::parse_str(writer).map_err(|e| format!("invalid writer schema: {e}"))?;
        if writer_avro.canonical_form() == reader.avro.canonical_form() {
            return Ok(Self::Direct(reader.fast.clone()));
        }
        SchemaCompatibility::can_read(&writer_avro, &reader.avro).map_err(|e| e.to_string())?;
        if serde_resolves_exactly(&writer_avro, &reader.avro) {
            let fast: serde_avro_fast::Schema =
                writer.parse().map_err(|e: serde_avro_fast::schema::SchemaError| e.to_string())?;
            Ok(Self::Direct(Arc::new(fast)))
        } else {
            Ok(Self::Resolve(Box::new(writer_avro)))
        }
    }

    /// A short name of the plan, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Direct(_) => "direct",
            Self::Resolve(_) => "resolve",
            Self::Unreadable(_) => "unreadable",
        }
    }

    pub(crate) fn decode<T: AvroRecord>(&self, payload: &[u8], reader: &ReaderSchema) -> Result<T, String> {
        match self {
            Self::Direct(schema) => {
                // Reading from the slice as a `BufRead` tells us what is left afterwards (trailing bytes are
                // an error). No length inside a datum can exceed the datum: cap allocations to its size, so a
                // forged length prefix cannot make us allocate more than the message.
                let mut read = serde_avro_fast::de::read::ReaderRead::new(payload);
                read.max_alloc_size = payload.len();
                let mut state = serde_avro_fast::de::DeserializerState::new(read, schema);
                let value = serde::Deserialize::deserialize(state.deserializer()).map_err(|e| e.to_string())?;
                let rest = state.into_reader().into_inner();
                if rest.is_empty() { Ok(value) } else { Err(format!("{} trailing bytes after the record", rest.len())) }
            }
            Self::Resolve(writer) => {
                let mut rest = payload;
                let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
                    .reader_schema(&reader.avro)
                    .build()
                    .and_then(|r| r.read_value(&mut rest))
                    .map_err(|e| e.to_string())?;
                if !rest.is_empty() {
                    return Err(format!("{} trailing bytes after the record", rest.len()));
                }
                apache_avro::from_value(&value).map_err(|e| e.to_string())
            }
            Self::Unreadable(reason) => Err(reason.clone()),
        }
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
