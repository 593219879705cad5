//! Live push: every play and game state the store accepts, broadcast to the WebSocket sessions of its game.
//!
//! The serve pipelines write through a [`PublishingRepository`]; after each write it hands the hub what the
//! store actually inserted or changed (a re-delivered or stale row changes nothing and is not pushed). The
//! [`Hub`] keeps one broadcast channel per game that has sessions and serializes each frame once, for all of
//! them; a game nobody watches costs a map lookup per write. Sessions (`crate::http::ws`) read their game's
//! channel, each at its own pace, within the channel's bounded capacity.

mod frame;
mod hub;
mod publish;
#[cfg(test)]
mod tests;

pub(crate) use self::frame::{Frame, FrameKind, SnapshotReason, snapshot_text};
pub(crate) use self::hub::{Hub, supersedes};
pub(crate) use self::publish::PublishingRepository;
