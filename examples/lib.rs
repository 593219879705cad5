//! Example pipelines for pbp-dataflow. Run them from the workspace root with `cargo run --example NAME`.
//!
//! - `team_points`: joins scoring events with a team table, totals points per team, and dead-letters bad
//!   input — see [`team_points`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod team_points;
