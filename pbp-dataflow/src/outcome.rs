//! What becomes of each record at a stage.

use std::borrow::Cow;
use std::sync::Arc;

use crate::transport::BoxError;

/// The outcome of a stage for one record.
///
/// Every record a source delivers ends in exactly one of these, and its offset is committed only once that
/// end is safe: an emitted record once the sink has acknowledged it, a dropped record at once, a rejected
/// record once its dead-letter copy is acknowledged. `Fail` stops the pipeline before the record's offset is
/// committed, so the record is delivered again after a restart.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Pass the record on.
    Emit(T),
    /// Filter the record out; its offset still advances.
    Drop,
    /// Send the record to the dead-letter queue with a reason; processing goes on.
    Reject(Rejection),
    /// Stop the pipeline: something is wrong that retrying the same record will not fix by skipping it.
    Fail(Failure),
}

impl<T> Outcome<T> {
    /// Maps the emitted value.
    #[inline]
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Emit(t) => Outcome::Emit(f(t)),
            Outcome::Drop => Outcome::Drop,
            Outcome::Reject(r) => Outcome::Reject(r),
            Outcome::Fail(e) => Outcome::Fail(e),
        }
    }

    /// Chains another stage on an emitted value.
    #[inline]
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Outcome<U>) -> Outcome<U> {
        match self {
            Outcome::Emit(t) => f(t),
            Outcome::Drop => Outcome::Drop,
            Outcome::Reject(r) => Outcome::Reject(r),
            Outcome::Fail(e) => Outcome::Fail(e),
        }
    }

    /// True for [`Outcome::Emit`].
    pub fn is_emit(&self) -> bool {
        matches!(self, Outcome::Emit(_))
    }
}

/// Why a record was rejected: the KIP-1034 dead-letter headers are built from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The stage that rejected the record; filled in by the pipeline when left empty.
    pub stage: Arc<str>,
    /// The kind of error (`__streams.errors.exception`), e.g. an error type name.
    pub exception: Cow<'static, str>,
    /// A human-readable reason (`__streams.errors.message`).
    pub message: String,
}

impl Rejection {
    /// A rejection with an error kind and message; the stage is filled in by the pipeline.
    pub fn new(exception: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { stage: Arc::from(""), exception: exception.into(), message: message.into() }
    }

    /// A rejection from an error: its type name is the exception, its display (with sources) the message.
    pub fn from_error<E: std::error::Error + ?Sized>(error: &E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Self::new(short_type_name::<E>(), message)
    }

    pub(crate) fn with_stage_if_empty(mut self, stage: &Arc<str>) -> Self {
        if self.stage.is_empty() {
            self.stage = stage.clone();
        }
        self
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.exception, self.message)
    }
}

/// Why a stage stopped the pipeline.
#[derive(Debug)]
pub struct Failure {
    /// The stage; filled in by the pipeline when left empty.
    pub stage: Arc<str>,
    /// The error.
    pub error: BoxError,
}

impl Failure {
    /// A failure from an error.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self { stage: Arc::from(""), error: error.into() }
    }
}

pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Keep generic arguments readable: strip module paths only from the outer name.
    let outer = full.split('<').next().unwrap_or(full);
    let start = outer.rfind("::").map_or(0, |i| i + 2);
    &full[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::num::ParseIntError);

    #[test]
    fn rejection_from_error_names_type_and_chain() {
        let inner = "x".parse::<u32>().unwrap_err();
        let r = Rejection::from_error(&Outer(inner));
        assert_eq!(r.exception, "Outer");
        assert_eq!(r.message, "outer: invalid digit found in string");
        assert_eq!(r.with_stage_if_empty(&Arc::from("parse")).stage.as_ref(), "parse");
    }

    #[test]
    fn outcome_chains() {
        let o: Outcome<u32> = Outcome::Emit(2);
        assert!(matches!(o.map(|x| x * 2).and_then(|x| Outcome::Emit(x + 1)), Outcome::Emit(5)));
        let d: Outcome<u32> = Outcome::Drop;
        assert!(matches!(d.map(|x| x + 1), Outcome::Drop));
    }
}
