//! Whole documents that carry plays: the site summary, the cdn play-by-play page and a core-API plays page.

use serde::Deserialize;

use super::game::{FormatSection, Header};
use super::play::Play;

/// A site summary (`/apis/site/v2/sports/basketball/{league}/summary?event={id}`).
///
/// A pre-game summary has no `plays` key; it parses to an empty `plays`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Summary {
    /// Game header: id, league, competitors, status.
    pub header: Header,
    /// Plays in feed order (game-time order, not sequence order).
    #[serde(default)]
    pub plays: Vec<Play>,
    /// Period structure; absent from the cdn payload.
    #[serde(default)]
    pub format: Option<FormatSection>,
}

/// A cdn play-by-play page (`/core/{league}/playbyplay?gameId={id}&xhr=1`): the summary lives in `gamepackageJSON`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CdnPlayByPlay {
    /// The game package, shaped like a site summary.
    #[serde(rename = "gamepackageJSON")]
    pub game_package: Summary,
}

/// A core-API plays page (`…/events/{id}/competitions/{id}/plays?limit=1000`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CorePlaysPage {
    /// URL of this page; it names the event.
    #[serde(rename = "$ref", default)]
    pub reference: Option<String>,
    /// Total number of plays over all pages.
    #[serde(default)]
    pub count: Option<u64>,
    /// 1-based page index.
    #[serde(default)]
    pub page_index: Option<u64>,
    /// Page size requested.
    #[serde(default)]
    pub page_size: Option<u64>,
    /// Number of pages.
    #[serde(default)]
    pub page_count: Option<u64>,
    /// The plays on this page.
    #[serde(default)]
    pub items: Vec<Play>,
}

impl CorePlaysPage {
    /// The event id, read from the page's `$ref`.
    pub fn event_id(&self) -> Option<&str> {
        self.reference.as_deref().and_then(|url| super::play::id_after(url, "/events/"))
    }
}
