//! A stream-combinator dataflow library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod log;
pub mod partitioner;
pub mod record;

pub use codec::{Codec, CodecError};
pub use log::{EmbeddedLog, LogError, TopicConfig};
pub use record::{ConsumedRecord, Headers, Origin, RawRecord, Record, Timestamp, TopicPartition};
