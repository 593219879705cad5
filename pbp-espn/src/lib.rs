//! ESPN basketball ingestion. Filled by the pbp-espn issue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
