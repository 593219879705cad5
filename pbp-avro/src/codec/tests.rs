use std::sync::Arc;

use apache_avro::types::Value;
use bytes::Bytes;
use pbp_dataflow::{Codec, CodecError};
use serde::{Deserialize, Serialize};

use super::*;
use crate::model::{EnrichedEvent, GameState, PlayEvent, ScoreboardEvent, TeamInfo};
use crate::registry::{Compatibility, EmbeddedRegistry};

const V2_ADDED_OPTIONAL: &str = include_str!("testdata/PlayEvent.v2-added-optional.avsc");
const V2_REMOVED_TEXT: &str = include_str!("testdata/PlayEvent.v2-removed-text.avsc");

fn registry() -> (EmbeddedRegistry, Arc<dyn SchemaRegistry>) {
    let r = EmbeddedRegistry::new();
    (r.clone(), Arc::new(r))
}

async fn codec<T: AvroRecord>(registry: &Arc<dyn SchemaRegistry>, topic: &str) -> AvroCodec<T> {
    AvroCodec::for_topic(registry.clone(), topic).await.unwrap()
}

fn err_message(e: CodecError) -> String {
    match e {
        CodecError::Invalid { format, message } => format!("{format}: {message}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Encodes `fields` (a record value) with `schema` through apache-avro and frames it with `id`: data as
/// another producer, with another version of the schema, would write it.
fn foreign_bytes(schema: &str, id: u32, fields: Vec<(String, Value)>) -> Bytes {
    let schema = apache_avro::Schema::parse_str(schema).unwrap();
    let value = Value::Record(fields).resolve(&schema).unwrap();
    let payload = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let mut framed = Vec::new();
    crate::wire::write_header(&mut framed, id);
    framed.extend_from_slice(&payload);
    Bytes::from(framed)
}

fn play_fields(play: &PlayEvent) -> Vec<(String, Value)> {
    match apache_avro::to_value(play).unwrap() {
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

#[tokio::test]
async fn every_record_round_trips_in_the_confluent_format() {
    let (_, registry) = registry();
    let play = codec::<PlayEvent>(&registry, "raw.plays").await;
    let bytes = play.encode(&PlayEvent::example()).unwrap().unwrap();
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), play.schema_id());
    // The payload is plain Avro binary: apache-avro reads it with the same schema.
    let schema = apache_avro::Schema::parse_str(PlayEvent::SCHEMA).unwrap();
    let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut &bytes[5..])
        .unwrap();
    assert_eq!(apache_avro::from_value::<PlayEvent>(&value).unwrap(), PlayEvent::example());
    for p in [PlayEvent::example(), PlayEvent::example_sparse()] {
        assert_eq!(play.decode(play.encode(&p).unwrap().as_ref()).unwrap(), p);
    }

    let scoreboard = codec::<ScoreboardEvent>(&registry, "raw.scoreboard").await;
    let s = ScoreboardEvent::example();
    assert_eq!(scoreboard.decode(scoreboard.encode(&s).unwrap().as_ref()).unwrap(), s);

    let enriched = codec::<EnrichedEvent>(&registry, "enriched.plays").await;
    let team = TeamInfo {
        team_id: "2".into(),
        abbreviation: "BOS".into(),
        display_name: "Boston Celtics".into(),
        color: Some("008348".into()),
        alternate_color: None,
    };
    let e = EnrichedEvent::new(PlayEvent::example(), None, team.clone(), team, 5);
    assert_eq!(enriched.decode(enriched.encode(&e).unwrap().as_ref()).unwrap(), e);

    let state = codec::<GameState>(&registry, "game.state").await;
    let g = GameState::new("401585607", "nba", 9);
    assert_eq!(state.decode(state.encode(&g).unwrap().as_ref()).unwrap(), g);

    // Four subjects, four distinct ids.
    let ids = [play.schema_id(), scoreboard.schema_id(), enriched.schema_id(), state.schema_id()];
    assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 4);
}

#[tokio::test]
async fn without_magic_byte_json_is_tried() {
    let (_, registry) = registry();
    let play = codec::<PlayEvent>(&registry, "raw.plays").await;
    let json = Bytes::from(serde_json::to_vec(&PlayEvent::example()).unwrap());
    assert_eq!(play.decode(Some(&json)).unwrap(), PlayEvent::example());

    let message = err_message(play.decode(Some(&Bytes::from_static(b"{\"game_id\": 1}"))).unwrap_err());
    assert!(message.starts_with("json: no Confluent Avro header"), "{message}");
    let message = err_message(play.decode(Some(&Bytes::from_static(b"\xff\xfe garbage"))).unwrap_err());
    assert!(message.starts_with("json:"), "{message}");
    assert!(matches!(play.decode(None), Err(CodecError::Null)));

    let strict = codec::<PlayEvent>(&registry, "raw.plays").await.without_json_fallback();
    let message = err_message(strict.decode(Some(&json)).unwrap_err());
    assert!(message.contains("not the Confluent magic byte"), "{message}");
}

#[tokio::test]
async fn broken_avro_is_an_error_with_a_reason() {
    let (_, registry) = registry();
    let play = codec::<PlayEvent>(&registry, "raw.plays").await;
    let good = play.encode(&PlayEvent::example()).unwrap().unwrap();

    // Magic byte but too short for a header: not JSON either, so an Avro error.
    let message = err_message(play.decode(Some(&Bytes::from_static(&[0, 0, 1]))).unwrap_err());
    assert!(message.contains("shorter than the 5-byte Confluent header"), "{message}");
    // Truncated payload.
    let message = err_message(play.decode(Some(&good.slice(..good.len() - 3))).unwrap_err());
    assert!(message.starts_with("avro: schema 1:"), "{message}");
    // Trailing garbage.
    let mut long = good.to_vec();
    long.extend_from_slice(b"xx");
    let message = err_message(play.decode(Some(&Bytes::from(long))).unwrap_err());
    assert!(message.contains("2 trailing bytes"), "{message}");
    // Unknown schema id.
    let mut unknown = good.to_vec();
    unknown[1..5].copy_from_slice(&77u32.to_be_bytes());
    let message = err_message(play.decode(Some(&Bytes::from(unknown))).unwrap_err());
    assert!(message.contains("writer schema 77") && message.contains("not found"), "{message}");
    // A registered schema of another record cannot be read as a PlayEvent.
    let scoreboard = codec::<ScoreboardEvent>(&registry, "raw.scoreboard").await;
    let other = scoreboard.encode(&ScoreboardEvent::example()).unwrap();
    let message = err_message(play.decode(other.as_ref()).unwrap_err());
    assert!(message.contains("cannot be read as com.playbyplay.PlayEvent"), "{message}");
    assert_eq!(play.plan(scoreboard.schema_id()).unwrap().kind(), "unreadable");
    // A forged length prefix (a game_id of 20 MB) is refused before anything that size is allocated.
    let mut forged = good[..5].to_vec();
    forged.extend_from_slice(&[0x80, 0xb4, 0x89, 0x13, b'4']);
    let message = err_message(play.decode(Some(&Bytes::from(forged))).unwrap_err());
    assert!(message.contains("length 20000000 exceeds the 1 bytes left"), "{message}");
    // Random bytes after a valid header never panic.
    for seed in 0u8..=255 {
        let mut bytes = good[..5].to_vec();
        bytes.extend((0..40u8).map(|i| i.wrapping_mul(seed).wrapping_add(seed)));
        let _ = play.decode(Some(&Bytes::from(bytes)));
    }
}

#[tokio::test]
async fn old_reader_reads_new_data_with_an_added_optional_field() {
    // Rule: a writer field that the reader does not have is skipped.
    let (embedded, registry) = registry();
    let v1 = codec::<PlayEvent>(&registry, "raw.plays").await;
    // Under the default BACKWARD level the new version registers: its added field has a default.
    let v2_id = registry.register("raw.plays-value", V2_ADDED_OPTIONAL).await.unwrap();
    assert_eq!(v2_id, v1.schema_id() + 1);
    let mut fields = play_fields(&PlayEvent::example());
    fields.push(("possession".to_owned(), Value::Union(1, Box::new(Value::String("19".to_owned())))));
    let new_data = foreign_bytes(V2_ADDED_OPTIONAL, v2_id, fields);
    assert_eq!(v1.decode(Some(&new_data)).unwrap(), PlayEvent::example());
    assert_eq!(v1.plan(v2_id).unwrap().kind(), "direct");
    assert_eq!(v1.plan(v1.schema_id()).unwrap().kind(), "mirror");
    // Also under FULL: v1 reads v2 data and v2 reads v1 data.
    embedded.with_core(|c| c.set_compatibility(None, Compatibility::Full)).unwrap();
    assert!(registry.is_compatible("raw.plays-value", PlayEvent::SCHEMA).await.unwrap());
}

/// A newer reader: `Small` plus an optional field and a field with a non-null default.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Small")] // apache-avro's serde checks that the struct's name is the record's
struct SmallV2 {
    a: i64,
    note: Option<String>,
    count: i64,
}

impl AvroRecord for SmallV2 {
    const FULL_NAME: &'static str = "t.Small";
    const SCHEMA: &'static str = r#"{"type":"record","name":"Small","namespace":"t","doc":"v2","fields":[
        {"name":"a","type":"long","doc":"promoted from int"},
        {"name":"note","type":["null","string"],"default":null,"doc":"added, optional"},
        {"name":"count","type":"long","default":7,"doc":"added with a default"}]}"#;
}

const SMALL_V1: &str = r#"{"type":"record","name":"Small","namespace":"t","fields":[
    {"name":"a","type":"int"},{"name":"gone","type":"string"}]}"#;

#[tokio::test]
async fn new_reader_reads_old_data_through_full_resolution() {
    // Rules: int is promoted to long; a reader field missing from the writer takes its default (7, null);
    // a writer field the reader lacks (`gone`) is skipped.
    let (_, registry) = registry();
    let v1_id = registry.register("small-value", SMALL_V1).await.unwrap();
    let reader = codec::<SmallV2>(&registry, "small").await;
    assert_ne!(reader.schema_id(), v1_id);
    let old =
        foreign_bytes(SMALL_V1, v1_id, vec![("a".into(), Value::Int(5)), ("gone".into(), Value::String("x".into()))]);
    assert_eq!(reader.decode(Some(&old)).unwrap(), SmallV2 { a: 5, note: None, count: 7 });
    assert_eq!(reader.plan(v1_id).unwrap().kind(), "resolve");
    // Its own data takes the direct path.
    let own = SmallV2 { a: 1, note: Some("n".into()), count: 2 };
    assert_eq!(reader.decode(reader.encode(&own).unwrap().as_ref()).unwrap(), own);
    assert_eq!(reader.plan(reader.schema_id()).unwrap().kind(), "direct");
}

#[tokio::test]
async fn removing_a_field_without_default_is_refused_where_old_readers_must_read_new_data() {
    let (embedded, registry) = registry();
    let v1 = codec::<PlayEvent>(&registry, "raw.plays").await;
    // FULL (and FORWARD): the v1 reader has no default for `text`, so it could not read v2 data. Refused.
    embedded.with_core(|c| c.set_compatibility(Some("raw.plays-value"), Compatibility::Full)).unwrap();
    let err = registry.register("raw.plays-value", V2_REMOVED_TEXT).await.unwrap_err();
    assert!(matches!(err, RegistryError::Incompatible { .. }), "{err}");
    assert!(err.to_string().contains("cannot read data written with the new schema"), "{err}");
    // BACKWARD alone only asks that the new schema reads old data, which dropping a field does not break.
    embedded.with_core(|c| c.set_compatibility(Some("raw.plays-value"), Compatibility::Backward)).unwrap();
    let v2_id = registry.register("raw.plays-value", V2_REMOVED_TEXT).await.unwrap();
    // And the codec refuses such data with the reason instead of inventing a value.
    let fields = play_fields(&PlayEvent::example()).into_iter().filter(|(n, _)| n != "text").collect();
    let message = err_message(v1.decode(Some(&foreign_bytes(V2_REMOVED_TEXT, v2_id, fields))).unwrap_err());
    assert!(message.contains("cannot be read as com.playbyplay.PlayEvent"), "{message}");
}

#[tokio::test]
async fn apache_avro_paths_cap_allocations() {
    // SmallV2 does not claim to mirror its schema, so its own data goes through apache-avro's serde path,
    // whose allocations pbp-avro caps at MAX_ALLOCATION_BYTES (16 MiB; apache-avro's default is 512 MiB).
    let (_, registry) = registry();
    let reader = codec::<SmallV2>(&registry, "small").await;
    assert_eq!(reader.plan(reader.schema_id()).unwrap().kind(), "direct");
    let mut forged = Vec::new();
    crate::wire::write_header(&mut forged, reader.schema_id());
    forged.extend_from_slice(&[2, 2, 0x80, 0xb4, 0x89, 0x13, b'4']); // a = 1, note = Some(<20 MB string>)
    let message = err_message(reader.decode(Some(&Bytes::from(forged))).unwrap_err());
    assert!(message.contains("Unable to allocate 20000000 bytes (maximum allowed: 16777216)"), "{message}");
}

#[tokio::test]
async fn an_incompatible_schema_fails_the_codec_build() {
    let (_, registry) = registry();
    registry
        .register(
            "small-value",
            r#"{"type":"record","name":"Small","namespace":"t","fields":[{"name":"a","type":"string"}]}"#,
        )
        .await
        .unwrap();
    let err = AvroCodec::<SmallV2>::for_topic(registry, "small").await.unwrap_err();
    assert!(matches!(err, CodecBuildError::Registry(RegistryError::Incompatible { .. })), "{err}");
}

/// A registry reached over a network that can fail: answers from an embedded registry while `up`, with a 503
/// while down, and keeps nothing at hand (as an HTTP client with a cold cache).
struct Flaky {
    inner: EmbeddedRegistry,
    up: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl SchemaRegistry for Flaky {
    async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.inner.register(subject, schema).await
    }
    async fn schema_by_id(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if self.up.load(std::sync::atomic::Ordering::SeqCst) {
            self.inner.schema_by_id(id).await
        } else {
            Err(RegistryError::Api { status: 503, code: 50301, message: "down".into() })
        }
    }
    async fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        self.inner.is_compatible(subject, schema).await
    }
}

#[tokio::test]
async fn a_registry_that_does_not_answer_makes_decoding_wait_not_fail() {
    let flaky = Arc::new(Flaky { inner: EmbeddedRegistry::new(), up: true.into() });
    let registry: Arc<dyn SchemaRegistry> = flaky.clone();
    let reader = codec::<PlayEvent>(&registry, "raw.plays").await;
    // Another producer writes with a newer version of the schema, which the reader has not seen.
    let v2_id = flaky.inner.register("raw.plays-value", V2_ADDED_OPTIONAL).await.unwrap();
    let mut fields = play_fields(&PlayEvent::example());
    fields.push(("possession".to_owned(), Value::Union(0, Box::new(Value::Null))));
    let data = foreign_bytes(V2_ADDED_OPTIONAL, v2_id, fields);

    flaky.up.store(false, std::sync::atomic::Ordering::SeqCst);
    // Decoding never waits on the network: it says the schema is not fetched yet, which is not bad data.
    let e = reader.decode(Some(&data)).unwrap_err();
    assert!(e.is_transient() && e.to_string().contains(&format!("writer schema {v2_id}")), "{e}");
    let e = reader.prepare(Some(&data)).await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("503"), "{e}");
    assert!(reader.decode(Some(&data)).unwrap_err().is_transient(), "nothing is remembered of a failed fetch");

    flaky.up.store(true, std::sync::atomic::Ordering::SeqCst);
    reader.prepare(Some(&data)).await.unwrap();
    assert_eq!(reader.decode(Some(&data)).unwrap(), PlayEvent::example());

    // An id the registry answers is unknown is final: the bytes cannot be decoded (the record is dead-lettered).
    let mut unknown = data.to_vec();
    unknown[1..5].copy_from_slice(&77u32.to_be_bytes());
    let unknown = Bytes::from(unknown);
    reader.prepare(Some(&unknown)).await.unwrap();
    let message = err_message(reader.decode(Some(&unknown)).unwrap_err());
    assert!(message.contains("writer schema 77") && message.contains("not found"), "{message}");
    // Bytes without a header need no schema: nothing to fetch, decoding tells what is wrong.
    reader.prepare(Some(&Bytes::from_static(b"{"))).await.unwrap();
    assert!(!reader.decode(Some(&Bytes::from_static(b"{"))).unwrap_err().is_transient());
}
