//! Lenient deserializers for the places where ESPN is inconsistent about JSON types
//! (scores are strings in scoreboards and integers on plays; ids are usually strings).

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// A number or a numeric string, as an unsigned integer.
pub(crate) fn u32_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    deserializer.deserialize_any(UnsignedVisitor)
}

/// Like [`u32_lenient`], also accepting `null` and an empty string as "absent".
pub(crate) fn opt_u32_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    deserializer.deserialize_any(OptionalVisitor(UnsignedVisitor))
}

/// A number (integer or float, rounded) or a numeric string, as a signed integer; `null` is absent.
pub(crate) fn opt_i64_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_any(OptionalVisitor(SignedVisitor))
}

/// A string or a number, kept as its string form (ESPN ids and sequence numbers).
pub(crate) fn string_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(StringVisitor)
}

/// Like [`string_lenient`], with `null` as absent.
pub(crate) fn opt_string_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    deserializer.deserialize_any(OptionalVisitor(StringVisitor))
}

/// Wraps a visitor so that `null`/unit (and an empty string) mean `None`.
struct OptionalVisitor<V>(V);

impl<'de, V> Visitor<'de> for OptionalVisitor<V>
where
    V: Visitor<'de> + Copy,
{
    type Value = Option<V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)?;
        f.write_str(" or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.0.visit_u64(v).map(Some)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.0.visit_i64(v).map(Some)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.0.visit_f64(v).map(Some)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.trim().is_empty() { Ok(None) } else { self.0.visit_str(v).map(Some) }
    }
}

#[derive(Clone, Copy)]
struct UnsignedVisitor;

impl<'de> Visitor<'de> for UnsignedVisitor {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a numeric string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) {
            // Checked above: integral, finite and in range, so the cast is exact.
            Ok(v as u32)
        } else {
            Err(E::custom(format!("{v} is not a non-negative integer")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        v.trim().parse().map_err(|_| E::custom(format!("`{v}` is not a non-negative integer")))
    }
}

#[derive(Clone, Copy)]
struct SignedVisitor;

impl<'de> Visitor<'de> for SignedVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a numeric string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is out of range")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // i64 covers ±9.2e18; anything outside is not a court coordinate.
        if v.is_finite() && v.abs() < 9.0e18 {
            Ok(v.round() as i64)
        } else {
            Err(E::custom(format!("{v} is out of range")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        let trimmed = v.trim();
        if let Ok(int) = trimmed.parse::<i64>() {
            return Ok(int);
        }
        match trimmed.parse::<f64>() {
            Ok(float) => self.visit_f64(float),
            Err(_) => Err(E::custom(format!("`{v}` is not a number"))),
        }
    }
}

#[derive(Clone, Copy)]
struct StringVisitor;

impl<'de> Visitor<'de> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "super::opt_u32_lenient")]
        score: Option<u32>,
        #[serde(default, deserialize_with = "super::opt_i64_lenient")]
        x: Option<i64>,
        #[serde(default, deserialize_with = "super::opt_string_lenient")]
        id: Option<String>,
    }

    fn probe(json: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn scores_may_be_strings_or_numbers() {
        assert_eq!(probe(r#"{"score":"87"}"#).map(|p| p.score).ok(), Some(Some(87)));
        assert_eq!(probe(r#"{"score":87}"#).map(|p| p.score).ok(), Some(Some(87)));
        assert_eq!(probe(r#"{"score":87.0}"#).map(|p| p.score).ok(), Some(Some(87)));
        assert_eq!(probe(r#"{"score":null}"#).map(|p| p.score).ok(), Some(None));
        assert_eq!(probe(r#"{"score":""}"#).map(|p| p.score).ok(), Some(None));
        assert_eq!(probe(r#"{}"#).map(|p| p.score).ok(), Some(None));
        assert!(probe(r#"{"score":-1}"#).is_err());
        assert!(probe(r#"{"score":"x"}"#).is_err());
        assert!(probe(r#"{"score":[1]}"#).is_err());
    }

    #[test]
    fn coordinates_and_ids_are_lenient() {
        assert_eq!(probe(r#"{"x":-214748340}"#).map(|p| p.x).ok(), Some(Some(-214_748_340)));
        assert_eq!(probe(r#"{"x":25.4}"#).map(|p| p.x).ok(), Some(Some(25)));
        assert_eq!(probe(r#"{"id":19}"#).map(|p| p.id).ok(), Some(Some("19".to_owned())));
        assert!(probe(r#"{"x":1e300}"#).is_err());
    }
}
