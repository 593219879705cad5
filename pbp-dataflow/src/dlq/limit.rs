//! The dead-letter limit, after rust-arroyo's `DlqLimit`.

use std::collections::VecDeque;

/// When a pipeline stops instead of dead-lettering: too many rejects in a row, or too large a share of
/// rejects among the last `window` records. `None` disables a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct DlqLimit {
    /// Largest allowed share of rejected records in the window, from 0.0 to 1.0.
    pub max_invalid_ratio: Option<f64>,
    /// Largest allowed number of consecutive rejected records.
    pub max_consecutive: Option<u64>,
    /// Number of most recent records the ratio is computed over.
    pub window: usize,
    /// The ratio rule applies only once the window holds at least this many records, so that one bad record
    /// at start-up is not a 100 % ratio.
    pub min_records: usize,
}

impl Default for DlqLimit {
    /// At most half of the last 1,000 records (once 100 were seen), and at most 1,000 in a row.
    fn default() -> Self {
        Self { max_invalid_ratio: Some(0.5), max_consecutive: Some(1000), window: 1000, min_records: 100 }
    }
}

impl DlqLimit {
    /// No limit: every rejected record is dead-lettered.
    pub fn unlimited() -> Self {
        Self { max_invalid_ratio: None, max_consecutive: None, window: 1, min_records: 1 }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LimitTracker {
    limit: DlqLimit,
    window: VecDeque<bool>,
    invalid_in_window: usize,
    consecutive: u64,
}

impl LimitTracker {
    pub(crate) fn new(limit: DlqLimit) -> Self {
        let cap = if limit.max_invalid_ratio.is_some() { limit.window.max(1) } else { 0 };
        Self { limit, window: VecDeque::with_capacity(cap), invalid_in_window: 0, consecutive: 0 }
    }

    #[inline]
    pub(crate) fn record(&mut self, invalid: bool) {
        self.consecutive = if invalid { self.consecutive + 1 } else { 0 };
        if self.limit.max_invalid_ratio.is_none() {
            return;
        }
        if self.window.len() == self.limit.window.max(1) && self.window.pop_front() == Some(true) {
            self.invalid_in_window -= 1;
        }
        self.window.push_back(invalid);
        self.invalid_in_window += usize::from(invalid);
    }

    /// Records `outcomes` in order (`true`: rejected), checking the limit after each; stops at the first record
    /// that exceeds it.
    pub(crate) fn count(&mut self, outcomes: &[bool]) -> Result<(), String> {
        for &rejected in outcomes {
            self.record(rejected);
            // After every record, accepted ones too: the one that fills the window to `min_records` can be the
            // first to make the ratio count.
            self.check()?;
        }
        Ok(())
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(max) = self.limit.max_consecutive
            && self.consecutive > max
        {
            return Err(format!("{} consecutive records rejected (limit {max})", self.consecutive));
        }
        if let Some(max) = self.limit.max_invalid_ratio
            && self.window.len() >= self.limit.min_records
        {
            let ratio = self.invalid_in_window as f64 / self.window.len() as f64;
            if ratio > max {
                return Err(format!(
                    "{} of the last {} records rejected ({:.1} %, limit {:.1} %)",
                    self.invalid_in_window,
                    self.window.len(),
                    ratio * 100.0,
                    max * 100.0
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_limit_trips_after_the_maximum() {
        let mut t =
            LimitTracker::new(DlqLimit { max_consecutive: Some(3), max_invalid_ratio: None, ..DlqLimit::default() });
        for _ in 0..3 {
            t.record(true);
            assert!(t.check().is_ok());
        }
        t.record(true);
        assert!(t.check().unwrap_err().contains("4 consecutive"));
        t.record(false);
        assert!(t.check().is_ok());
    }

    #[test]
    fn ratio_needs_min_records_and_slides() {
        let limit = DlqLimit { max_invalid_ratio: Some(0.2), max_consecutive: None, window: 10, min_records: 5 };
        let mut t = LimitTracker::new(limit);
        t.record(true);
        assert!(t.check().is_ok(), "one bad record at start-up is not a ratio");
        for _ in 0..9 {
            t.record(false);
        }
        assert!(t.check().is_ok(), "1 of 10 is under 20 %");
        t.record(true);
        t.record(true);
        assert!(t.check().is_ok(), "the first bad record slid out: 2 of 10");
        t.record(true);
        assert!(t.check().is_err(), "3 of 10 is over 20 %");
    }

    #[test]
    fn count_checks_after_every_record_in_order() {
        let limit = DlqLimit { max_invalid_ratio: Some(0.5), max_consecutive: Some(3), window: 10, min_records: 4 };
        // The record that fills the window to `min_records` is accepted, yet it is where the ratio starts to count.
        let mut t = LimitTracker::new(DlqLimit { max_consecutive: None, ..limit.clone() });
        let why = t.count(&[true, true, true, false, false]).unwrap_err();
        assert!(why.starts_with("3 of the last 4 records rejected"), "{why}");
        // Runs continue across calls (batches) and stop at the record that exceeds the limit.
        let mut t = LimitTracker::new(DlqLimit { max_invalid_ratio: None, ..limit });
        assert!(t.count(&[false, true, true]).is_ok());
        let why = t.count(&[true, true, false]).unwrap_err();
        assert!(why.starts_with("4 consecutive"), "{why}");
    }

    #[test]
    fn unlimited_never_trips() {
        let mut t = LimitTracker::new(DlqLimit::unlimited());
        for _ in 0..10_000 {
            t.record(true);
        }
        assert!(t.check().is_ok());
    }
}
