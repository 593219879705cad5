use async_trait::async_trait;
use parking_lot::Mutex;
use pbp_dataflow::transport::{Consumer, ConsumerOptions, TransportError};
use pbp_dataflow::{ConsumedRecord, EmbeddedLog, EmbeddedTransport};

use super::*;
use crate::registry::{Compatibility, EmbeddedRegistry, RegistryCore, SchemaRegistry, VersionSelector};

const V1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#;
const V2: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}]}"#;
const OTHER: &str = r#"{"type":"record","name":"U","fields":[{"name":"x","type":"string"}]}"#;

fn embedded() -> Arc<dyn Transport> {
    Arc::new(EmbeddedTransport::new(EmbeddedLog::new()))
}

/// A restart of the registry: a new core on the same transport (an embedded log lives as long as its `Arc`).
async fn open(transport: &Arc<dyn Transport>, topic: &str) -> RegistryCore {
    RegistryCore::open(Box::new(TopicJournal::open(transport.clone(), topic).await.unwrap())).unwrap()
}

async fn raw(transport: &Arc<dyn Transport>, topic: &str) -> Vec<ConsumedRecord> {
    let mut out = Vec::new();
    read_to_end(&**transport, topic, &[0], |r| out.push(r)).await.unwrap();
    out
}

fn text(bytes: Option<&Bytes>) -> String {
    String::from_utf8_lossy(bytes.map_or(&b""[..], |b| b.as_ref())).into_owned()
}

async fn produce(transport: &Arc<dyn Transport>, topic: &str, key: &str, value: Option<&str>) {
    let producer = transport.producer().unwrap();
    let record = RawRecord::new(
        Some(Bytes::copy_from_slice(key.as_bytes())),
        value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
    );
    producer.send(topic, &mut vec![OutgoingRecord::from(record)]).await.unwrap();
    producer.flush().await.unwrap();
}

#[tokio::test]
async fn registrations_survive_a_restart_with_the_same_ids_and_versions() {
    let transport = embedded();
    {
        // Registered inline in async code, as the embedded registry does: the produce runs off this thread.
        let registry = EmbeddedRegistry::open_topic(transport.clone(), DEFAULT_SCHEMAS_TOPIC).await.unwrap();
        assert_eq!(registry.register("a-value", V1).await.unwrap(), 1);
        assert_eq!(registry.register("a-value", V2).await.unwrap(), 2);
        assert_eq!(registry.register("b-value", V1).await.unwrap(), 1);
        assert_eq!(registry.register("c-value", OTHER).await.unwrap(), 3);
    }
    let mut core = open(&transport, DEFAULT_SCHEMAS_TOPIC).await;
    assert_eq!(core.subjects(), vec!["a-value".to_owned(), "b-value".to_owned(), "c-value".to_owned()]);
    assert_eq!(core.versions("a-value").unwrap(), vec![1, 2]);
    assert_eq!(core.version("b-value", VersionSelector::Latest).unwrap().id, 1);
    assert_eq!(&*core.schema(2).unwrap(), V2);
    assert_eq!(&*core.schema(3).unwrap(), OTHER);
    // The same schema again: the same registration, nothing written.
    assert_eq!(core.register("a-value", V2).unwrap().id, 2);
    assert_eq!(raw(&transport, DEFAULT_SCHEMAS_TOPIC).await.len(), 4);
    // A new schema after the restart gets the next id.
    let d = core.register("d-value", r#""string""#).unwrap();
    assert_eq!((d.id, d.version), (4, 1));
    drop(core);
    assert_eq!(open(&transport, DEFAULT_SCHEMAS_TOPIC).await.schema(4).unwrap().as_ref(), r#""string""#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_work_from_blocking_threads_as_the_server_calls_them() {
    let transport = embedded();
    let registry = EmbeddedRegistry::open_topic(transport.clone(), "schemas").await.unwrap();
    let r = registry.clone();
    let id = tokio::task::spawn_blocking(move || r.with_core(|c| c.register("a-value", V1))).await.unwrap().unwrap().id;
    assert_eq!(id, 1);
    drop(registry);
    assert_eq!(open(&transport, "schemas").await.versions("a-value").unwrap(), vec![1]);
}

#[tokio::test]
async fn records_are_keyed_like_confluents_and_the_latest_level_wins() {
    let transport = embedded();
    let topic = "schemas-config";
    {
        let mut core = open(&transport, topic).await;
        core.register("a-value", V1).unwrap();
        core.set_compatibility(None, Compatibility::Full).unwrap();
        core.set_compatibility(Some("a-value"), Compatibility::Forward).unwrap();
        core.set_compatibility(None, Compatibility::None).unwrap();
        core.set_compatibility(Some("a-value"), Compatibility::BackwardTransitive).unwrap();
    }
    let records = raw(&transport, topic).await;
    let keys: Vec<String> = records.iter().map(|r| text(r.record.key.as_ref())).collect();
    assert_eq!(
        keys,
        vec![
            r#"{"keytype":"SCHEMA","subject":"a-value","version":1}"#,
            r#"{"keytype":"CONFIG","subject":null}"#,
            r#"{"keytype":"CONFIG","subject":"a-value"}"#,
            r#"{"keytype":"CONFIG","subject":null}"#,
            r#"{"keytype":"CONFIG","subject":"a-value"}"#,
        ]
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text(records[0].record.value.as_ref())).unwrap(),
        serde_json::json!({"op": "register", "subject": "a-value", "version": 1, "id": 1, "schema": V1})
    );
    assert_eq!(text(records[3].record.value.as_ref()), r#"{"op":"config","subject":null,"compatibility":"NONE"}"#);

    // Replay keeps the latest level of each key, as compaction will.
    let mut journal = TopicJournal::open(transport.clone(), topic).await.unwrap();
    let replayed = journal.replay().unwrap();
    assert_eq!(replayed.len(), 3, "{replayed:?}");
    let core = RegistryCore::open(Box::new(journal)).unwrap();
    assert_eq!(core.compatibility(None), Compatibility::None);
    assert_eq!(core.compatibility(Some("a-value")), Compatibility::BackwardTransitive);

    // A topic holding only what compaction keeps gives the same registry.
    let compacted = "schemas-config-compacted";
    transport.ensure_topic(&TopicSpec::compacted(compacted, 1)).await.unwrap();
    for r in [&records[0], &records[3], &records[4]] {
        produce(&transport, compacted, &text(r.record.key.as_ref()), Some(&text(r.record.value.as_ref()))).await;
    }
    let again = open(&transport, compacted).await;
    assert_eq!(again.compatibility(None), Compatibility::None);
    assert_eq!(again.compatibility(Some("a-value")), Compatibility::BackwardTransitive);
    assert_eq!(again.versions("a-value").unwrap(), vec![1]);
}

#[tokio::test]
async fn a_record_that_is_not_an_entry_is_an_error_naming_its_offset() {
    let transport = embedded();
    {
        let mut core = open(&transport, "bad").await;
        core.register("a-value", V1).unwrap();
        core.register("b-value", OTHER).unwrap();
    }
    produce(&transport, "bad", r#"{"keytype":"SCHEMA","subject":"c-value","version":1}"#, Some("{not json")).await;
    let err = TopicJournal::open(transport.clone(), "bad").await.unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("schema journal topic bad on embedded: offset 2: "), "{message}");
    assert!(message.contains("cannot read the entry for schema c-value v1"), "{message}");

    for (key, value, expected) in [
        (r#"{"keytype":"NOOP"}"#, Some(r#"{}"#), "cannot read the key"),
        (
            r#"{"keytype":"SCHEMA","subject":"x","version":2}"#,
            Some(r#"{"op":"register","subject":"x","version":1,"id":1,"schema":"\"int\""}"#),
            "the key names schema x v2 but the entry is about schema x v1",
        ),
        (r#"{"keytype":"CONFIG","subject":null}"#, None, "a tombstone for the global level"),
    ] {
        let transport = embedded();
        transport.ensure_topic(&TopicSpec::compacted("t", 1)).await.unwrap();
        produce(&transport, "t", key, value).await;
        let message = TopicJournal::open(transport, "t").await.unwrap_err().to_string();
        assert!(message.contains(&format!("offset 0: {expected}")), "{message}");
    }
}

#[tokio::test]
async fn entries_that_do_not_follow_on_stop_the_registry() {
    let transport = embedded();
    transport.ensure_topic(&TopicSpec::compacted("gap", 1)).await.unwrap();
    produce(
        &transport,
        "gap",
        r#"{"keytype":"SCHEMA","subject":"x","version":1}"#,
        Some(r#"{"op":"register","subject":"x","version":1,"id":2,"schema":"\"int\""}"#),
    )
    .await;
    let journal = TopicJournal::open(transport, "gap").await.unwrap();
    let err = RegistryCore::open(Box::new(journal)).unwrap_err().to_string();
    assert!(err.contains("topic gap on embedded") && err.contains("has id 2, expected 1"), "{err}");
}

#[tokio::test]
async fn a_topic_with_several_partitions_is_refused() {
    let transport = embedded();
    transport.ensure_topic(&TopicSpec::compacted("wide", 3)).await.unwrap();
    let err = TopicJournal::open(transport, "wide").await.unwrap_err().to_string();
    assert!(err.contains("has 3 partitions"), "{err}");
}

/// How the flaky producer fails its next write.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// The record never reaches the topic.
    Lost,
    /// The record reaches the topic but its confirmation fails.
    Unconfirmed,
}

/// The embedded transport, with a producer that fails as told.
struct Flaky {
    inner: EmbeddedTransport,
    fault: Arc<Mutex<Fault>>,
}

struct FlakyProducer {
    inner: Arc<dyn Producer>,
    fault: Arc<Mutex<Fault>>,
    failed: Mutex<bool>,
}

#[async_trait]
impl Producer for FlakyProducer {
    async fn send(&self, topic: &str, records: &mut Vec<OutgoingRecord>) -> Result<(), TransportError> {
        let fault = *self.fault.lock();
        match fault {
            Fault::Lost => {
                records.clear();
                Err(TransportError::client("producing", "broker unreachable"))
            }
            Fault::Unconfirmed => {
                *self.failed.lock() = true;
                self.inner.send(topic, records).await
            }
            Fault::None => self.inner.send(topic, records).await,
        }
    }

    async fn flush(&self) -> Result<(), TransportError> {
        // Sticky, like the Kafka producer's.
        if *self.failed.lock() {
            return Err(TransportError::client("flush", "delivery timed out"));
        }
        self.inner.flush().await
    }
}

#[async_trait]
impl Transport for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<u32, TransportError> {
        self.inner.ensure_topic(spec).await
    }
    async fn partitions(&self, topic: &str) -> Result<u32, TransportError> {
        self.inner.partitions(topic).await
    }
    fn producer(&self) -> Result<Arc<dyn Producer>, TransportError> {
        Ok(Arc::new(FlakyProducer {
            inner: self.inner.producer()?,
            fault: self.fault.clone(),
            failed: Mutex::new(false),
        }))
    }
    async fn consumer(&self, options: &ConsumerOptions) -> Result<Box<dyn Consumer>, TransportError> {
        self.inner.consumer(options).await
    }
    async fn reader(&self, topic: &str, partitions: Option<&[u32]>) -> Result<Box<dyn Consumer>, TransportError> {
        self.inner.reader(topic, partitions).await
    }
    async fn end_offsets(&self, topic: &str, partitions: &[u32]) -> Result<Vec<u64>, TransportError> {
        self.inner.end_offsets(topic, partitions).await
    }
}

fn flaky() -> (Arc<dyn Transport>, Arc<Mutex<Fault>>) {
    let fault = Arc::new(Mutex::new(Fault::None));
    (Arc::new(Flaky { inner: EmbeddedTransport::new(EmbeddedLog::new()), fault: fault.clone() }), fault)
}

#[tokio::test]
async fn a_lost_write_is_not_applied_and_the_next_one_goes_on() {
    let (transport, fault) = flaky();
    let mut core = open(&transport, "s").await;
    core.register("a-value", V1).unwrap();
    *fault.lock() = Fault::Lost;
    let err = core.register("b-value", OTHER).unwrap_err().to_string();
    assert!(err.contains("topic s on flaky: writing schema b-value v1: producing: broker unreachable"), "{err}");
    assert!(matches!(core.versions("b-value"), Err(RegistryError::SubjectNotFound { .. })));
    *fault.lock() = Fault::None;
    // The topic holds only confirmed entries: the journal goes on, with the id the lost write would have had.
    assert_eq!(core.register("c-value", OTHER).unwrap().id, 2);
    drop(core);
    let core = open(&transport, "s").await;
    assert_eq!(core.subjects(), vec!["a-value".to_owned(), "c-value".to_owned()]);
}

#[tokio::test]
async fn an_unconfirmed_write_that_landed_stops_appends_until_a_restart() {
    let (transport, fault) = flaky();
    let mut core = open(&transport, "s").await;
    core.register("a-value", V1).unwrap();
    *fault.lock() = Fault::Unconfirmed;
    let err = core.register("b-value", OTHER).unwrap_err().to_string();
    assert!(err.contains("writing schema b-value v1: flush: delivery timed out"), "{err}");
    *fault.lock() = Fault::None;
    // The record did land: giving id 2 to another schema now would clash with it.
    let err = core.register("c-value", r#""string""#).unwrap_err().to_string();
    assert!(err.contains("holds entries this registry did not confirm"), "{err}");
    assert!(core.set_compatibility(None, Compatibility::None).is_err());
    drop(core);
    // A restart reads the landed entry.
    let mut core = open(&transport, "s").await;
    assert_eq!(core.versions("b-value").unwrap(), vec![1]);
    assert_eq!(core.register("c-value", r#""string""#).unwrap().id, 3);
}
