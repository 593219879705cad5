//! Fault injection: rules that make matching requests fail in a chosen way.

use std::time::Duration;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a small JSON error body.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: {seconds}`.
    RateLimited {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// Wait this long, then answer normally (for client timeouts).
    Delay(Duration),
    /// Answer 200 with only the first half of the normal body.
    Truncate,
    /// Answer 200 with an HTML error page instead of JSON.
    Malformed,
    /// Answer with this document and ETag instead of the current one, as a cache that kept an older copy does; a
    /// request whose `If-None-Match` is that ETag gets `304`.
    Serve {
        /// The JSON served.
        body: bytes::Bytes,
        /// Its ETag, quoted (`"stale"`).
        etag: String,
    },
}

/// A fault applied to requests whose path and query contain `path_contains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Substring of `path?query` that selects requests (`/summary`, `event=401585607`, `` for all).
    pub path_contains: String,
    /// The fault.
    pub fault: Fault,
    /// How many more requests it applies to; `None` means until cleared.
    pub remaining: Option<u32>,
}

impl FaultRule {
    /// A rule for the next `times` matching requests.
    pub fn times(path_contains: &str, fault: Fault, times: u32) -> FaultRule {
        FaultRule { path_contains: path_contains.to_owned(), fault, remaining: Some(times) }
    }

    /// A rule for every matching request until [`super::FakeEspn::clear_faults`].
    pub fn always(path_contains: &str, fault: Fault) -> FaultRule {
        FaultRule { path_contains: path_contains.to_owned(), fault, remaining: None }
    }
}

/// Picks the first live rule matching `target` and consumes one use of it.
pub(crate) fn take_fault(rules: &mut Vec<FaultRule>, target: &str) -> Option<Fault> {
    let index = rules.iter().position(|rule| rule.remaining != Some(0) && target.contains(&rule.path_contains))?;
    let rule = &mut rules[index];
    let fault = rule.fault.clone();
    if let Some(remaining) = &mut rule.remaining {
        *remaining -= 1;
        if *remaining == 0 {
            rules.remove(index);
        }
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_consumed_in_order() {
        let mut rules =
            vec![FaultRule::times("/summary", Fault::Status(503), 2), FaultRule::always("", Fault::Truncate)];
        assert_eq!(take_fault(&mut rules, "/x/summary?event=1"), Some(Fault::Status(503)));
        assert_eq!(take_fault(&mut rules, "/x/summary?event=1"), Some(Fault::Status(503)));
        assert_eq!(take_fault(&mut rules, "/x/summary?event=1"), Some(Fault::Truncate));
        assert_eq!(take_fault(&mut rules, "/teams"), Some(Fault::Truncate));
        assert_eq!(rules.len(), 1);
        let mut none: Vec<FaultRule> = Vec::new();
        assert_eq!(take_fault(&mut none, "/teams"), None);
    }
}
