//! Avro for Play-by-Play: the four event schemas, the Confluent wire format and schema registries.
//!
//! * [`model`]: the typed records [`PlayEvent`], [`ScoreboardEvent`], [`EnrichedEvent`] and [`GameState`],
//!   each matching one `.avsc` file under `pbp-avro/schemas/`.
//! * [`wire`]: the Confluent framing (magic byte `0`, 4-byte big-endian schema id, Avro binary).
//! * [`codec`]: [`AvroCodec`], a [`pbp_dataflow::Codec`] that writes that framing and reads it back, with
//!   writer-schema resolution by id and a JSON fallback for bytes without the magic byte.
//! * [`registry`]: the [`SchemaRegistry`] trait, a Confluent REST client ([`registry::HttpRegistry`]), an
//!   in-process registry ([`registry::EmbeddedRegistry`]) and the registry core that `pbp schema-registry`
//!   serves ([`registry::RegistryApi`]).
//!
//! ```
//! use std::sync::Arc;
//! use pbp_avro::{AvroCodec, PlayEvent, registry::EmbeddedRegistry};
//! use pbp_dataflow::Codec;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Arc::new(EmbeddedRegistry::new());
//! let codec = AvroCodec::<PlayEvent>::for_topic(registry, "raw.plays").await?;
//! let play = PlayEvent::example();
//! let bytes = codec.encode(&play)?;
//! assert_eq!(bytes.as_ref().map(|b| b[0]), Some(0)); // the magic byte
//! assert_eq!(codec.decode(bytes.as_ref())?, play);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod model;
pub mod registry;
pub mod wire;

pub use codec::AvroCodec;
pub use model::{
    AvroRecord, ChangeKind, Coordinate, EnrichedEvent, GameState, GameStatus, PeriodFormat, PlayEvent, ScoreboardEvent,
    Side, TeamCounters, TeamInfo,
};
pub use registry::{Compatibility, RegistryError, SchemaRegistry};
pub use wire::WireError;
