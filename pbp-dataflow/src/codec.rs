//! The codec seam: how typed keys and values become bytes on a topic and back.
//!
//! A codec is bound to one topic and one side (key or value) when it is created, so a codec that needs the
//! topic name (a Confluent Schema Registry codec registers under `<topic>-value`) takes it at construction.
//! `None` bytes stand for a null key or value (a tombstone in a compacted topic).

use std::marker::PhantomData;

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

/// Why bytes could not be turned into a value, or a value into bytes.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The key or value was null and the codec does not accept null.
    #[error("unexpected null")]
    Null,
    /// The bytes are not in the expected format.
    #[error("{format}: {message}")]
    Invalid {
        /// The format the codec expected, such as `json` or `avro`.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode as {format}: {message}")]
    Encode {
        /// The format the codec writes.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Something decoding needs cannot be had right now (a schema registry that does not answer): a fact about
    /// the moment, not about the bytes. A source keeps such a record, waits and retries (see
    /// [`Codec::prepare`]); it is never dead-lettered.
    #[error("{format}: cannot decode yet: {message}")]
    Unavailable {
        /// The format the codec reads.
        format: &'static str,
        /// What is missing and why.
        message: String,
    },
}

impl CodecError {
    /// An [`Invalid`](CodecError::Invalid) error.
    pub fn invalid(format: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Invalid { format, message: message.to_string() }
    }

    /// An [`Encode`](CodecError::Encode) error.
    pub fn encode(format: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Encode { format, message: message.to_string() }
    }

    /// An [`Unavailable`](CodecError::Unavailable) error.
    pub fn unavailable(format: &'static str, message: impl std::fmt::Display) -> Self {
        Self::Unavailable { format, message: message.to_string() }
    }

    /// True for [`Unavailable`](CodecError::Unavailable): retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// What [`Codec::prepare`] returns.
pub type Prepared<'a> = futures::future::BoxFuture<'a, Result<(), CodecError>>;

/// Turns values of `T` into bytes and back.
///
/// Implementations must not panic on any input: bad bytes are an error, which a pipeline turns into a
/// dead-letter record with the reason.
pub trait Codec<T>: Send + Sync {
    /// Encodes `value`. `None` means a null key or value.
    fn encode(&self, value: &T) -> Result<Option<Bytes>, CodecError>;

    /// Decodes bytes; `None` is a null key or value.
    fn decode(&self, bytes: Option<&Bytes>) -> Result<T, CodecError>;

    /// Appends the encoding of `value` to `out` and returns `true`, or returns `false` for null. Saves an
    /// allocation where bytes are framed (changelog records); the default goes through [`encode`](Self::encode).
    fn encode_into(&self, value: &T, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        match self.encode(value)? {
            Some(b) => {
                out.extend_from_slice(&b);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Fetches, without blocking a thread, what decoding `bytes` needs and [`decode`](Self::decode) may not wait
    /// for (a writer schema from a registry), so that decoding them no longer returns
    /// [`CodecError::Unavailable`]. A source calls it after such an error and keeps calling it, with a backoff,
    /// while it returns `Unavailable`; any other error means the bytes cannot be decoded (the record is
    /// dead-lettered). `decode` itself must never block on a lookup: it runs on the async threads. The default
    /// has nothing to fetch.
    fn prepare<'a>(&'a self, _bytes: Option<&'a Bytes>) -> Prepared<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

impl<T, C: Codec<T> + ?Sized> Codec<T> for std::sync::Arc<C> {
    fn encode(&self, value: &T) -> Result<Option<Bytes>, CodecError> {
        (**self).encode(value)
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<T, CodecError> {
        (**self).decode(bytes)
    }
    fn encode_into(&self, value: &T, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        (**self).encode_into(value, out)
    }
    fn prepare<'a>(&'a self, bytes: Option<&'a Bytes>) -> Prepared<'a> {
        (**self).prepare(bytes)
    }
}

impl<T, C: Codec<T> + ?Sized> Codec<T> for Box<C> {
    fn encode(&self, value: &T) -> Result<Option<Bytes>, CodecError> {
        (**self).encode(value)
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<T, CodecError> {
        (**self).decode(bytes)
    }
    fn encode_into(&self, value: &T, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        (**self).encode_into(value, out)
    }
    fn prepare<'a>(&'a self, bytes: Option<&'a Bytes>) -> Prepared<'a> {
        (**self).prepare(bytes)
    }
}

fn require(bytes: Option<&Bytes>) -> Result<&Bytes, CodecError> {
    bytes.ok_or(CodecError::Null)
}

/// JSON through serde.
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// A JSON codec.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Json")
    }
}

impl<T: Serialize + DeserializeOwned> Codec<T> for Json<T> {
    fn encode(&self, value: &T) -> Result<Option<Bytes>, CodecError> {
        serde_json::to_vec(value).map(|v| Some(Bytes::from(v))).map_err(|e| CodecError::encode("json", e))
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<T, CodecError> {
        serde_json::from_slice(require(bytes)?).map_err(|e| CodecError::invalid("json", e))
    }
    fn encode_into(&self, value: &T, out: &mut Vec<u8>) -> Result<bool, CodecError> {
        serde_json::to_writer(out, value).map_err(|e| CodecError::encode("json", e))?;
        Ok(true)
    }
}

/// UTF-8 text as [`String`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Codec<String> for Utf8 {
    fn encode(&self, value: &String) -> Result<Option<Bytes>, CodecError> {
        Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<String, CodecError> {
        std::str::from_utf8(require(bytes)?).map(str::to_owned).map_err(|e| CodecError::invalid("utf-8", e))
    }
}

/// Raw bytes, passed through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec<Bytes> for Raw {
    fn encode(&self, value: &Bytes) -> Result<Option<Bytes>, CodecError> {
        Ok(Some(value.clone()))
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<Bytes, CodecError> {
        require(bytes).cloned()
    }
}

/// 8-byte big-endian integers, as Kafka's `LongSerializer` writes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigEndian;

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl Codec<$t> for BigEndian {
            fn encode(&self, value: &$t) -> Result<Option<Bytes>, CodecError> {
                Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
            }
            fn encode_into(&self, value: &$t, out: &mut Vec<u8>) -> Result<bool, CodecError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(true)
            }
            fn decode(&self, bytes: Option<&Bytes>) -> Result<$t, CodecError> {
                let b = require(bytes)?;
                let arr: [u8; std::mem::size_of::<$t>()] = b.as_ref().try_into().map_err(|_| {
                    CodecError::invalid("big-endian", format!("expected {} bytes, got {}", std::mem::size_of::<$t>(), b.len()))
                })?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
    )*};
}
big_endian!(u32, u64, i32, i64);

/// The unit value, stored as a null. Useful for unkeyed topics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unit;

impl Codec<()> for Unit {
    fn encode(&self, _: &()) -> Result<Option<Bytes>, CodecError> {
        Ok(None)
    }
    fn decode(&self, _: Option<&Bytes>) -> Result<(), CodecError> {
        Ok(())
    }
}

/// Wraps a codec so that null bytes decode to `None` and `None` encodes to null.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nullable<C>(pub C);

impl<T, C: Codec<T>> Codec<Option<T>> for Nullable<C> {
    fn encode(&self, value: &Option<T>) -> Result<Option<Bytes>, CodecError> {
        match value {
            Some(v) => self.0.encode(v),
            None => Ok(None),
        }
    }
    fn decode(&self, bytes: Option<&Bytes>) -> Result<Option<T>, CodecError> {
        match bytes {
            Some(_) => self.0.decode(bytes).map(Some),
            None => Ok(None),
        }
    }
    fn prepare<'a>(&'a self, bytes: Option<&'a Bytes>) -> Prepared<'a> {
        match bytes {
            Some(_) => self.0.prepare(bytes),
            None => Box::pin(std::future::ready(Ok(()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_errors() {
        let c = Json::<Vec<u32>>::new();
        let b = c.encode(&vec![1, 2]).unwrap();
        assert_eq!(c.decode(b.as_ref()).unwrap(), vec![1, 2]);
        assert!(matches!(c.decode(Some(&Bytes::from_static(b"{"))), Err(CodecError::Invalid { format: "json", .. })));
        assert!(matches!(c.decode(None), Err(CodecError::Null)));
    }

    #[test]
    fn encode_into_appends_the_same_bytes() {
        let mut out = b"prefix".to_vec();
        assert!(Json::<u32>::new().encode_into(&12, &mut out).unwrap());
        assert!(BigEndian.encode_into(&7u32, &mut out).unwrap());
        assert!(!Unit.encode_into(&(), &mut out).unwrap());
        assert_eq!(out, b"prefix12\0\0\0\x07".to_vec());
        let boxed: Box<dyn Codec<u32>> = Box::new(BigEndian);
        assert!(boxed.encode_into(&1, &mut out).unwrap());
        assert_eq!(out.len(), 16);
    }

    #[test]
    fn big_endian_rejects_wrong_length() {
        let b = BigEndian.encode(&7u64).unwrap();
        assert_eq!(Codec::<u64>::decode(&BigEndian, b.as_ref()).unwrap(), 7);
        assert!(Codec::<u64>::decode(&BigEndian, Some(&Bytes::from_static(b"abc"))).is_err());
    }

    #[test]
    fn nullable_maps_null_to_none() {
        let c = Nullable(Utf8);
        assert_eq!(c.decode(None).unwrap(), None);
        assert_eq!(c.encode(&None).unwrap(), None);
        assert_eq!(c.decode(c.encode(&Some("x".to_owned())).unwrap().as_ref()).unwrap(), Some("x".to_owned()));
        assert!(Utf8.decode(Some(&Bytes::from_static(&[0xff]))).is_err());
    }
}
