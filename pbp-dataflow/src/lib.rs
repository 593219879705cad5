//! A stream-combinator dataflow library.
//!
//! Pipelines read records from a [`Source`](source::Source), pass them through a chain of
//! [`Operator`](operator::Operator)s and write them to a [`Sink`](sink::Sink). The same pipeline runs on the
//! in-process [`EmbeddedLog`] or on Kafka, chosen by the [`Transport`] it is given.
//!
//! ```
//! use std::sync::Arc;
//! use pbp_dataflow::codec::{BigEndian, Json, Utf8};
//! use pbp_dataflow::operator::aggregate::StateStore;
//! use pbp_dataflow::operator::join::GlobalTable;
//! use pbp_dataflow::pipeline::Dataflow;
//! use pbp_dataflow::sink::TopicSink;
//! use pbp_dataflow::source::TopicSource;
//! use pbp_dataflow::{DeadLetterQueue, EmbeddedLog, EmbeddedTransport};
//!
//! let transport = Arc::new(EmbeddedTransport::new(EmbeddedLog::new()));
//! let teams: GlobalTable<String, String> = GlobalTable::new("teams", Utf8, Utf8);
//! let totals: StateStore<String, u64> = StateStore::new("points-by-team", Utf8, BigEndian);
//! let pipeline = Dataflow::new("points", transport)
//!     .source(TopicSource::new("plays", "points", Utf8, Json::<u64>::new()))
//!     .filter(|r| r.value > 0)
//!     .join_global(&teams, |r| Some(r.key.clone()), |points, _team_name| points)
//!     .aggregate_by_key(&totals, |total, r| {
//!         *total += r.value;
//!         Ok(())
//!     })
//!     .to(TopicSink::new("team-points", Utf8, BigEndian))
//!     .with_dlq(DeadLetterQueue::new("dlq.points"));
//! assert_eq!(pipeline.stage_names().len(), 3);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod dlq;
mod error;
pub mod log;
pub mod metrics;
pub mod operator;
pub mod outcome;
pub mod partitioner;
pub mod pipeline;
pub mod record;
pub mod sink;
pub mod source;
pub mod testing;
pub mod transport;

pub use codec::{Codec, CodecError};
pub use dlq::{DeadLetterQueue, DlqLimit};
pub use error::Error;
pub use log::{EmbeddedLog, LogError, TopicConfig};
pub use metrics::DataflowMetrics;
pub use outcome::{Outcome, Rejection};
pub use pipeline::{Dataflow, Pipeline, PipelineConfig, Shutdown};
pub use record::{ConsumedRecord, Headers, Origin, RawRecord, Record, Timestamp, TopicPartition};
pub use transport::{EmbeddedTransport, Transport, TransportConfig, TransportError};
