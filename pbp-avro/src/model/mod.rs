//! The typed records, one per `.avsc` file under `pbp-avro/schemas/`.
//!
//! Each struct serializes with serde to exactly the fields of its schema, in schema order; the tests beside
//! each struct check that against the parsed schema. Enum-like values (`side`, `change`) are Avro strings, so
//! that a new value does not break old readers the way a new Avro enum symbol would.

mod enriched;
mod game_state;
mod play;
mod scoreboard;

use serde::{Serialize, de::DeserializeOwned};

pub use enriched::{EnrichedEvent, PeriodFormat, TeamInfo};
pub use game_state::{GameState, TeamCounters};
pub use play::{ChangeKind, Coordinate, PlayEvent, Side};
pub use scoreboard::{GameStatus, ScoreboardEvent};

/// A record type with its Avro schema.
pub trait AvroRecord: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The schema's full name, e.g. `com.playbyplay.PlayEvent`.
    const FULL_NAME: &'static str;
    /// The schema as JSON text (the content of the `.avsc` file).
    const SCHEMA: &'static str;
    /// True if the struct mirrors [`SCHEMA`](Self::SCHEMA) exactly: its serde fields are the schema's fields
    /// in the same order, `Option<T>` exactly where the schema has `["null", T]`, integers for `int`/`long`,
    /// `f32`/`f64` for `float`/`double`, strings (including string-like enums) for `string`, `Vec` for arrays
    /// and nested structs for records. Codecs then encode and decode it with pbp-avro's schema-free binary
    /// path, the fastest. Leave it `false` (the default) otherwise: apache-avro's schema-aware serde is used.
    const MIRRORS_SCHEMA: bool = false;
}

impl AvroRecord for PlayEvent {
    const FULL_NAME: &'static str = "com.playbyplay.PlayEvent";
    const SCHEMA: &'static str = include_str!("../../schemas/PlayEvent.avsc");
    const MIRRORS_SCHEMA: bool = true;
}

impl AvroRecord for ScoreboardEvent {
    const FULL_NAME: &'static str = "com.playbyplay.ScoreboardEvent";
    const SCHEMA: &'static str = include_str!("../../schemas/ScoreboardEvent.avsc");
    const MIRRORS_SCHEMA: bool = true;
}

impl AvroRecord for EnrichedEvent {
    const FULL_NAME: &'static str = "com.playbyplay.EnrichedEvent";
    const SCHEMA: &'static str = include_str!("../../schemas/EnrichedEvent.avsc");
    const MIRRORS_SCHEMA: bool = true;
}

impl AvroRecord for GameState {
    const FULL_NAME: &'static str = "com.playbyplay.GameState";
    const SCHEMA: &'static str = include_str!("../../schemas/GameState.avsc");
    const MIRRORS_SCHEMA: bool = true;
}

#[cfg(test)]
pub(crate) mod schema_check {
    //! Checks that a struct matches its schema exactly: same fields in the same order, every field documented,
    //! values valid for the schema, and a lossless round trip through both Avro encoders.

    use apache_avro::Schema;
    use apache_avro::schema::RecordSchema;
    use apache_avro::types::Value as AvroValue;
    use serde_json::Value as Json;

    use super::AvroRecord;

    fn field_names(schema: &Json) -> Vec<String> {
        schema["fields"]
            .as_array()
            .map(|f| f.iter().filter_map(|f| f["name"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    fn check_docs(node: &Json, path: &str) {
        match node {
            Json::Object(map) => {
                if map.get("type").and_then(Json::as_str) == Some("record") {
                    assert!(
                        map.get("doc").and_then(Json::as_str).is_some_and(|d| !d.is_empty()),
                        "{path}: record without doc"
                    );
                    for field in map["fields"].as_array().expect("fields") {
                        let name = field["name"].as_str().expect("field name");
                        assert!(
                            field["doc"].as_str().is_some_and(|d| !d.is_empty()),
                            "{path}.{name}: field without doc"
                        );
                        check_docs(&field["type"], &format!("{path}.{name}"));
                    }
                }
                if let Some(items) = map.get("items") {
                    check_docs(items, path);
                }
            }
            Json::Array(branches) => branches.iter().for_each(|b| check_docs(b, path)),
            _ => {}
        }
    }

    /// Compares apache-avro's serde view of `value` (which keeps field order) with the schema's fields,
    /// recursively for nested records.
    fn check_shape(value: &AvroValue, schema: &Json, named: &mut std::collections::HashMap<String, Json>, path: &str) {
        let schema = match schema {
            Json::String(name) => named.get(name).cloned().unwrap_or_else(|| schema.clone()),
            Json::Array(branches) => {
                let non_null: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
                assert_eq!(non_null.len(), 1, "{path}: only [null, T] unions are used");
                return match value {
                    AvroValue::Null => {}
                    AvroValue::Union(_, inner) if **inner == AvroValue::Null => {}
                    AvroValue::Union(_, inner) => check_shape(inner, non_null[0], named, path),
                    other => check_shape(other, non_null[0], named, path),
                };
            }
            other => other.clone(),
        };
        if schema.get("type").and_then(Json::as_str) == Some("record") {
            if let Some(name) = schema["name"].as_str() {
                named.insert(name.to_owned(), schema.clone());
            }
            let AvroValue::Record(fields) = value else { panic!("{path}: expected a record, got {value:?}") };
            let keys: Vec<&String> = fields.iter().map(|(k, _)| k).collect();
            let names = field_names(&schema);
            assert_eq!(keys, names.iter().collect::<Vec<_>>(), "{path}: struct fields differ from the schema's");
            for (field, (name, v)) in schema["fields"].as_array().expect("fields").iter().zip(fields) {
                check_shape(v, &field["type"], named, &format!("{path}.{name}"));
            }
        }
    }

    /// Runs every check on `value`, which should have every optional field set, and on `sparse`, which should
    /// have every optional field `None`.
    pub(crate) fn check<T: AvroRecord + PartialEq + std::fmt::Debug>(value: &T, sparse: &T) {
        // Decoding below fixes apache-avro's process-wide allocation limit; fix it to the codec's value first.
        crate::codec::limit_allocations();
        let json: Json = serde_json::from_str(T::SCHEMA).expect("schema is JSON");
        assert_eq!(
            format!("{}.{}", json["namespace"].as_str().unwrap_or(""), json["name"].as_str().unwrap_or("")),
            T::FULL_NAME
        );
        check_docs(&json, T::FULL_NAME);
        let schema = Schema::parse_str(T::SCHEMA).expect("apache-avro parses the schema");
        assert!(matches!(&schema, Schema::Record(RecordSchema { .. })));
        for v in [value, sparse] {
            let avro_value = apache_avro::to_value(v).expect("to avro value");
            check_shape(&avro_value, &json, &mut Default::default(), T::FULL_NAME);
            let resolved = avro_value.resolve(&schema).expect("value resolves against the schema");
            assert!(resolved.validate(&schema), "value does not validate against {}", T::FULL_NAME);
            // The Value path and the direct serde path agree byte for byte, and both read the value back.
            let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build().expect("writer");
            let by_value = writer.write_value_to_vec(resolved).expect("apache-avro encodes a value");
            let by_serde = writer.write_ser_to_vec(v).expect("apache-avro encodes with serde");
            assert_eq!(by_value, by_serde, "{}: encoders disagree", T::FULL_NAME);
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema).build().expect("reader");
            let back: T = reader.read_deser(&mut &by_serde[..]).expect("apache-avro decodes with serde");
            assert_eq!(&back, v);
            // The mirror claim holds: pbp-avro's binary path writes the same bytes and reads them back.
            assert!(T::MIRRORS_SCHEMA, "{} should mirror its schema", T::FULL_NAME);
            let by_binary = crate::codec::binary::to_vec(v, Vec::new()).expect("binary encodes");
            assert_eq!(by_binary, by_serde, "{}: binary encoder disagrees", T::FULL_NAME);
            let (back, rest) = crate::codec::binary::from_slice::<T>(&by_binary).expect("binary decodes");
            assert_eq!((&back, rest), (v, 0));
            let value_back = reader.read_value(&mut &by_value[..]).expect("apache-avro decodes a value");
            let back: T = apache_avro::from_value(&value_back).expect("from value");
            assert_eq!(&back, v);
        }
    }
}
