//! Example pipelines for pbp-dataflow: run them with `cargo run --example NAME` from the workspace root.
