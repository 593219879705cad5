//! A stream-combinator dataflow library.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod record;

pub use codec::{Codec, CodecError};
pub use record::{ConsumedRecord, Headers, Origin, RawRecord, Record, Timestamp, TopicPartition};
