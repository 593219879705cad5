//! The Confluent wire format: one magic byte `0`, the schema id as a 4-byte big-endian integer, then the
//! Avro binary encoding of the value (no container header, no fingerprint).
//!
//! ```
//! use pbp_avro::wire;
//! let mut buf = Vec::new();
//! wire::write_header(&mut buf, 42);
//! buf.extend_from_slice(b"\x02");
//! assert_eq!(buf, [0, 0, 0, 0, 42, 2]);
//! assert_eq!(wire::split(&buf).unwrap(), (42, &b"\x02"[..]));
//! ```

/// The first byte of every Confluent-framed message.
pub const MAGIC: u8 = 0;

/// Length of the header: magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a Confluent-framed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than five bytes.
    #[error("message of {len} bytes is shorter than the 5-byte Confluent header")]
    TooShort {
        /// Length of the message.
        len: usize,
    },
    /// The first byte is not the magic byte `0`.
    #[error("first byte is {found:#04x}, not the Confluent magic byte 0x00")]
    BadMagic {
        /// The byte found.
        found: u8,
    },
}

/// Appends the 5-byte header for `schema_id` to `buf`.
pub fn write_header(buf: &mut Vec<u8>, schema_id: u32) {
    buf.push(MAGIC);
    buf.extend_from_slice(&schema_id.to_be_bytes());
}

/// True if `bytes` starts like a Confluent-framed message: magic byte and at least a full header.
pub fn is_framed(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN && bytes[0] == MAGIC
}

/// Splits a framed message into its schema id and Avro payload.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    match bytes {
        [MAGIC, a, b, c, d, payload @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), payload)),
        [] => Err(WireError::TooShort { len: 0 }),
        [first, ..] if *first != MAGIC => Err(WireError::BadMagic { found: *first }),
        _ => Err(WireError::TooShort { len: bytes.len() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_magic_then_big_endian_id() {
        let mut buf = Vec::new();
        write_header(&mut buf, 0x0102_0304);
        assert_eq!(buf, [0, 1, 2, 3, 4]);
        assert_eq!(split(&buf).unwrap(), (0x0102_0304, &[][..]));
    }

    #[test]
    fn rejects_short_and_unframed_bytes() {
        assert_eq!(split(&[]), Err(WireError::TooShort { len: 0 }));
        assert_eq!(split(&[0, 0, 1]), Err(WireError::TooShort { len: 3 }));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::BadMagic { found: b'{' }));
        assert!(!is_framed(&[0, 0, 0, 1]));
        assert!(is_framed(&[0, 0, 0, 0, 1]));
        assert!(!is_framed(b"{\"game_id\":1}"));
    }
}
