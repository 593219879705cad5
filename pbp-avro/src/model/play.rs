//! `PlayEvent`: one normalized play.

use serde::{Deserialize, Serialize};

/// Which side of the game a team plays on. An Avro (and JSON) string: `home` or `away`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The home team.
    Home,
    /// The away team.
    Away,
}

/// Whether a play is seen for the first time, corrects one already emitted, or was deleted from the feed. An
/// Avro (and JSON) string: `new`, `update` or `delete`.
///
/// `delete` was added after the first schema version: the field is a `string`, so the schema is unchanged (same
/// canonical form, same registry id), but a reader of an older version refuses the value (its record goes to
/// its dead-letter queue). Consumers (enrich, serve) must be upgraded before the producers (ingest, enrich)
/// emit it; `docs/avro.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// First time this play is emitted (or emitted again after a deletion: ESPN restored it).
    New,
    /// A correction of a play already emitted (same `play_id`, changed content).
    Update,
    /// The play disappeared from the feed: the record carries the play's last emitted content.
    Delete,
}

/// Serializes a unit-only enum as a plain string (not as a serde enum variant), so that every Avro
/// serializer maps it to an Avro `string`, and parses it back.
macro_rules! string_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The value as written on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown {} {other:?}, expected one of {:?}", stringify!($ty), [$($text),+])),
                }
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {:?}", [$($text),+])
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

string_enum!(Side { Home => "home", Away => "away" });
string_enum!(ChangeKind { New => "new", Update => "update", Delete => "delete" });

/// A location on the feed's half-court grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinate {
    /// Across the court, 0-50.
    pub x: i32,
    /// Distance from the baseline.
    pub y: i32,
}

/// One normalized basketball play (schema `com.playbyplay.PlayEvent`, `schemas/PlayEvent.avsc`).
///
/// Timestamps are milliseconds since the Unix epoch (Avro `timestamp-millis`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayEvent {
    /// The feed's event id of the game.
    pub game_id: String,
    /// The feed's id of the play, unique within the game.
    pub play_id: String,
    /// Sequence number within the game.
    pub sequence: i64,
    /// Period number (5 and above are overtimes in the NBA).
    pub period: i32,
    /// Game clock as displayed by the feed.
    pub clock_display: String,
    /// Seconds left in the period.
    pub clock_seconds: f64,
    /// Seconds left in regulation (0 during overtime).
    pub game_seconds_left: f64,
    /// Canonical event type in snake_case, e.g. `jump_shot`.
    pub event_type: String,
    /// The feed's type id.
    pub espn_type_id: String,
    /// The feed's type text.
    pub espn_type_text: String,
    /// Team the play is attributed to.
    pub team_id: Option<String>,
    /// Which side `team_id` plays on.
    pub side: Option<Side>,
    /// Home score after the play.
    pub home_score: i32,
    /// Away score after the play.
    pub away_score: i32,
    /// Points scored on the play.
    pub score_value: i32,
    /// True if points were scored.
    pub scoring_play: bool,
    /// True for field-goal attempts and free throws.
    pub shooting_play: bool,
    /// Points the shot was worth if made.
    pub shot_value: Option<i32>,
    /// Where the play happened.
    pub coordinate: Option<Coordinate>,
    /// Real-world time of the play, ms since the epoch.
    pub wallclock: Option<i64>,
    /// Athlete ids involved, in the feed's order.
    pub participants: Vec<String>,
    /// The feed's description.
    pub text: String,
    /// League slug, e.g. `nba`.
    pub league: String,
    /// New play or correction.
    pub change: ChangeKind,
    /// When the collector fetched the play, ms since the epoch.
    pub fetched_at: i64,
    /// Id of the game's home team (schema version 2; `None` in records written by version 1).
    #[serde(default)]
    pub home_team_id: Option<String>,
    /// Id of the game's away team (schema version 2; `None` in records written by version 1).
    #[serde(default)]
    pub away_team_id: Option<String>,
}

impl PlayEvent {
    /// A realistic made three-pointer (from a recorded NBA game), with every optional field set. Handy in
    /// examples, tests and benchmarks.
    pub fn example() -> Self {
        Self {
            game_id: "401585607".to_owned(),
            play_id: "4015856077".to_owned(),
            sequence: 7,
            period: 1,
            clock_display: "11:21".to_owned(),
            clock_seconds: 681.0,
            game_seconds_left: 2841.0,
            event_type: "jump_shot".to_owned(),
            espn_type_id: "92".to_owned(),
            espn_type_text: "Jump Shot".to_owned(),
            team_id: Some("19".to_owned()),
            side: Some(Side::Home),
            home_score: 3,
            away_score: 0,
            score_value: 3,
            scoring_play: true,
            shooting_play: true,
            shot_value: Some(3),
            coordinate: Some(Coordinate { x: 28, y: 26 }),
            wallclock: Some(1_710_713_444_000),
            participants: vec!["4432573".to_owned(), "3134908".to_owned()],
            text: "Wendell Carter Jr. makes 26-foot three point jumper (Franz Wagner assists)".to_owned(),
            league: "nba".to_owned(),
            change: ChangeKind::New,
            fetched_at: 1_710_713_446_123,
            home_team_id: Some("19".to_owned()),
            away_team_id: Some("2".to_owned()),
        }
    }

    /// An end-of-period play: every optional field is `None` and there are no participants.
    pub fn example_sparse() -> Self {
        Self {
            play_id: "401585607180".to_owned(),
            sequence: 180,
            clock_display: "0.0".to_owned(),
            clock_seconds: 0.0,
            game_seconds_left: 2160.0,
            event_type: "end_period".to_owned(),
            espn_type_id: "412".to_owned(),
            espn_type_text: "End Period".to_owned(),
            team_id: None,
            side: None,
            home_score: 31,
            away_score: 27,
            score_value: 0,
            scoring_play: false,
            shooting_play: false,
            shot_value: None,
            coordinate: None,
            wallclock: None,
            participants: Vec::new(),
            text: "End of the 1st Quarter".to_owned(),
            change: ChangeKind::Update,
            ..Self::example()
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::AvroRecord;

    fn any_play() -> impl Strategy<Value = PlayEvent> {
        let ids = ("[0-9]{1,12}", "[0-9]{1,14}", any::<i64>(), any::<i32>(), ".{0,8}", -1e6..1e6f64, -1e6..1e6f64);
        let kind = (
            "[a-z_]{0,24}",
            "[0-9]{0,4}",
            ".{0,30}",
            proptest::option::of("[0-9]{1,4}"),
            proptest::option::of(prop_oneof![Just(Side::Home), Just(Side::Away)]),
        );
        let score = (
            any::<i32>(),
            any::<i32>(),
            any::<i32>(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(any::<i32>()),
        );
        let rest = (
            proptest::option::of((any::<i32>(), any::<i32>()).prop_map(|(x, y)| Coordinate { x, y })),
            proptest::option::of(any::<i64>()),
            proptest::collection::vec("[0-9]{1,10}", 0..5),
            ".{0,120}",
            "[a-z-]{2,24}",
            prop_oneof![Just(ChangeKind::New), Just(ChangeKind::Update), Just(ChangeKind::Delete)],
            any::<i64>(),
            proptest::option::of("[0-9]{1,6}"),
            proptest::option::of("[0-9]{1,6}"),
        );
        (ids, kind, score, rest).prop_map(|(ids, kind, score, rest)| PlayEvent {
            game_id: ids.0,
            play_id: ids.1,
            sequence: ids.2,
            period: ids.3,
            clock_display: ids.4,
            clock_seconds: ids.5,
            game_seconds_left: ids.6,
            event_type: kind.0,
            espn_type_id: kind.1,
            espn_type_text: kind.2,
            team_id: kind.3,
            side: kind.4,
            home_score: score.0,
            away_score: score.1,
            score_value: score.2,
            scoring_play: score.3,
            shooting_play: score.4,
            shot_value: score.5,
            coordinate: rest.0,
            wallclock: rest.1,
            participants: rest.2,
            text: rest.3,
            league: rest.4,
            change: rest.5,
            fetched_at: rest.6,
            home_team_id: rest.7,
            away_team_id: rest.8,
        })
    }

    proptest! {
        /// The fast binary path and apache-avro's schema-aware serde write the same bytes for any play, and
        /// both read them back.
        #[test]
        fn binary_path_agrees_with_apache_avro(play in any_play()) {
            let schema = apache_avro::Schema::parse_str(PlayEvent::SCHEMA).unwrap();
            let theirs = apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build().unwrap().write_ser_to_vec(&play).unwrap();
            let ours = crate::codec::binary::to_vec(&play, Vec::new()).unwrap();
            prop_assert_eq!(&ours, &theirs);
            let (back, rest) = crate::codec::binary::from_slice::<PlayEvent>(&ours).unwrap();
            prop_assert_eq!((&back, rest), (&play, 0));
            let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema).build().unwrap();
            prop_assert_eq!(reader.read_deser::<PlayEvent>(&mut &theirs[..]).unwrap(), play);
        }
    }

    /// Adding `delete` to `change` only changed the field's documentation: the canonical form, and so the
    /// registry id and every compatibility check, are those of the schema before.
    #[test]
    fn the_delete_change_kind_leaves_the_schemas_canonical_form_alone() {
        let doc_now = r#"\"new\" for a play seen for the first time (or again after a deletion), \"update\" for a correction of a play already emitted, \"delete\" for a play that disappeared from the feed (the record carries its last emitted content). \"delete\" came after the first version: readers must know it before producers write it."#;
        let doc_before =
            r#"\"new\" for a play seen for the first time, \"update\" for a correction of a play already emitted."#;
        for schema in [PlayEvent::SCHEMA, crate::EnrichedEvent::SCHEMA] {
            assert!(schema.contains(doc_now), "the schema documents delete");
            let before = schema.replace(doc_now, doc_before);
            let now = apache_avro::Schema::parse_str(schema).unwrap();
            let then = apache_avro::Schema::parse_str(&before).unwrap();
            assert_eq!(now.canonical_form(), then.canonical_form());
        }
    }

    #[test]
    fn play_event_matches_its_schema() {
        crate::model::schema_check::check(&PlayEvent::example(), &PlayEvent::example_sparse());
    }

    #[test]
    fn enum_like_strings_are_snake_case() {
        let json = serde_json::to_value(PlayEvent::example()).unwrap();
        assert_eq!(json["side"], "home");
        assert_eq!(json["change"], "new");
        assert_eq!(serde_json::from_str::<Side>("\"away\"").unwrap(), Side::Away);
        assert_eq!(serde_json::from_str::<ChangeKind>("\"update\"").unwrap(), ChangeKind::Update);
        assert_eq!(serde_json::from_str::<ChangeKind>("\"delete\"").unwrap(), ChangeKind::Delete);
        assert_eq!(serde_json::to_value(ChangeKind::Delete).unwrap(), "delete");
        let err = serde_json::from_str::<Side>("\"left\"").unwrap_err().to_string();
        assert!(err.contains("unknown Side \"left\""), "{err}");
    }
}
