//! The encoder: a serde `Serializer` writing Avro binary.

use serde::ser::{self, Impossible, Serialize};

use super::{BinaryError, zigzag};

/// Appends the Avro binary encoding of `value` to `out` and returns it.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Result<Vec<u8>, BinaryError> {
    let mut ser = Encoder { out };
    value.serialize(&mut ser)?;
    Ok(ser.out)
}

struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.out.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.out.push(n as u8);
    }

    fn long(&mut self, n: i64) {
        self.varint(zigzag(n));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.long(b.len() as i64);
        self.out.extend_from_slice(b);
    }
}

fn unsupported<T>(what: &str) -> Result<T, BinaryError> {
    Err(BinaryError(format!("{what} has no Avro mapping in pbp-avro's binary encoder")))
}

impl<'a> ser::Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = BinaryError;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Impossible<(), BinaryError>;
    type SerializeTupleStruct = Impossible<(), BinaryError>;
    type SerializeTupleVariant = Impossible<(), BinaryError>;
    type SerializeMap = Impossible<(), BinaryError>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), BinaryError>;

    fn serialize_bool(self, v: bool) -> Result<(), BinaryError> {
        self.out.push(u8::from(v));
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), BinaryError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), BinaryError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), BinaryError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), BinaryError> {
        self.long(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), BinaryError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), BinaryError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), BinaryError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), BinaryError> {
        let v = i64::try_from(v).map_err(|_| BinaryError(format!("{v} does not fit an Avro long")))?;
        self.serialize_i64(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), BinaryError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), BinaryError> {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), BinaryError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), BinaryError> {
        self.bytes(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), BinaryError> {
        self.bytes(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), BinaryError> {
        self.out.push(0); // union branch 0: null
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), BinaryError> {
        self.out.push(2); // union branch 1, zig-zag encoded
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), BinaryError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), BinaryError> {
        Ok(())
    }
    fn serialize_unit_variant(self, name: &'static str, _: u32, _: &'static str) -> Result<(), BinaryError> {
        unsupported(&format!("enum {name} (serialize it as a string)"))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), BinaryError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), BinaryError> {
        unsupported(&format!("enum {name}"))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>, BinaryError> {
        let Some(len) = len else { return unsupported("a sequence of unknown length") };
        if len > 0 {
            self.long(len as i64);
        }
        Ok(Seq { encoder: self, left: len })
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, BinaryError> {
        unsupported("a tuple")
    }
    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, BinaryError> {
        unsupported(name)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, BinaryError> {
        unsupported(name)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, BinaryError> {
        unsupported("a map")
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, BinaryError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, BinaryError> {
        unsupported(name)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// An array written as one block.
pub(crate) struct Seq<'a> {
    encoder: &'a mut Encoder,
    left: usize,
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = BinaryError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), BinaryError> {
        self.left = self.left.checked_sub(1).ok_or_else(|| BinaryError("more items than announced".to_owned()))?;
        value.serialize(&mut *self.encoder)
    }
    fn end(self) -> Result<(), BinaryError> {
        if self.left != 0 {
            return Err(BinaryError("fewer items than announced".to_owned()));
        }
        self.encoder.out.push(0);
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Encoder {
    type Ok = ();
    type Error = BinaryError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result<(), BinaryError> {
        value.serialize(&mut **self)
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), BinaryError> {
        Err(BinaryError(format!("field {key} is skipped, but every record field must be written")))
    }
    fn end(self) -> Result<(), BinaryError> {
        Ok(())
    }
}
