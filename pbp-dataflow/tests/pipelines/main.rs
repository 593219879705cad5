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
                if let Some(env) = $env {
                    crate::common::bounded(s::restart_resumes_from_committed_offsets(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn crash_before_commit_redelivers_and_loses_nothing() {
                if let Some(env) = $env {
                    crate::common::bounded(s::crash_before_commit_redelivers_and_loses_nothing(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn aggregate_restores_from_changelog_and_never_double_counts() {
                if let Some(env) = $env {
                    crate::common::bounded(s::aggregate_restores_from_changelog_and_never_double_counts(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn global_table_bootstrap_barrier_updates_and_tombstones() {
                if let Some(env) = $env {
                    crate::common::bounded(s::global_table_bootstrap_barrier_updates_and_tombstones(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn global_table_joins_a_record_appended_right_after_its_table_entry() {
                if let Some(env) = $env {
                    crate::common::bounded(s::global_table_joins_a_record_appended_right_after_its_table_entry(env))
                        .await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_codec_that_waits_holds_records_back_without_dead_lettering() {
                if let Some(env) = $env {
                    crate::common::bounded(s::a_codec_that_waits_holds_records_back_without_dead_lettering(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dead_letters_carry_bytes_and_kip1034_headers() {
                if let Some(env) = $env {
                    crate::common::bounded(s::dead_letters_carry_bytes_and_kip1034_headers(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dlq_limit_stops_the_pipeline_without_committing() {
                if let Some(env) = $env {
                    crate::common::bounded(s::dlq_limit_stops_the_pipeline_without_committing(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dlq_limit_counts_records_in_the_order_they_came() {
                if let Some(env) = $env {
                    crate::common::bounded(s::dlq_limit_counts_records_in_the_order_they_came(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_state_encoded_as_null_stops_the_pipeline_without_committing() {
                if let Some(env) = $env {
                    crate::common::bounded(s::a_state_encoded_as_null_stops_the_pipeline_without_committing(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn records_of_one_key_keep_their_order() {
                if let Some(env) = $env {
                    crate::common::bounded(s::records_of_one_key_keep_their_order(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn graceful_shutdown_finishes_and_commits() {
                if let Some(env) = $env {
                    crate::common::bounded(s::graceful_shutdown_finishes_and_commits(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sink_rejections_are_dead_lettered_and_count_toward_the_limit() {
                if let Some(env) = $env {
                    crate::common::bounded(s::sink_rejections_are_dead_lettered_and_count_toward_the_limit(env)).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn aggregate_per_batch_restores_and_emits_each_key_once_per_batch() {
                if let Some(env) = $env {
                    crate::common::bounded(s::aggregate_per_batch_restores_and_emits_each_key_once_per_batch(env))
                        .await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ticks_reach_operators_with_timers() {
                if let Some(env) = $env {
                    crate::common::bounded(s::ticks_reach_operators_with_timers(env)).await;
                }
            }
        }
    };
}

scenarios!(embedded => Some(crate::common::embedded()));
#[cfg(feature = "kafka")]
scenarios!(kafka => crate::common::kafka());

mod backpressure;
#[cfg(feature = "kafka")]
mod kafka_only;
