//! Pipeline metrics with prometheus-client.
//!
//! One [`DataflowMetrics`] serves every pipeline of a process; each series carries a `pipeline` label.
//! Counters are kept in plain integers inside the stages and added to these series once per batch, so that
//! metrics cost nothing per record.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-stage series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Stage name.
    pub stage: String,
}

/// Labels of per-pipeline series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    /// Pipeline name.
    pub pipeline: String,
}

/// Labels of per-partition series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

fn latency_histogram() -> Histogram {
    // 10 µs to about 10 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 21))
}

/// The metrics of all pipelines in a process.
#[derive(Debug, Clone)]
pub struct DataflowMetrics {
    /// Records polled from a pipeline's source, on Kafka or the embedded log (`kafka_messages_consumed_total`).
    pub messages_consumed: Family<PipelineLabels, Counter>,
    /// Records entering each stage (`pbp_dataflow_records_in_total`).
    pub records_in: Family<StageLabels, Counter>,
    /// Records a stage emitted (`pbp_dataflow_records_out_total`).
    pub records_out: Family<StageLabels, Counter>,
    /// Records sent to a dead-letter queue, by the stage that rejected them (`dlq_messages_total`).
    pub dlq_messages: Family<StageLabels, Counter>,
    /// Seconds from a batch being polled to its outputs being accepted by the sink
    /// (`pbp_dataflow_processing_latency_seconds`): an upper bound on each of its records' latency.
    pub processing_latency: Family<PipelineLabels, Histogram, fn() -> Histogram>,
    /// Records between the consumer position and the partition end (`pbp_dataflow_consumer_lag`).
    pub consumer_lag: Family<PartitionLabels, Gauge>,
    /// Offset commits (`pbp_dataflow_commits_total`).
    pub commits: Family<PipelineLabels, Counter>,
}

impl Default for DataflowMetrics {
    fn default() -> Self {
        Self {
            messages_consumed: Family::default(),
            records_in: Family::default(),
            records_out: Family::default(),
            dlq_messages: Family::default(),
            processing_latency: Family::new_with_constructor(latency_histogram),
            consumer_lag: Family::default(),
            commits: Family::default(),
        }
    }
}

impl DataflowMetrics {
    /// Metrics registered in `registry`, ready to be exposed on `/metrics`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        registry.register(
            "kafka_messages_consumed",
            "Records polled from a pipeline's source topic (Kafka or the embedded log)",
            m.messages_consumed.clone(),
        );
        registry.register("pbp_dataflow_records_in", "Records entering a pipeline stage", m.records_in.clone());
        registry.register("pbp_dataflow_records_out", "Records emitted by a pipeline stage", m.records_out.clone());
        registry.register("dlq_messages", "Records sent to a dead-letter queue", m.dlq_messages.clone());
        registry.register(
            "pbp_dataflow_processing_latency_seconds",
            "Seconds from polling a batch to its outputs being accepted by the sink",
            m.processing_latency.clone(),
        );
        registry.register(
            "pbp_dataflow_consumer_lag",
            "Records between the consumer position and the end of the partition",
            m.consumer_lag.clone(),
        );
        registry.register("pbp_dataflow_commits", "Offset commits", m.commits.clone());
        Arc::new(m)
    }

    pub(crate) fn stage(&self, pipeline: &str, stage: &str) -> StageLabels {
        StageLabels { pipeline: pipeline.to_owned(), stage: stage.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_names_follow_the_spec() {
        let mut registry = Registry::default();
        let m = DataflowMetrics::register(&mut registry);
        m.dlq_messages.get_or_create(&m.stage("p", "parse")).inc();
        m.messages_consumed.get_or_create(&PipelineLabels { pipeline: "p".into() }).inc_by(3);
        m.processing_latency.get_or_create(&PipelineLabels { pipeline: "p".into() }).observe(0.001);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("dlq_messages_total{pipeline=\"p\",stage=\"parse\"} 1"), "{text}");
        assert!(text.contains("pbp_dataflow_processing_latency_seconds_bucket"), "{text}");
        assert!(text.contains("kafka_messages_consumed_total{pipeline=\"p\"} 3"), "{text}");
    }
}
