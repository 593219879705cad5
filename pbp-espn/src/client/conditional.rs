//! Conditional requests: remember `ETag`/`Last-Modified` per URL, send `If-None-Match`/`If-Modified-Since`,
//! and reuse the remembered body on `304 Not Modified`.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{ETAG, HeaderValue, LAST_MODIFIED};
use parking_lot::Mutex;

/// Validators to send with a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Validators {
    pub(crate) etag: Option<HeaderValue>,
    pub(crate) last_modified: Option<HeaderValue>,
}

#[derive(Debug)]
struct Entry {
    validators: Validators,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    // Insertion order, for evicting the oldest URL when full (one entry per live game and scoreboard).
    order: VecDeque<String>,
}

/// Last validated body per URL, bounded.
#[derive(Debug)]
pub(crate) struct ConditionalCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ConditionalCache {
    pub(crate) fn new(capacity: usize) -> ConditionalCache {
        ConditionalCache { capacity, inner: Mutex::new(Inner::default()) }
    }

    /// The validators to send for `url`, if its last response offered any.
    pub(crate) fn validators(&self, url: &str) -> Option<Validators> {
        self.inner.lock().entries.get(url).map(|entry| entry.validators.clone())
    }

    /// The body remembered for `url` (to reuse on a 304).
    pub(crate) fn body(&self, url: &str) -> Option<Bytes> {
        self.inner.lock().entries.get(url).map(|entry| entry.body.clone())
    }

    /// Remembers a 200 response when it carries validators; forgets the URL when it does not.
    pub(crate) fn store(&self, url: &str, headers: &HeaderMap, body: &Bytes) {
        let validators =
            Validators { etag: headers.get(ETAG).cloned(), last_modified: headers.get(LAST_MODIFIED).cloned() };
        let mut inner = self.inner.lock();
        if validators.etag.is_none() && validators.last_modified.is_none() || self.capacity == 0 {
            if inner.entries.remove(url).is_some() {
                inner.order.retain(|u| u != url);
            }
            return;
        }
        let entry = Entry { validators, body: body.clone() };
        if inner.entries.insert(url.to_owned(), entry).is_none() {
            inner.order.push_back(url.to_owned());
            while inner.entries.len() > self.capacity {
                let Some(oldest) = inner.order.pop_front() else { break };
                inner.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(etag: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(etag) = etag {
            headers.insert(ETAG, HeaderValue::from_static(etag));
        }
        headers
    }

    #[test]
    fn remembers_only_responses_with_validators() {
        let cache = ConditionalCache::new(4);
        cache.store("a", &headers(None), &Bytes::from_static(b"1"));
        assert!(cache.validators("a").is_none());
        cache.store("a", &headers(Some("\"v1\"")), &Bytes::from_static(b"2"));
        assert_eq!(cache.validators("a").and_then(|v| v.etag), Some(HeaderValue::from_static("\"v1\"")));
        assert_eq!(cache.body("a"), Some(Bytes::from_static(b"2")));
        cache.store("a", &headers(None), &Bytes::from_static(b"3"));
        assert!(cache.body("a").is_none(), "a response without validators forgets the old body");
    }

    #[test]
    fn evicts_the_oldest_url() {
        let cache = ConditionalCache::new(2);
        for url in ["a", "b", "c"] {
            cache.store(url, &headers(Some("\"x\"")), &Bytes::from_static(b"{}"));
        }
        assert!(cache.body("a").is_none());
        assert!(cache.body("b").is_some() && cache.body("c").is_some());
    }
}
