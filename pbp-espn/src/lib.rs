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
//! * [`fake`]: a fake ESPN server that serves recorded files, replays finished games live and injects faults.
//!
//! It knows nothing of Kafka or SQL: collectors deliver [`collect::CollectorEvent`]s through a channel.
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
pub use diff::{ChangeKind, GameSnapshotState, PlayChange, SnapshotDiff};
pub use league::League;
pub use model::ParseError;
pub use normalize::{EventType, GameContext, NormalizedPlay, Side};
