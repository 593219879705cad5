//! Avro schemas and the Confluent wire format. Filled by the pbp-avro issue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
