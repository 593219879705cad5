//! One partition of the embedded log: an in-memory run of records with offsets, retention and compaction.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::record::RawRecord;

/// The storage and bookkeeping of one partition. Callers hold the partition's lock.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    /// Records in offset order. Offsets are contiguous unless the topic is compacted.
    pub(crate) records: VecDeque<(u64, Arc<RawRecord>)>,
    /// The offset the next appended record gets (Kafka's log end offset).
    pub(crate) next_offset: u64,
    /// Bytes held by `records`.
    pub(crate) bytes: usize,
    /// Committed offsets (next offset to read) of the consumer groups registered on this partition.
    pub(crate) groups: HashMap<Arc<str>, u64>,
    appended_since_compaction: usize,
    live_after_compaction: usize,
    /// Reused by compaction: indices of the newest record of each key, and which records to keep.
    compaction_index: hashbrown::HashTable<usize>,
    compaction_keep: Vec<bool>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl PartitionState {
    /// The offset of the first record still held (Kafka's log start offset).
    pub(crate) fn start_offset(&self) -> u64 {
        self.records.front().map_or(self.next_offset, |(o, _)| *o)
    }

    /// Index of the first record whose offset is at least `offset`.
    pub(crate) fn index_of(&self, offset: u64) -> usize {
        let start = self.start_offset();
        if offset <= start {
            return 0;
        }
        // Offsets are sorted; compaction leaves gaps, so search rather than subtract.
        self.records.partition_point(|(o, _)| *o < offset)
    }

    pub(crate) fn push(&mut self, record: RawRecord) -> u64 {
        let offset = self.next_offset;
        self.bytes += record.size();
        self.records.push_back((offset, Arc::new(record)));
        self.next_offset += 1;
        self.appended_since_compaction += 1;
        offset
    }

    /// The smallest committed offset among registered groups, if any group is registered.
    pub(crate) fn min_committed(&self) -> Option<u64> {
        self.groups.values().copied().min()
    }

    /// Drops records every registered group has committed past.
    pub(crate) fn evict_consumed(&mut self) -> bool {
        let Some(min) = self.min_committed() else { return false };
        let mut evicted = false;
        while let Some((o, r)) = self.records.front() {
            if *o >= min {
                break;
            }
            self.bytes -= r.size();
            self.records.pop_front();
            evicted = true;
        }
        evicted
    }

    /// Drops the oldest records until at most `capacity` bytes are held. Used only when no group reads the
    /// partition, so that a topic nobody consumes does not hold memory without bound.
    pub(crate) fn evict_oldest_over(&mut self, capacity: usize) {
        while self.bytes > capacity {
            match self.records.pop_front() {
                Some((_, r)) => self.bytes -= r.size(),
                None => break,
            }
        }
    }

    /// Compacts when enough has been appended since the last compaction that the work is amortised: keeps
    /// the latest record of each key, tombstones included, so that a reader that already saw a value
    /// still sees its deletion.
    pub(crate) fn maybe_compact(&mut self) {
        // Compact once four times as many records were appended as there were live keys (and at least 16,384):
        // compaction then costs O(1) amortised per append (a quarter of a scan per append), and memory stays
        // within five times the live set.
        if self.appended_since_compaction < (4 * self.live_after_compaction).max(16384) {
            return;
        }
        self.compact();
    }

    /// Keeps the newest record of each key, in place, without copying keys.
    pub(crate) fn compact(&mut self) {
        let Self { records, compaction_index: index, compaction_keep: keep, hasher, .. } = self;
        index.clear();
        keep.clear();
        keep.resize(records.len(), false);
        let key_at = |j: usize| records[j].1.key.as_deref().unwrap_or_default();
        for i in (0..records.len()).rev() {
            // Null keys cannot be appended to a compacted topic, so every record has a key.
            let Some(key) = records[i].1.key.as_deref() else { continue };
            let hash = hasher.hash_one(key);
            if index.find(hash, |&j| key_at(j) == key).is_none() {
                index.insert_unique(hash, i, |&j| hasher.hash_one(key_at(j)));
                keep[i] = true;
            }
        }
        let mut i = 0;
        let mut bytes = 0;
        records.retain(|(_, r)| {
            let kept = keep[i];
            i += 1;
            if kept {
                bytes += r.size();
            }
            kept
        });
        self.bytes = bytes;
        self.live_after_compaction = self.records.len();
        self.appended_since_compaction = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn rec(k: &'static str, v: Option<&'static str>) -> RawRecord {
        RawRecord::new(Some(Bytes::from_static(k.as_bytes())), v.map(|v| Bytes::from_static(v.as_bytes())))
    }

    #[test]
    fn compaction_keeps_latest_per_key_and_tombstones_in_offset_order() {
        let mut p = PartitionState::default();
        p.push(rec("a", Some("1")));
        p.push(rec("b", Some("1")));
        p.push(rec("a", Some("2")));
        p.push(rec("b", None));
        p.push(rec("c", Some("1")));
        p.compact();
        let kept: Vec<_> = p.records.iter().map(|(o, r)| (*o, r.key.clone().unwrap(), r.value.clone())).collect();
        assert_eq!(
            kept,
            vec![
                (2, Bytes::from_static(b"a"), Some(Bytes::from_static(b"2"))),
                (3, Bytes::from_static(b"b"), None),
                (4, Bytes::from_static(b"c"), Some(Bytes::from_static(b"1"))),
            ]
        );
        assert_eq!(p.index_of(3), 1);
        assert_eq!(p.index_of(0), 0);
        assert_eq!(p.index_of(5), 3);
        assert_eq!(p.next_offset, 5);
    }

    #[test]
    fn eviction_follows_the_slowest_group() {
        let mut p = PartitionState::default();
        for _ in 0..5 {
            p.push(rec("k", Some("v")));
        }
        p.groups.insert("fast".into(), 4);
        p.groups.insert("slow".into(), 2);
        assert!(p.evict_consumed());
        assert_eq!(p.start_offset(), 2);
        assert_eq!(p.index_of(3), 1);
    }
}
