#![allow(unreachable_pub)]
//! Black-box pipeline tests. Each scenario is a function of an `Env`; the `scenarios!` macro instantiates
//! them for every transport.

mod common;
mod scenarios;

macro_rules! scenarios {
    ($transport:ident => $env:expr) => {
        mod $transport {
            use super::scenarios as s;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn restart_resumes_from_committed_offsets() {
                s::restart_resumes_from_committed_offsets($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_before_commit_redelivers_and_loses_nothing() {
                s::crash_before_commit_redelivers_and_loses_nothing($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn aggregate_restores_from_changelog_and_never_double_counts() {
                s::aggregate_restores_from_changelog_and_never_double_counts($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn global_table_bootstrap_barrier_updates_and_tombstones() {
                s::global_table_bootstrap_barrier_updates_and_tombstones($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_letters_carry_bytes_and_kip1034_headers() {
                s::dead_letters_carry_bytes_and_kip1034_headers($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dlq_limit_stops_the_pipeline_without_committing() {
                s::dlq_limit_stops_the_pipeline_without_committing($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn records_of_one_key_keep_their_order() {
                s::records_of_one_key_keep_their_order($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn graceful_shutdown_finishes_and_commits() {
                s::graceful_shutdown_finishes_and_commits($env).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ticks_reach_operators_with_timers() {
                s::ticks_reach_operators_with_timers($env).await;
            }
        }
    };
}

scenarios!(embedded => crate::common::embedded());

mod backpressure;
