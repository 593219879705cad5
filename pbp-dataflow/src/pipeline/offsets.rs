//! Which offsets a checkpoint may commit.

use crate::record::{Origin, TopicPartition};

/// The next offset to commit per partition: one past the last record whose outcome is settled. The pipeline
/// observes every source record in order, and processes each batch completely before a checkpoint, so the
/// highest observed offset per partition is safe to commit once the sink and dead-letter queue are flushed.
#[derive(Debug, Default)]
pub(crate) struct OffsetTracker {
    pending: Vec<(TopicPartition, u64)>,
    last: usize,
}

impl OffsetTracker {
    #[inline]
    pub(crate) fn observe(&mut self, origin: &Origin) {
        let next = origin.offset + 1;
        if let Some((tp, n)) = self.pending.get_mut(self.last)
            && tp.partition == origin.partition
            && (std::sync::Arc::ptr_eq(&tp.topic, &origin.topic) || tp.topic == origin.topic)
        {
            *n = (*n).max(next);
            return;
        }
        match self.pending.iter().position(|(tp, _)| tp.partition == origin.partition && tp.topic == origin.topic) {
            Some(i) => {
                self.pending[i].1 = self.pending[i].1.max(next);
                self.last = i;
            }
            None => {
                self.pending.push((TopicPartition { topic: origin.topic.clone(), partition: origin.partition }, next));
                self.last = self.pending.len() - 1;
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    pub(crate) fn take(&mut self) -> Vec<(TopicPartition, u64)> {
        self.last = 0;
        std::mem::take(&mut self.pending)
    }

    /// Forgets pending offsets of partitions that are no longer owned.
    pub(crate) fn forget(&mut self, revoked: &[TopicPartition]) {
        self.pending.retain(|(tp, _)| !revoked.contains(tp));
        self.last = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_highest_next_offset_per_partition() {
        let mut t = OffsetTracker::default();
        let o = |p, off| Origin { topic: "t".into(), partition: p, offset: off };
        t.observe(&o(0, 5));
        t.observe(&o(1, 2));
        t.observe(&o(0, 6));
        t.observe(&o(0, 3));
        let mut got = t.take();
        got.sort();
        assert_eq!(got, vec![(TopicPartition::new("t", 0), 7), (TopicPartition::new("t", 1), 3)]);
        assert!(t.is_empty());
    }
}
