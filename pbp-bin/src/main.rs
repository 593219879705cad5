//! `pbp`: the Play-by-Play command. Everything is in the library (`lib.rs`); the binary picks the allocator.
#![forbid(unsafe_code)]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    pbp_bin::run()
}
