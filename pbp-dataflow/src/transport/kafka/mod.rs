//! The transport seam over Kafka (any broker speaking the standard protocol: Apache Kafka, Redpanda, tansu),
//! through rdkafka. Enabled by the `kafka` feature.
//!
//! - Producing: one idempotent librdkafka producer per transport (`enable.idempotence=true`, `acks=all`,
//!   Java-compatible `murmur2_random` partitioner), shared by every [`Producer`] handle; each handle awaits the
//!   delivery reports of its own records in `flush`. A full client queue (`QueueFull`) makes `send` wait;
//!   nothing is dropped.
//! - Consuming in a group: offsets are stored and committed only for records the pipeline finished
//!   (`enable.auto.offset.store=false`, `enable.auto.commit=false`, commit at each checkpoint); rebalances
//!   reach the pipeline as [`Rebalance`](crate::transport::Rebalance) events, before any record of a newly assigned partition is processed,
//!   and revoked partitions are kept until the pipeline has flushed and committed what it processed of them and
//!   calls [`Consumer::release`]. The rebalance callbacks make no broker calls (they run on the task that
//!   polls). librdkafka bounds
//!   its prefetch (`queued.max.messages.kbytes`), so a slow pipeline stops fetching rather than buffering.
//! - Reading without a group (tables, changelogs): partitions are assigned from the beginning and read to the
//!   end; see [`Transport::end_offsets`] for how the end is established.

mod consumer;
mod producer;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{Consumer, ConsumerOptions, Producer, TopicSpec, Transport, TransportError};
use crate::record::TopicPartition;
use consumer::{GroupConsumer, GroupContext, Reader, ReaderContext};
use producer::{DeliveryContext, HandleState, KafkaProducer, SharedProducer};

static READER_IDS: AtomicU64 = AtomicU64::new(0);

/// How to reach and use a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// `client.id` prefix.
    pub client_id: String,
    /// Replication factor of topics this transport creates.
    pub replication_factor: i32,
    /// Timeout of admin and metadata requests.
    pub request_timeout: Duration,
    /// Extra librdkafka properties for every client (e.g. `session.timeout.ms`), applied last.
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for `brokers`: client id `pbp`, replication factor 1, 30 s requests.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            client_id: "pbp".into(),
            replication_factor: 1,
            request_timeout: Duration::from_secs(30),
            properties: Vec::new(),
        }
    }

    /// Adds a librdkafka property for every client.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// A client's configuration: the brokers and its id, the role's `settings`, then the properties given with
    /// [`set`](Self::set), which override the role's settings (e.g. `linger.ms` or `fetch.wait.max.ms`).
    fn client(&self, role: &str, settings: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers).set("client.id", format!("{}-{role}", self.client_id));
        settings(&mut c);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

fn client_error(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> TransportError {
    let context = context.into();
    move |e| TransportError::client(context, e)
}

/// Runs a blocking librdkafka call off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| TransportError::client("blocking task", e))
}

/// A Kafka cluster as a [`Transport`].
pub struct KafkaTransport {
    config: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
    metadata: Arc<BaseConsumer>,
    producer: Arc<SharedProducer>,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport").field("brokers", &self.config.brokers).finish()
    }
}

impl KafkaTransport {
    /// Creates the clients. Connections are made lazily; a wrong address shows up as errors on first use.
    pub fn connect(config: KafkaConfig) -> Result<Self, TransportError> {
        let admin = config.client("admin", |_| {}).create().map_err(client_error("creating the admin client"))?;
        let metadata = config
            .client("metadata", |c| {
                c.set("group.id", format!("{}-metadata", config.client_id)).set("enable.auto.commit", "false");
            })
            .create()
            .map_err(client_error("creating the metadata client"))?;
        let producer = config
            .client("producer", |c| {
                c.set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("partitioner", "murmur2_random")
                    .set("linger.ms", "5");
            })
            .create_with_context(DeliveryContext)
            .map_err(client_error("creating the producer"))?;
        Ok(Self { config, admin, metadata: Arc::new(metadata), producer: Arc::new(producer) })
    }

    /// The configuration.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    async fn partition_count(&self, topic: &str) -> Result<Option<u32>, TransportError> {
        let metadata = self.metadata.clone();
        let (name, timeout) = (topic.to_owned(), self.config.request_timeout);
        let md = blocking(move || metadata.fetch_metadata(Some(&name), timeout))
            .await?
            .map_err(client_error(format!("metadata of {topic}")))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
        match t.error() {
            None => Ok(Some(t.partitions().len() as u32)),
            Some(code) if RDKafkaErrorCode::from(code) == RDKafkaErrorCode::UnknownTopicOrPartition => Ok(None),
            Some(code) => Err(TransportError::client(format!("metadata of {topic}"), RDKafkaErrorCode::from(code))),
        }
    }

    /// Deletes topics (tests and tools).
    pub async fn delete_topics(&self, topics: &[&str]) -> Result<(), TransportError> {
        let opts = AdminOptions::new().operation_timeout(Some(self.config.request_timeout));
        for r in self.admin.delete_topics(topics, &opts).await.map_err(client_error("deleting topics"))? {
            if let Err((topic, code)) = r
                && code != RDKafkaErrorCode::UnknownTopicOrPartition
            {
                return Err(TransportError::client(format!("deleting {topic}"), code));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<u32, TransportError> {
        if let Some(n) = self.partition_count(&spec.name).await? {
            return Ok(n);
        }
        let mut topic =
            NewTopic::new(&spec.name, spec.partitions as i32, TopicReplication::Fixed(self.config.replication_factor));
        if spec.compacted {
            topic = topic.set("cleanup.policy", "compact");
        }
        let opts = AdminOptions::new().operation_timeout(Some(self.config.request_timeout));
        for r in self.admin.create_topics([&topic], &opts).await.map_err(client_error("creating topics"))? {
            if let Err((name, code)) = r
                && code != RDKafkaErrorCode::TopicAlreadyExists
            {
                return Err(TransportError::client(format!("creating {name}"), code));
            }
        }
        // Creation propagates asynchronously: wait until metadata shows the topic.
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            if let Some(n) = self.partition_count(&spec.name).await? {
                return Ok(n);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TransportError::client(
                    format!("creating {}", spec.name),
                    "the topic did not appear in metadata",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn partitions(&self, topic: &str) -> Result<u32, TransportError> {
        self.partition_count(topic).await?.ok_or_else(|| TransportError::UnknownTopic(topic.to_owned()))
    }

    fn producer(&self) -> Result<Arc<dyn Producer>, TransportError> {
        Ok(Arc::new(KafkaProducer { shared: self.producer.clone(), state: Arc::new(HandleState::default()) }))
    }

    async fn consumer(&self, options: &ConsumerOptions) -> Result<Box<dyn Consumer>, TransportError> {
        let consumer: StreamConsumer<GroupContext> = self
            .config
            .client(&format!("consumer-{}", options.group), |c| {
                c.set("group.id", &options.group)
                    .set("enable.auto.commit", "false")
                    .set("enable.auto.offset.store", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("queued.max.messages.kbytes", "16384")
                    .set("statistics.interval.ms", "5000")
                    .set("enable.partition.eof", "true");
            })
            .create_with_context(GroupContext::default())
            .map_err(client_error("creating the consumer"))?;
        let topics: Vec<&str> = options.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(client_error(format!("subscribing to {topics:?}")))?;
        Ok(Box::new(GroupConsumer {
            consumer: Arc::new(consumer),
            metadata: self.metadata.clone(),
            request_timeout: self.config.request_timeout,
            progress: Default::default(),
            paused: None,
            stash: VecDeque::new(),
            start: HashMap::new(),
        }))
    }

    async fn reader(&self, topic: &str, partitions: Option<&[u32]>) -> Result<Box<dyn Consumer>, TransportError> {
        let n = self.partitions(topic).await?;
        let wanted: Vec<u32> = partitions.map_or_else(|| (0..n).collect(), <[u32]>::to_vec);
        let consumer: StreamConsumer<ReaderContext> = self
            .config
            .client("reader", |c| {
                let id = READER_IDS.fetch_add(1, Ordering::Relaxed);
                c.set("group.id", format!("{}-reader-{id}", self.config.client_id))
                    .set("enable.auto.commit", "false")
                    .set("enable.partition.eof", "true")
                    // A reader waits for the end of each partition; answer empty fetches quickly so that a
                    // topic that is written often still shows its end.
                    .set("fetch.wait.max.ms", "5");
            })
            .create_with_context(ReaderContext)
            .map_err(client_error("creating a reader"))?;
        let mut tpl = TopicPartitionList::new();
        let mut positions = HashMap::new();
        for &p in &wanted {
            tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
                .map_err(client_error("building the assignment"))?;
            let metadata = self.metadata.clone();
            let (name, timeout) = (topic.to_owned(), self.config.request_timeout);
            let (low, _) = blocking(move || metadata.fetch_watermarks(&name, p as i32, timeout))
                .await?
                .map_err(client_error(format!("watermarks of {topic}[{p}]")))?;
            positions.insert(TopicPartition::new(topic, p), low.max(0) as u64);
        }
        consumer.assign(&tpl).map_err(client_error(format!("assigning {topic}")))?;
        Ok(Box::new(Reader::new(consumer, positions)))
    }

    /// The high watermark of each partition, asked of the partition leader.
    async fn end_offsets(&self, topic: &str, partitions: &[u32]) -> Result<Vec<u64>, TransportError> {
        let mut ends = Vec::with_capacity(partitions.len());
        for &p in partitions {
            let metadata = self.metadata.clone();
            let (name, timeout) = (topic.to_owned(), self.config.request_timeout);
            let (_, high) = blocking(move || metadata.fetch_watermarks(&name, p as i32, timeout))
                .await?
                .map_err(client_error(format!("watermarks of {topic}[{p}]")))?;
            ends.push(high.max(0) as u64);
        }
        Ok(ends)
    }
}
