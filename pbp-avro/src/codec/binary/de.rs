//! The decoder: a serde `Deserializer` reading Avro binary.

use serde::de::{self, DeserializeOwned, Visitor};

use super::{BinaryError, unzigzag};

/// Decodes one `T` from the start of `bytes`; returns it and the number of bytes left after it.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), BinaryError> {
    let mut decoder = Decoder { input: bytes };
    let value = T::deserialize(&mut decoder)?;
    Ok((value, decoder.input.len()))
}

struct Decoder<'de> {
    input: &'de [u8],
}

fn eof() -> BinaryError {
    BinaryError("unexpected end of data".to_owned())
}

impl<'de> Decoder<'de> {
    fn byte(&mut self) -> Result<u8, BinaryError> {
        let (&b, rest) = self.input.split_first().ok_or_else(eof)?;
        self.input = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, BinaryError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(BinaryError("varint longer than 10 bytes".to_owned()))
    }

    fn long(&mut self) -> Result<i64, BinaryError> {
        self.varint().map(unzigzag)
    }

    fn int(&mut self) -> Result<i32, BinaryError> {
        let n = self.long()?;
        i32::try_from(n).map_err(|_| BinaryError(format!("int {n} out of range")))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8], BinaryError> {
        if n > self.input.len() {
            return Err(BinaryError(format!("length {n} exceeds the {} bytes left", self.input.len())));
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn length(&mut self) -> Result<usize, BinaryError> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| BinaryError(format!("negative length {n}")))
    }

    fn str(&mut self) -> Result<&'de str, BinaryError> {
        let n = self.length()?;
        std::str::from_utf8(self.take(n)?).map_err(|e| BinaryError(format!("string is not UTF-8: {e}")))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
}

fn unsupported<T>(what: &str) -> Result<T, BinaryError> {
    Err(BinaryError(format!("{what} has no Avro mapping in pbp-avro's binary decoder")))
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = BinaryError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, BinaryError> {
        unsupported("a self-describing value")
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            b => Err(BinaryError(format!("boolean byte {b}"))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i32(self.int()?)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i32(self.int()?)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i32(self.int()?)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i64(self.long()?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i64(self.long()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i64(self.long()?)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i64(self.long()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_i64(self.long()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_f32(f32::from_le_bytes(self.fixed()?))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_f64(f64::from_le_bytes(self.fixed()?))
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        let n = self.length()?;
        visitor.visit_borrowed_bytes(self.take(n)?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        self.deserialize_bytes(visitor)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        match self.long()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            i => Err(BinaryError(format!("union branch {i} of a [null, T] union"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, BinaryError> {
        visitor.visit_seq(Blocks { decoder: self, left_in_block: 0, done: false })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, BinaryError> {
        unsupported("a tuple")
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: usize,
        _: V,
    ) -> Result<V::Value, BinaryError> {
        unsupported(name)
    }
    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, BinaryError> {
        unsupported("a map")
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, BinaryError> {
        visitor.visit_seq(Fields { decoder: self, left: fields.len() })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, BinaryError> {
        unsupported(&format!("enum {name} (deserialize it from a string)"))
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, BinaryError> {
        unsupported("an identifier")
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, BinaryError> {
        unsupported("an ignored value")
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Record fields, in declaration order.
struct Fields<'a, 'de> {
    decoder: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Fields<'_, 'de> {
    type Error = BinaryError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, BinaryError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// Array items, block after block until a zero count.
struct Blocks<'a, 'de> {
    decoder: &'a mut Decoder<'de>,
    left_in_block: usize,
    done: bool,
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, 'de> {
    type Error = BinaryError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, BinaryError> {
        while self.left_in_block == 0 {
            if self.done {
                return Ok(None);
            }
            let count = self.decoder.long()?;
            if count == 0 {
                self.done = true;
                return Ok(None);
            }
            if count < 0 {
                self.decoder.long()?; // the block's size in bytes, which we do not need
            }
            let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
            // Every item takes at least one byte: a count beyond the bytes left is corrupt data.
            if count > self.decoder.input.len() {
                return Err(BinaryError(format!(
                    "array block of {count} items exceeds the {} bytes left",
                    self.decoder.input.len()
                )));
            }
            self.left_in_block = count;
        }
        self.left_in_block -= 1;
        seed.deserialize(&mut *self.decoder).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left_in_block)
    }
}
