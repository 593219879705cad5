//! Compatibility levels and the check behind them.

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility as Resolvable, SchemaCompatibility};
use serde::{Deserialize, Serialize};

/// A Confluent compatibility level: which earlier schemas a new schema is checked against, and in which
/// direction.
///
/// * `BACKWARD` (the default): the new schema can read data written with the latest schema.
/// * `FORWARD`: the latest schema can read data written with the new schema.
/// * `FULL`: both.
/// * the `_TRANSITIVE` forms check against every earlier version, not only the latest.
/// * `NONE`: no check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// No check.
    None,
    /// New reads latest.
    #[default]
    Backward,
    /// New reads every earlier version.
    BackwardTransitive,
    /// Latest reads new.
    Forward,
    /// Every earlier version reads new.
    ForwardTransitive,
    /// New and latest read each other.
    Full,
    /// New and every earlier version read each other.
    FullTransitive,
}

impl Compatibility {
    /// The level's name as Confluent writes it, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a level name (case-sensitive, as Confluent).
    pub fn parse(level: &str) -> Option<Self> {
        [
            Self::None,
            Self::Backward,
            Self::BackwardTransitive,
            Self::Forward,
            Self::ForwardTransitive,
            Self::Full,
            Self::FullTransitive,
        ]
        .into_iter()
        .find(|l| l.as_str() == level)
    }

    fn transitive(self) -> bool {
        matches!(self, Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive)
    }

    fn backward(self) -> bool {
        matches!(self, Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive)
    }

    fn forward(self) -> bool {
        matches!(self, Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive)
    }
}

impl std::fmt::Display for Compatibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks `new` against `earlier` (oldest first) at `level`. `Err` carries the reason of the first failure.
///
/// The direction follows Avro schema resolution: "A reads B" means a reader using schema A can decode data
/// written with schema B (`SchemaCompatibility::can_read(B, A)`). Under `BACKWARD`, adding a field without
/// a default fails (the new reader has no value for it in old data) and removing a field passes; under
/// `FORWARD` it is the other way round.
///
/// ```
/// use apache_avro::Schema;
/// use pbp_avro::registry::{Compatibility, check_compatibility};
/// let v1 = Schema::parse_str(r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#).unwrap();
/// let v2 = Schema::parse_str(
///     r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},
///         {"name":"b","type":["null","string"],"default":null}]}"#,
/// ).unwrap();
/// assert!(check_compatibility(Compatibility::Backward, &v2, &[&v1]).is_ok());
/// ```
pub fn check_compatibility(level: Compatibility, new: &Schema, earlier: &[&Schema]) -> Result<(), String> {
    let against: &[&Schema] = match earlier {
        [] => return Ok(()),
        _ if level.transitive() => earlier,
        [.., latest] => std::slice::from_ref(latest),
    };
    for (i, old) in against.iter().enumerate() {
        let which = if level.transitive() { format!("version {}", i + 1) } else { "the latest version".to_owned() };
        if level.backward() {
            reads(old, new).map_err(|e| format!("the new schema cannot read data written with {which}: {e}"))?;
        }
        if level.forward() {
            reads(new, old).map_err(|e| format!("{which} cannot read data written with the new schema: {e}"))?;
        }
    }
    Ok(())
}

/// Whether a reader with `reader` can read every datum written with `writer`. apache-avro's "partial"
/// compatibility (some writer values would fail, e.g. a union branch the reader lacks) counts as a failure,
/// as in Confluent's registry.
fn reads(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Resolvable::Full) => Ok(()),
        Ok(Resolvable::Partial) => {
            Err("only some of the writer's values can be read (a union branch or enum symbol is missing)".to_owned())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    //! Each test names the Avro resolution rule it checks. "R reads W" = a reader with schema R decodes
    //! data written with schema W.

    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(r#"{{"type":"record","name":"T","namespace":"t","fields":[{fields}]}}"#)).unwrap()
    }

    const A: &str = r#"{"name":"a","type":"int"}"#;
    const B_OPT: &str = r#"{"name":"b","type":["null","string"],"default":null}"#;
    const B_REQ: &str = r#"{"name":"b","type":"string"}"#;

    #[test]
    fn backward_adding_an_optional_field_with_default_passes() {
        // Rule: a reader field missing from the writer takes its default. v2 (a, b = null) reads v1 (a).
        assert_eq!(
            check_compatibility(Compatibility::Backward, &record(&format!("{A},{B_OPT}")), &[&record(A)]),
            Ok(())
        );
    }

    #[test]
    fn backward_adding_a_field_without_default_fails() {
        // Rule: a reader field missing from the writer with no default is an error. v2 (a, b) cannot read v1 (a).
        let err =
            check_compatibility(Compatibility::Backward, &record(&format!("{A},{B_REQ}")), &[&record(A)]).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn backward_removing_a_field_passes_and_forward_removing_a_field_without_default_fails() {
        // Rule: a writer field the reader lacks is skipped, so v2 (a) reads v1 (a, b): BACKWARD passes.
        let v1 = record(&format!("{A},{B_REQ}"));
        let v2 = record(A);
        assert_eq!(check_compatibility(Compatibility::Backward, &v2, &[&v1]), Ok(()));
        // The issue's "removing a field without default fails" is the old-reader side of that removal: v1,
        // whose `b` has no default, cannot read v2's data, which FORWARD (and FULL) reject.
        assert!(check_compatibility(Compatibility::Forward, &v2, &[&v1]).is_err());
        assert!(check_compatibility(Compatibility::Full, &v2, &[&v1]).is_err());
        // Removing a field that has a default is fine both ways.
        let v1 = record(&format!("{A},{B_OPT}"));
        assert_eq!(check_compatibility(Compatibility::Full, &v2, &[&v1]), Ok(()));
    }

    #[test]
    fn type_changes_follow_promotion_rules() {
        // Rule: int is promoted to long when read, not the other way round.
        let int = record(A);
        let long = record(r#"{"name":"a","type":"long"}"#);
        assert_eq!(check_compatibility(Compatibility::Backward, &long, &[&int]), Ok(()));
        assert!(check_compatibility(Compatibility::Backward, &int, &[&long]).is_err());
    }

    #[test]
    fn transitive_levels_check_every_version() {
        // v1 has b required; v2 drops b; v3 re-adds b as required. v3 reads v2? no (b missing, no default).
        let v1 = record(&format!("{A},{B_REQ}"));
        let v2 = record(&format!("{A},{B_OPT}"));
        let v3 = record(&format!("{A},{B_REQ}"));
        // Latest only: v3 (b required) reads v2 (b present, nullable)? No: a union is not readable as string.
        assert!(check_compatibility(Compatibility::Backward, &v3, &[&v1, &v2]).is_err());
        // Compared to v1 alone it passes, so the transitive check fails because of v2 only.
        assert_eq!(check_compatibility(Compatibility::BackwardTransitive, &v3, &[&v1]), Ok(()));
        assert!(check_compatibility(Compatibility::BackwardTransitive, &v3, &[&v1, &v2]).is_err());
        assert_eq!(check_compatibility(Compatibility::None, &v3, &[&v1, &v2]), Ok(()));
    }

    #[test]
    fn level_names_round_trip() {
        for level in
            ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"]
        {
            assert_eq!(Compatibility::parse(level).map(Compatibility::as_str), Some(level));
            assert_eq!(serde_json::to_value(Compatibility::parse(level).unwrap()).unwrap(), level);
        }
        assert_eq!(Compatibility::parse("backward"), None);
    }
}
