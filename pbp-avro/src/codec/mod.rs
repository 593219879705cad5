//! [`AvroCodec`]: typed records in the Confluent wire format, plugged into pbp-dataflow's codec seam.

pub(crate) mod binary;
mod plan;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use pbp_dataflow::codec::Prepared;
use pbp_dataflow::{Codec, CodecError};

use crate::model::AvroRecord;
use crate::registry::{RegistryError, SchemaRegistry, value_subject};
use crate::wire;

#[cfg(test)]
pub(crate) use plan::limit_allocations;
pub use plan::{MAX_ALLOCATION_BYTES, ReadPlan};

/// The format name in this codec's errors.
const AVRO: &str = "avro";

/// Encodes `T` as Confluent-framed Avro with `T`'s schema, and decodes what it finds: Avro framed with any
/// schema id the registry knows (resolved to `T`'s schema), or, when the first byte is not the magic byte,
/// JSON of `T` (turned off with [`AvroCodec::without_json_fallback`]).
///
/// Encoding and decoding go straight between the struct and Avro bytes, without apache-avro's intermediate
/// `Value` tree: through pbp-avro's schema-free binary serde for records that mirror their schema
/// ([`AvroRecord::MIRRORS_SCHEMA`], our four records), else through apache-avro's schema-aware serde. Each writer schema is fetched once and cached with its
/// [`ReadPlan`] by id; see `docs/avro.md` for the decision rules.
///
/// Decoding never panics: bad bytes are a [`CodecError::Invalid`] whose message says what was wrong (for the
/// dead-letter queue).
pub struct AvroCodec<T> {
    registry: Arc<dyn SchemaRegistry>,
    schema_id: u32,
    reader: Arc<plan::ReaderSchema>,
    plans: RwLock<HashMap<u32, Arc<ReadPlan>>>,
    json_fallback: bool,
    _record: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for AvroCodec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroCodec")
            .field("schema_id", &self.schema_id)
            .field("record", &std::any::type_name::<T>())
            .field("json_fallback", &self.json_fallback)
            .finish()
    }
}

/// Why a codec could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CodecBuildError {
    /// The record's own schema does not parse (a bug in its `.avsc`).
    #[error("schema of {record} does not parse: {reason}")]
    Schema {
        /// The record's full name.
        record: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// The registry refused or could not be reached.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl<T: AvroRecord> AvroCodec<T> {
    /// A codec for the values of `topic`: registers `T`'s schema under `<topic>-value` (compatibility checked
    /// first) and writes with the id it gets.
    pub async fn for_topic(registry: Arc<dyn SchemaRegistry>, topic: &str) -> Result<Self, CodecBuildError> {
        Self::for_subject(registry, &value_subject(topic)).await
    }

    /// A codec that registers `T`'s schema under `subject`.
    pub async fn for_subject(registry: Arc<dyn SchemaRegistry>, subject: &str) -> Result<Self, CodecBuildError> {
        let reader = Arc::new(plan::ReaderSchema::of::<T>()?);
        let schema_id = registry.register(subject, T::SCHEMA).await?;
        tracing::debug!(subject, schema_id, record = T::FULL_NAME, "avro codec ready");
        Self::with_reader(registry, schema_id, reader)
    }

    /// A codec that writes with `schema_id`, which the caller knows to be `T`'s schema in `registry`.
    pub fn with_schema_id(registry: Arc<dyn SchemaRegistry>, schema_id: u32) -> Result<Self, CodecBuildError> {
        Self::with_reader(registry, schema_id, Arc::new(plan::ReaderSchema::of::<T>()?))
    }

    fn with_reader(
        registry: Arc<dyn SchemaRegistry>,
        schema_id: u32,
        reader: Arc<plan::ReaderSchema>,
    ) -> Result<Self, CodecBuildError> {
        let own = if T::MIRRORS_SCHEMA {
            ReadPlan::Mirror
        } else {
            ReadPlan::own(&reader).map_err(|reason| CodecBuildError::Schema { record: T::FULL_NAME, reason })?
        };
        let plans = HashMap::from([(schema_id, Arc::new(own))]);
        Ok(Self { registry, schema_id, reader, plans: RwLock::new(plans), json_fallback: true, _record: PhantomData })
    }

    /// Refuse bytes without the magic byte instead of trying JSON.
    pub fn without_json_fallback(mut self) -> Self {
        self.json_fallback = false;
        self
    }

    /// The schema id this codec writes with.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// The plan for reading data written with `id`: cached, or built from what the registry knows without
    /// waiting ([`SchemaRegistry::schema_at_hand`]). Otherwise [`CodecError::Unavailable`]: decoding never blocks on
    /// a lookup (it runs on the async threads); [`Codec::prepare`] fetches the schema.
    pub fn plan(&self, id: u32) -> Result<Arc<ReadPlan>, CodecError> {
        if let Some(plan) = self.plans.read().get(&id) {
            return Ok(plan.clone());
        }
        match self.registry.schema_at_hand(id) {
            Some(answer) => self.adopt_answer(id, answer),
            None => Err(CodecError::unavailable(AVRO, format!("writer schema {id} is not fetched yet"))),
        }
    }

    /// Fetches the writer schema `id` from the registry if it is not known yet. A registry that cannot be reached
    /// (after its client's retries) is [`CodecError::Unavailable`]; an id the registry does not know is remembered
    /// as unreadable, so that decoding the record fails and it is dead-lettered.
    pub async fn fetch_plan(&self, id: u32) -> Result<Arc<ReadPlan>, CodecError> {
        if let Some(plan) = self.plans.read().get(&id) {
            return Ok(plan.clone());
        }
        let answer = self.registry.schema_by_id(id).await;
        self.adopt_answer(id, answer)
    }

    /// The plan for the registry's answer about schema `id`: a transient failure is [`CodecError::Unavailable`]
    /// (nothing is remembered); a schema or a final refusal becomes a cached plan.
    fn adopt_answer(&self, id: u32, answer: Result<Arc<str>, RegistryError>) -> Result<Arc<ReadPlan>, CodecError> {
        match answer {
            Ok(writer) => Ok(self.adopt(id, &writer)),
            Err(e) if e.is_transient() => Err(CodecError::unavailable(AVRO, format!("writer schema {id}: {e}"))),
            Err(e) => {
                tracing::warn!(schema_id = id, record = T::FULL_NAME, error = %e, "writer schema unreadable");
                let plan = Arc::new(ReadPlan::Unreadable(format!("writer schema {id}: {e}")));
                Ok(self.plans.write().entry(id).or_insert(plan).clone())
            }
        }
    }

    /// Builds, caches and returns the plan for reading `writer` (schema `id`) as `T`.
    fn adopt(&self, id: u32, writer: &str) -> Arc<ReadPlan> {
        let plan = match ReadPlan::new::<T>(writer, &self.reader) {
            Ok(plan) => plan,
            Err(reason) => ReadPlan::Unreadable(format!("schema {id} cannot be read as {}: {reason}", T::FULL_NAME)),
        };
        tracing::info!(schema_id = id, record = T::FULL_NAME, plan = plan.kind(), "writer schema resolved");
        let plan = Arc::new(plan);
        self.plans.write().entry(id).or_insert(plan).clone()
    }

    /// Encodes `value` as framed Avro into `buf` (cleared first). Reusing `buf` avoids an allocation per
    /// record.
    pub fn encode_into(&self, value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        buf.clear();
        wire::write_header(buf, self.schema_id);
        if T::MIRRORS_SCHEMA {
            *buf = binary::to_vec(value, std::mem::take(buf)).map_err(|e| CodecError::encode(AVRO, e))?;
        } else {
            self.reader.writer.write_ser(buf, value).map_err(|e| CodecError::encode(AVRO, e))?;
        }
        Ok(())
    }

    /// Decodes framed Avro, or JSON when allowed and the first byte is not the magic byte.
    pub fn decode_slice(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (id, payload) = match wire::split(bytes) {
            Ok(framed) => framed,
            Err(_) if self.json_fallback && bytes.first() != Some(&wire::MAGIC) => {
                return serde_json::from_slice(bytes).map_err(|e| {
                    CodecError::invalid(
                        "json",
                        format!("no Confluent Avro header, and not JSON of {}: {e}", T::FULL_NAME),
                    )
                });
            }
            Err(e) => return Err(CodecError::invalid(AVRO, e)),
        };
        self.plan(id)?.decode::<T>(payload).map_err(|e| CodecError::invalid(AVRO, format!("schema {id}: {e}")))
    }
}

impl<T: AvroRecord> Codec<T> for AvroCodec<T> {
    fn encode(&self, value: &T) -> Result<Option<Bytes>, CodecError> {
        let mut buf = Vec::with_capacity(256);
        self.encode_into(value, &mut buf)?;
        Ok(Some(Bytes::from(buf)))
    }

    fn decode(&self, bytes: Option<&Bytes>) -> Result<T, CodecError> {
        self.decode_slice(bytes.ok_or(CodecError::Null)?)
    }

    /// Fetches the writer schema the bytes name when it is not known yet (see [`fetch_plan`](Self::fetch_plan)).
    fn prepare<'a>(&'a self, bytes: Option<&'a Bytes>) -> Prepared<'a> {
        Box::pin(async move {
            match bytes.map(|b| wire::split(b)) {
                Some(Ok((id, _))) => self.fetch_plan(id).await.map(drop),
                // Nothing to fetch for null, JSON or unframed bytes: decoding tells what is wrong with them.
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests;
