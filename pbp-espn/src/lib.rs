//! ESPN basketball ingestion for Play-by-Play.
//!
//! The crate turns ESPN's public JSON feeds into canonical play events, and does so correctly on real games:
//!
//! * [`model`]: typed serde models of the site scoreboard, site summary, cdn play-by-play, core-API plays pages
//!   and the teams list, tolerant exactly where ESPN is irregular.
//! * [`normalize`]: maps ESPN plays to a canonical [`normalize::EventType`] vocabulary with derived fields
//!   (seconds left, acting side, shot value, location).
//! * [`diff`]: per-game snapshot diff keyed by play id, so late inserts and corrections are never lost.
//! * [`client`]: the HTTP client (retry with backoff, `Retry-After`, conditional requests, circuit breakers,
//!   Prometheus metrics).
//! * [`collect`]: the scoreboard poller and per-game play-by-play collectors.
//! * [`fake`]: a fake ESPN server that serves recorded files, replays finished games live (late inserts and
//!   corrections included) and injects faults.
//!
//! It knows nothing of Kafka or SQL: collectors deliver [`collect::CollectorEvent`]s through a channel.
//!
//! ```
//! use pbp_espn::normalize::{EventType, normalize_summary};
//! use pbp_espn::{GameSnapshotState, model};
//!
//! let json = br#"{"header":{"id":"1","competitions":[]},"plays":[{"id":"14","sequenceNumber":"4",
//!     "type":{"id":"92","text":"Jump Shot"},"period":{"number":1},"clock":{"displayValue":"11:42"},
//!     "awayScore":0,"homeScore":2,"scoringPlay":true,"scoreValue":2}]}"#;
//! let summary = model::parse_summary(json)?;
//! let (_, plays) = normalize_summary(&summary, None);
//! assert_eq!(plays[0].event_type, EventType::JumpShot);
//! assert_eq!(plays[0].game_seconds_left, Some(2862.0));
//!
//! let mut state = GameSnapshotState::new();
//! assert_eq!(state.apply(plays.clone()).changes.len(), 1, "new");
//! assert!(state.apply(plays).changes.is_empty(), "same snapshot again: nothing to emit");
//! # Ok::<(), pbp_espn::ParseError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod collect;
pub mod diff;
pub mod fake;
pub mod league;
pub mod model;
pub mod normalize;

pub use client::{ClientConfig, ClientError, EspnClient};
pub use diff::{ChangeKind, DEFAULT_DELETE_AFTER, GameSnapshotState, PlayChange, SnapshotDiff};
pub use league::League;
pub use model::ParseError;
pub use normalize::{EventType, GameContext, NormalizedPlay, Side};
