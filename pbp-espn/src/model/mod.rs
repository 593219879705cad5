//! Typed models of ESPN's basketball JSON.
//!
//! Everything is parsed straight into typed structs (unknown keys are skipped without building a value tree),
//! which keeps a 0.75 MB summary well under a millisecond. Tolerance follows FIELDS.md: on a play only `id`,
//! `sequenceNumber`, `type`, `period`, `clock`, `awayScore` and `homeScore` are required; scores may be strings or
//! numbers; ids may be strings or numbers.

mod de;
mod game;
mod pages;
mod play;
mod scoreboard;
mod teams;

pub use game::{
    Competition, Competitor, FormatSection, Header, LeagueRef, LineScore, OvertimeFormat, RegulationFormat, Season,
    Status, StatusType, Team,
};
pub use pages::{CdnPlayByPlay, CorePlaysPage, Summary};
pub use play::{AthleteRef, Clock, Coordinate, Participant, Period, Play, PlayType, TeamRef};
pub use scoreboard::{Scoreboard, ScoreboardDay, ScoreboardEvent};
pub use teams::{TeamEntry, TeamsLeague, TeamsResponse, TeamsSport};

pub(crate) use play::id_after as id_after_marker;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A payload that could not be parsed, with the JSON path of the first error (`plays[12].clock`).
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} at `{path}`: {error}")]
pub struct ParseError {
    /// What was being parsed (`summary`, `scoreboard`, …).
    pub what: &'static str,
    /// JSON path of the error, `.` for the document root.
    pub path: String,
    /// The underlying serde error (line and column included). Not chained as a source: the message above
    /// already carries it.
    pub error: serde_json::Error,
}

/// Parses `bytes` as `T`. The fast path is a plain typed parse; only on failure is the input parsed a second time
/// with path tracking, so that the error names the JSON path without slowing down the common case.
fn parse<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, ParseError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(first) => {
            let mut deserializer = serde_json::Deserializer::from_slice(bytes);
            match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
                Err(error) => {
                    let path = error.path().to_string();
                    Err(ParseError { what, path, error: error.into_inner() })
                }
                // The tracked parse succeeded where the plain one failed: cannot happen for the same input, but
                // report the first error rather than trusting either.
                Ok(_) => Err(ParseError { what, path: ".".to_owned(), error: first }),
            }
        }
    }
}

/// Parses a site summary (`/summary?event=`).
pub fn parse_summary(bytes: &[u8]) -> Result<Summary, ParseError> {
    parse("summary", bytes)
}

/// Parses a cdn play-by-play page (`/core/{league}/playbyplay?gameId=&xhr=1`).
pub fn parse_cdn_play_by_play(bytes: &[u8]) -> Result<CdnPlayByPlay, ParseError> {
    parse("cdn play-by-play", bytes)
}

/// Parses a core-API plays page (`…/events/{id}/competitions/{id}/plays`).
pub fn parse_core_plays_page(bytes: &[u8]) -> Result<CorePlaysPage, ParseError> {
    parse("core plays page", bytes)
}

/// Parses a site scoreboard (`/scoreboard?dates=`).
pub fn parse_scoreboard(bytes: &[u8]) -> Result<Scoreboard, ParseError> {
    parse("scoreboard", bytes)
}

/// Parses the site teams list (`/teams`).
pub fn parse_teams(bytes: &[u8]) -> Result<TeamsResponse, ParseError> {
    parse("teams list", bytes)
}

/// Any ESPN document that carries plays, recognised by its top-level keys.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayDocument {
    /// A site summary (or the `gamepackageJSON` of a cdn page, which has the same shape).
    Summary(Summary),
    /// A core-API plays page.
    CorePlays(CorePlaysPage),
}

/// What kind of ESPN document a JSON body is, told by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A site summary (`header`).
    Summary,
    /// A cdn play-by-play page (`gamepackageJSON`).
    CdnPlayByPlay,
    /// A core-API plays page (`items`).
    CorePlays,
    /// A teams list (`sports`).
    Teams,
    /// A scoreboard (`events`).
    Scoreboard,
    /// JSON, but none of the above.
    Unknown,
}

/// Top-level keys that tell the documents apart, read without building the rest.
#[derive(Deserialize)]
struct DocumentProbe {
    #[serde(rename = "gamepackageJSON", default)]
    game_package: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    header: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    items: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    sports: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    events: Option<serde::de::IgnoredAny>,
}

/// Tells what kind of ESPN document `bytes` hold; an error only when they are not a JSON object.
pub fn document_kind(bytes: &[u8]) -> Result<DocumentKind, ParseError> {
    let probe: DocumentProbe = parse("ESPN document", bytes)?;
    Ok(if probe.game_package.is_some() {
        DocumentKind::CdnPlayByPlay
    } else if probe.header.is_some() {
        DocumentKind::Summary
    } else if probe.items.is_some() {
        DocumentKind::CorePlays
    } else if probe.sports.is_some() {
        DocumentKind::Teams
    } else if probe.events.is_some() {
        DocumentKind::Scoreboard
    } else {
        DocumentKind::Unknown
    })
}

/// Parses a summary, a cdn play-by-play page or a core-API plays page, recognised by content.
pub fn parse_play_document(bytes: &[u8]) -> Result<PlayDocument, ParseError> {
    match document_kind(bytes)? {
        DocumentKind::CdnPlayByPlay => Ok(PlayDocument::Summary(parse_cdn_play_by_play(bytes)?.game_package)),
        DocumentKind::Summary => Ok(PlayDocument::Summary(parse_summary(bytes)?)),
        DocumentKind::CorePlays => Ok(PlayDocument::CorePlays(parse_core_plays_page(bytes)?)),
        DocumentKind::Teams | DocumentKind::Scoreboard | DocumentKind::Unknown => {
            let error = <serde_json::Error as serde::de::Error>::custom(
                "not a play document: expected a `header` (summary), `gamepackageJSON` (cdn) or `items` (core plays)",
            );
            Err(ParseError { what: "ESPN document", path: ".".to_owned(), error })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_the_json_path() {
        let json = br#"{"header":{"id":"1","competitions":[]},"plays":[{"id":"1","sequenceNumber":"4",
            "type":{"id":"92","text":"Jump Shot"},"period":{"number":1},"clock":{"displayValue":"1:00"},
            "awayScore":0,"homeScore":"x"}]}"#;
        let error = parse_summary(json).err();
        assert_eq!(error.map(|e| e.path), Some("plays[0].homeScore".to_owned()));
    }

    #[test]
    fn documents_are_recognised_by_content() {
        let summary = br#"{"header":{"id":"7","competitions":[]}}"#;
        assert!(matches!(parse_play_document(summary), Ok(PlayDocument::Summary(s)) if s.header.id == "7"));
        let cdn = br#"{"gameId":"7","gamepackageJSON":{"header":{"id":"7","competitions":[]},"plays":[]}}"#;
        assert!(matches!(parse_play_document(cdn), Ok(PlayDocument::Summary(_))));
        let core = br#"{"count":0,"items":[]}"#;
        assert!(matches!(parse_play_document(core), Ok(PlayDocument::CorePlays(_))));
        assert!(parse_play_document(br#"{"events":[]}"#).is_err());
        assert!(parse_play_document(b"[").is_err());
    }
}
