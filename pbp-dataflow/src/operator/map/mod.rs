//! One-to-one transformations: [`MapValues`], [`MapRecord`], [`TryMapValues`] and the general [`ProcessFn`].

use std::marker::PhantomData;

use super::Operator;
use crate::outcome::{Outcome, Rejection};
use crate::record::Record;

/// Replaces each value with `f(value)`, keeping key, timestamp, headers and origin.
pub struct MapValues<F, V2> {
    f: F,
    _out: PhantomData<fn() -> V2>,
}

impl<F, V2> MapValues<F, V2> {
    /// A value map.
    pub fn new(f: F) -> Self {
        Self { f, _out: PhantomData }
    }
}

impl<K, V, V2, F> Operator<K, V> for MapValues<F, V2>
where
    K: Send + 'static,
    V: Send + 'static,
    V2: Send + 'static,
    F: FnMut(V) -> V2 + Send,
{
    type OutKey = K;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V2>> {
        Outcome::Emit(record.map_value(&mut self.f))
    }
}

/// Replaces each record with `f(record)`; may change key and value.
pub struct MapRecord<F, K2, V2> {
    f: F,
    _out: PhantomData<fn() -> (K2, V2)>,
}

impl<F, K2, V2> MapRecord<F, K2, V2> {
    /// A record map.
    pub fn new(f: F) -> Self {
        Self { f, _out: PhantomData }
    }
}

impl<K, V, K2, V2, F> Operator<K, V> for MapRecord<F, K2, V2>
where
    K: Send + 'static,
    V: Send + 'static,
    K2: Send + 'static,
    V2: Send + 'static,
    F: FnMut(Record<K, V>) -> Record<K2, V2> + Send,
{
    type OutKey = K2;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K2, V2>> {
        Outcome::Emit((self.f)(record))
    }
}

/// Replaces each value with `f(value)`; an `Err` rejects the record to the dead-letter queue, with the
/// error's type as the exception and its message (with sources) as the reason.
pub struct TryMapValues<F, V2, E> {
    f: F,
    _out: PhantomData<fn() -> (V2, E)>,
}

impl<F, V2, E> TryMapValues<F, V2, E> {
    /// A fallible value map.
    pub fn new(f: F) -> Self {
        Self { f, _out: PhantomData }
    }
}

impl<K, V, V2, E, F> Operator<K, V> for TryMapValues<F, V2, E>
where
    K: Send + 'static,
    V: Send + 'static,
    V2: Send + 'static,
    E: std::error::Error + 'static,
    F: FnMut(&V) -> Result<V2, E> + Send,
{
    type OutKey = K;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V2>> {
        match (self.f)(&record.value) {
            Ok(v) => Outcome::Emit(record.map_value(|_| v)),
            Err(e) => Outcome::Reject(Rejection::from_error(&e)),
        }
    }
}

/// The general stage: `f` decides the [`Outcome`] of each record.
pub struct ProcessFn<F, K2, V2> {
    f: F,
    _out: PhantomData<fn() -> (K2, V2)>,
}

impl<F, K2, V2> ProcessFn<F, K2, V2> {
    /// A stage from a closure.
    pub fn new(f: F) -> Self {
        Self { f, _out: PhantomData }
    }
}

impl<K, V, K2, V2, F> Operator<K, V> for ProcessFn<F, K2, V2>
where
    K: Send + 'static,
    V: Send + 'static,
    K2: Send + 'static,
    V2: Send + 'static,
    F: FnMut(Record<K, V>) -> Outcome<Record<K2, V2>> + Send,
{
    type OutKey = K2;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K2, V2>> {
        (self.f)(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_values_keeps_metadata() {
        let mut op = MapValues::new(|v: u32| v * 10);
        let rec = Record::new("k", 4u32).with_timestamp(7).with_header("h", "x");
        match op.process(rec) {
            Outcome::Emit(r) => {
                assert_eq!((r.key, r.value, r.timestamp), ("k", 40, 7));
                assert_eq!(r.headers.get_str("h"), Some("x"));
            }
            other => panic!("expected emit, got {other:?}"),
        }
    }

    #[test]
    fn try_map_rejects_with_error_type_and_message() {
        let mut op = TryMapValues::new(|v: &String| v.parse::<u32>());
        assert!(matches!(op.process(Record::new((), "12".to_owned())), Outcome::Emit(r) if r.value == 12));
        match op.process(Record::new((), "x".to_owned())) {
            Outcome::Reject(r) => {
                assert_eq!(r.exception, "ParseIntError");
                assert!(r.message.contains("invalid digit"));
            }
            other => panic!("expected reject, got {other:?}"),
        }
    }

    #[test]
    fn map_record_can_rekey() {
        let mut op = MapRecord::new(|r: Record<u32, u32>| {
            let (k, v) = (r.key, r.value);
            r.with_key_value(v, k)
        });
        assert!(matches!(op.process(Record::new(1, 2)), Outcome::Emit(r) if (r.key, r.value) == (2, 1)));
    }

    #[test]
    fn process_fn_decides_outcome() {
        let mut op = ProcessFn::new(|r: Record<(), i32>| if r.value < 0 { Outcome::Drop } else { Outcome::Emit(r) });
        assert!(matches!(op.process(Record::new((), -1)), Outcome::Drop));
        assert!(op.process(Record::new((), 1)).is_emit());
    }
}
