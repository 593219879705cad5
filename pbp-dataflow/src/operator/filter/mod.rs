//! Filtering: [`Filter`] keeps records a predicate accepts; [`FilterMapValues`] maps and filters in one step.
//! A filtered-out record ends as [`Outcome::Drop`]: its offset still advances.

use std::marker::PhantomData;

use super::Operator;
use crate::outcome::Outcome;
use crate::record::Record;

/// Keeps the records for which the predicate is true.
pub struct Filter<F> {
    f: F,
}

impl<F> Filter<F> {
    /// A filter.
    pub fn new(f: F) -> Self {
        Self { f }
    }
}

impl<K, V, F> Operator<K, V> for Filter<F>
where
    K: Send + 'static,
    V: Send + 'static,
    F: FnMut(&Record<K, V>) -> bool + Send,
{
    type OutKey = K;
    type OutValue = V;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V>> {
        if (self.f)(&record) { Outcome::Emit(record) } else { Outcome::Drop }
    }
}

/// Maps each value to `Some(new)` (emitted) or `None` (dropped).
pub struct FilterMapValues<F, V2> {
    f: F,
    _out: PhantomData<fn() -> V2>,
}

impl<F, V2> FilterMapValues<F, V2> {
    /// A filter-map.
    pub fn new(f: F) -> Self {
        Self { f, _out: PhantomData }
    }
}

impl<K, V, V2, F> Operator<K, V> for FilterMapValues<F, V2>
where
    K: Send + 'static,
    V: Send + 'static,
    V2: Send + 'static,
    F: FnMut(V) -> Option<V2> + Send,
{
    type OutKey = K;
    type OutValue = V2;

    #[inline]
    fn process(&mut self, record: Record<K, V>) -> Outcome<Record<K, V2>> {
        let Record { key, value, timestamp, headers, origin } = record;
        match (self.f)(value) {
            Some(value) => Outcome::Emit(Record { key, value, timestamp, headers, origin }),
            None => Outcome::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_drops_rejected_records() {
        let mut op = Filter::new(|r: &Record<(), u32>| r.value.is_multiple_of(2));
        assert!(op.process(Record::new((), 2)).is_emit());
        assert!(matches!(op.process(Record::new((), 3)), Outcome::Drop));
    }

    #[test]
    fn filter_map_maps_or_drops() {
        let mut op = FilterMapValues::new(|v: &'static str| v.parse::<u8>().ok());
        assert!(matches!(op.process(Record::new((), "7")), Outcome::Emit(r) if r.value == 7));
        assert!(matches!(op.process(Record::new((), "x")), Outcome::Drop));
    }
}
