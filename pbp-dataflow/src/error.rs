//! The pipeline error type.

use crate::codec::CodecError;
use crate::outcome::Rejection;
use crate::record::Origin;
use crate::transport::{BoxError, TransportError};

/// Why a pipeline stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A stage answered `Fail` for a record.
    #[error("stage {stage:?} failed{}", origin_suffix(.origin))]
    StageFailed {
        /// Stage name.
        stage: String,
        /// The record being processed, if it came from a topic.
        origin: Option<Origin>,
        /// The error.
        #[source]
        source: BoxError,
    },
    /// A record was rejected and the pipeline has no dead-letter queue.
    #[error("record{} rejected by stage {stage:?} and no dead-letter queue is configured: {reason}", origin_suffix(.origin))]
    RejectedWithoutDlq {
        /// Stage name.
        stage: String,
        /// The record, if it came from a topic.
        origin: Option<Origin>,
        /// The rejection message.
        reason: String,
    },
    /// The dead-letter limit was exceeded: the pipeline stops rather than dead-letter everything.
    #[error("dead-letter limit exceeded: {0}")]
    DlqLimitExceeded(String),
    /// A state or table record could not be decoded during restoration or bootstrap.
    #[error("cannot restore {what} from {origin}")]
    Restore {
        /// The store or table.
        what: String,
        /// The changelog record.
        origin: Origin,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// The pipeline is wired in a way that cannot work.
    #[error("invalid pipeline: {0}")]
    Config(String),
    /// A sink failed as a whole (not one record).
    #[error("sink {sink:?} failed")]
    Sink {
        /// Sink name.
        sink: String,
        /// The error.
        #[source]
        source: BoxError,
    },
}

fn origin_suffix(origin: &Option<Origin>) -> String {
    origin.as_ref().map(|o| format!(" at {o}")).unwrap_or_default()
}

impl Error {
    pub(crate) fn rejected(rejection: &Rejection, origin: Option<Origin>) -> Self {
        Self::RejectedWithoutDlq { stage: rejection.stage.to_string(), origin, reason: rejection.to_string() }
    }
}
