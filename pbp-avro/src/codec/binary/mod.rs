//! Avro binary encoding for records whose Rust struct mirrors their schema, without a schema walk.
//!
//! apache-avro's schema-aware serde path looks every field up by name in a hash map while it encodes, and
//! its `Value` path builds a tree per record. For our own records the schema's shape is known statically, so
//! this module writes and reads the Avro binary encoding straight from serde's data model:
//!
//! | serde | Avro schema it stands for | encoding |
//! |---|---|---|
//! | `bool` | `boolean` | one byte, 0 or 1 |
//! | `i8`..`i64`, `u8`..`u32` | `int` or `long` | zig-zag varint |
//! | `f32` / `f64` | `float` / `double` | 4 / 8 bytes little-endian |
//! | `str` | `string` | varint length, UTF-8 bytes |
//! | `Option<T>` | `["null", T]` | union index 0, or 1 then `T` |
//! | sequence | `array` | one block: varint count, items, then 0 (just 0 when empty) |
//! | struct | `record` | fields in declaration order |
//!
//! It is only correct for a type whose struct fields are in schema order with those types; such a type sets
//! [`AvroRecord::MIRRORS_SCHEMA`](crate::AvroRecord::MIRRORS_SCHEMA), and its tests check its bytes against
//! apache-avro's (`model::schema_check`). It is only used for data written with the record's own schema;
//! anything else goes through apache-avro.
//!
//! Decoding never panics and never allocates more than the input could hold: lengths and counts are checked
//! against the bytes left.

mod de;
mod ser;

pub(crate) use de::from_slice;
pub(crate) use ser::to_vec;

/// Why a value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BinaryError(pub(crate) String);

impl serde::ser::Error for BinaryError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

impl serde::de::Error for BinaryError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Inner {
        x: i32,
        y: f32,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        flag: bool,
        small: i32,
        big: i64,
        ratio: f64,
        name: String,
        maybe: Option<i64>,
        inner: Option<Inner>,
        list: Vec<String>,
        nested: Inner,
    }

    const OUTER: &str = r#"{"type":"record","name":"Outer","fields":[
        {"name":"flag","type":"boolean"},{"name":"small","type":"int"},{"name":"big","type":"long"},
        {"name":"ratio","type":"double"},{"name":"name","type":"string"},
        {"name":"maybe","type":["null","long"]},
        {"name":"inner","type":["null",{"type":"record","name":"Inner","fields":[
            {"name":"x","type":"int"},{"name":"y","type":"float"}]}]},
        {"name":"list","type":{"type":"array","items":"string"}},
        {"name":"nested","type":"Inner"}]}"#;

    fn values() -> Vec<Outer> {
        vec![
            Outer {
                flag: true,
                small: i32::MIN,
                big: i64::MAX,
                ratio: -1.5e300,
                name: "Jaylen Brown makes driving layup — ünïcode".into(),
                maybe: Some(-1),
                inner: Some(Inner { x: 63, y: 0.25 }),
                list: vec!["a".into(), String::new(), "ccc".into()],
                nested: Inner { x: -64, y: f32::MAX },
            },
            Outer {
                flag: false,
                small: 0,
                big: i64::MIN,
                ratio: 0.0,
                name: String::new(),
                maybe: None,
                inner: None,
                list: Vec::new(),
                nested: Inner { x: i32::MAX, y: -0.0 },
            },
        ]
    }

    #[test]
    fn bytes_equal_apache_avro_and_round_trip() {
        let schema = apache_avro::Schema::parse_str(OUTER).unwrap();
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build().unwrap();
        for v in values() {
            let ours = to_vec(&v, Vec::new()).unwrap();
            let theirs =
                writer.write_value_to_vec(apache_avro::to_value(&v).unwrap().resolve(&schema).unwrap()).unwrap();
            assert_eq!(ours, theirs);
            let (back, rest) = from_slice::<Outer>(&ours).unwrap();
            assert_eq!((back, rest), (v, 0));
        }
    }

    #[test]
    fn reads_multi_block_and_sized_arrays() {
        // Avro lets writers split arrays into blocks, and give a negative count followed by the block's size.
        #[derive(Debug, PartialEq, Deserialize)]
        struct L {
            list: Vec<i32>,
        }
        let bytes = [4, 2, 4, 1, 2, 6, 0]; // block of 2 items [1, 2], block of -1 item (size 1) [3], end
        assert_eq!(from_slice::<L>(&bytes).unwrap(), (L { list: vec![1, 2, 3] }, 0));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic_or_a_huge_allocation() {
        let good = to_vec(&values()[0], Vec::new()).unwrap();
        for cut in 0..good.len() {
            assert!(from_slice::<Outer>(&good[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        // A string claiming 2^40 bytes, an array claiming 2^40 items, a bad union index, a bad boolean,
        // an overlong varint, invalid UTF-8.
        let cases: [&[u8]; 6] = [
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4],
            &[7],
            &[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xff],
        ];
        for bytes in cases {
            let err = from_slice::<Outer>(bytes).unwrap_err();
            assert!(!err.0.is_empty());
        }
        // An int out of the i32 range.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct I {
            i: i32,
        }
        assert!(from_slice::<I>(&[0x80, 0x80, 0x80, 0x80, 0x20]).unwrap_err().0.contains("out of range"));
    }

    #[test]
    fn zigzag_matches_the_spec() {
        for (n, z) in [(0, 0), (-1, 1), (1, 2), (-2, 3), (2, 4), (i64::MAX, u64::MAX - 1), (i64::MIN, u64::MAX)] {
            assert_eq!(zigzag(n), z);
            assert_eq!(unzigzag(z), n);
        }
    }
}
