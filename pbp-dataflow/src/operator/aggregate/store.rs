//! The state store description, the changelog value format and restoration.

use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashMap;

use crate::codec::{Codec, CodecError};
use crate::error::Error;
use crate::operator::OpenContext;
use crate::transport::{TopicSpec, Transport, read_until};

const WITH_SOURCE: u8 = 1;
const WITHOUT_SOURCE: u8 = 0;

/// A key's state and the source record last applied to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredState<S> {
    /// The state.
    pub state: S,
    /// Source partition and offset of the last record applied, when it came from a topic.
    pub applied: Option<(u32, u64)>,
}

/// A named keyed state store and its changelog topic (`<name>-changelog` unless set).
pub struct StateStore<K, S> {
    name: Arc<str>,
    changelog: Arc<str>,
    partitions: Option<u32>,
    key_codec: Arc<dyn Codec<K>>,
    state_codec: Arc<dyn Codec<S>>,
}

impl<K, S> Clone for StateStore<K, S> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            changelog: self.changelog.clone(),
            partitions: self.partitions,
            key_codec: self.key_codec.clone(),
            state_codec: self.state_codec.clone(),
        }
    }
}

impl<K, S> StateStore<K, S> {
    /// A store called `name`, whose keys and states are encoded in the changelog with these codecs.
    pub fn new(name: &str, key_codec: impl Codec<K> + 'static, state_codec: impl Codec<S> + 'static) -> Self {
        Self {
            name: name.into(),
            changelog: format!("{name}-changelog").into(),
            partitions: None,
            key_codec: Arc::new(key_codec),
            state_codec: Arc::new(state_codec),
        }
    }

    /// Uses `topic` as the changelog.
    pub fn with_changelog_topic(mut self, topic: &str) -> Self {
        self.changelog = topic.into();
        self
    }

    /// For aggregates fed without source partitions (a channel source): the changelog's partition count, all
    /// of which the aggregate owns and restores when it opens. With a topic source the changelog gets the
    /// source topic's partition count and this setting is not needed.
    pub fn with_partitions(mut self, partitions: u32) -> Self {
        self.partitions = Some(partitions.max(1));
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The changelog topic.
    pub fn changelog(&self) -> &str {
        &self.changelog
    }

    pub(crate) fn partitions(&self) -> Option<u32> {
        self.partitions
    }

    pub(crate) fn key_codec(&self) -> &dyn Codec<K> {
        &*self.key_codec
    }

    pub(crate) fn state_codec(&self) -> &dyn Codec<S> {
        &*self.state_codec
    }

    /// Makes sure the compacted changelog exists with `partitions` partitions.
    pub(crate) async fn ensure_changelog(&self, cx: &OpenContext, partitions: u32) -> Result<u32, Error> {
        let have = cx.transport.ensure_topic(&TopicSpec::compacted(self.changelog.to_string(), partitions)).await?;
        if have != partitions {
            return Err(Error::Config(format!(
                "changelog {} has {have} partitions but its source has {partitions}",
                self.changelog
            )));
        }
        Ok(have)
    }
}

impl<K: std::hash::Hash + Eq + Send, S: Send> StateStore<K, S> {
    /// Reads the listed changelog partitions up to their end offsets as of now into `states`; returns the
    /// number of changelog records applied.
    pub(crate) async fn restore_into(
        &self,
        transport: &dyn Transport,
        partitions: &[u32],
        states: &mut HashMap<K, StoredState<S>>,
    ) -> Result<u64, Error> {
        let ends = transport.end_offsets(&self.changelog, partitions).await?;
        let mut reader = transport.reader(&self.changelog, Some(partitions)).await?;
        let mut applied = 0;
        read_until(reader.as_mut(), &self.changelog, partitions, &ends, |r| {
            let restore_err = |source| Error::Restore { what: self.name.to_string(), origin: r.origin.clone(), source };
            let key = self.key_codec.decode(r.record.key.as_ref()).map_err(restore_err)?;
            match &r.record.value {
                None => {
                    states.remove(&key);
                }
                Some(v) => {
                    let (applied_at, state_bytes) = decode_value(v).map_err(restore_err)?;
                    let state = self.state_codec.decode(Some(&state_bytes)).map_err(restore_err)?;
                    states.insert(key, StoredState { state, applied: applied_at });
                }
            }
            applied += 1;
            Ok::<(), Error>(())
        })
        .await?;
        Ok(applied)
    }

    /// Reads the whole changelog: the store's contents as a restarted pipeline would restore them.
    pub async fn read_all(
        &self,
        transport: &dyn Transport,
    ) -> Result<std::collections::HashMap<K, StoredState<S>>, Error> {
        let n = transport.partitions(&self.changelog).await?;
        let all: Vec<u32> = (0..n).collect();
        let mut states = HashMap::new();
        self.restore_into(transport, &all, &mut states).await?;
        Ok(states.into_iter().collect())
    }
}

/// Encodes a changelog value: the layout described in the [module docs](super), one allocation.
/// Returns `None` (a tombstone) when the state encodes to null.
pub fn changelog_value<S>(
    codec: &dyn Codec<S>,
    state: &S,
    applied: Option<(u32, u64)>,
) -> Result<Option<Bytes>, CodecError> {
    let mut out = Vec::with_capacity(64);
    match applied {
        Some((p, o)) => {
            out.push(WITH_SOURCE);
            out.extend_from_slice(&p.to_be_bytes());
            out.extend_from_slice(&o.to_be_bytes());
        }
        None => out.push(WITHOUT_SOURCE),
    }
    // An exact-length buffer becomes a `Bytes` without the extra shared header a partly filled `Vec` needs.
    Ok(codec.encode_into(state, &mut out)?.then(|| Bytes::from(out.into_boxed_slice())))
}

pub(crate) fn decode_value(value: &Bytes) -> Result<(Option<(u32, u64)>, Bytes), CodecError> {
    match value.first() {
        Some(&WITH_SOURCE) if value.len() >= 13 => {
            let p = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
            let mut o = [0u8; 8];
            o.copy_from_slice(&value[5..13]);
            Ok((Some((p, u64::from_be_bytes(o))), value.slice(13..)))
        }
        Some(&WITHOUT_SOURCE) => Ok((None, value.slice(1..))),
        _ => Err(CodecError::invalid("changelog", "unknown changelog value layout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_layout_round_trips() {
        let codec = crate::codec::Utf8;
        let state = "state".to_owned();
        let v = changelog_value(&codec, &state, Some((3, 99))).unwrap().unwrap();
        assert_eq!(decode_value(&v).unwrap(), (Some((3, 99)), Bytes::from_static(b"state")));
        let v = changelog_value(&codec, &state, None).unwrap().unwrap();
        assert_eq!(decode_value(&v).unwrap(), (None, Bytes::from_static(b"state")));
        assert_eq!(changelog_value(&crate::codec::Unit, &(), None).unwrap(), None);
        assert!(decode_value(&Bytes::from_static(&[1, 2])).is_err());
        assert!(decode_value(&Bytes::new()).is_err());
    }
}
