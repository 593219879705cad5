//! Entry points of the fuzz targets (`pbp-bin/fuzz/`, run with `cargo +nightly fuzz`) and of the corpus replay
//! test (`pbp-bin/tests/fuzz_corpora.rs`, on stable): each takes arbitrary bytes and runs them through the real
//! code path, so that a crash the fuzzer finds is replayed by `cargo test` once its input is in the corpus.
//!
//! None of them may panic, whatever the bytes; where a result can be checked cheaply (a record that decodes
//! encodes back to the same bytes), it is. Not part of pbp's interface: only the fuzz crate and the replay test
//! use this module.

use std::sync::{Arc, OnceLock};

use pbp_avro::registry::EmbeddedRegistry;
use pbp_avro::{AvroCodec, AvroRecord, EnrichedEvent, GameState, PlayEvent, ScoreboardEvent};
use pbp_espn::model::{self, Summary};
use pbp_espn::normalize::{self, NormalizedPlay};
use pbp_espn::{GameSnapshotState, League};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::http::error::ApiError;
use crate::http::routes::{self, Params, Route};
use crate::http::ws::session::{End, read_client};
use crate::http::ws::{WsSettings, session_config};
use crate::pipelines::convert;

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every fuzz target: its name (the folder of its corpus under `pbp-bin/fuzz/corpus/`) and its entry point.
pub const TARGETS: [(&str, Entry); 6] = [
    ("espn_summary", espn_summary),
    ("espn_scoreboard", espn_scoreboard),
    ("espn_play_by_play", espn_play_by_play),
    ("avro_records", avro_records),
    ("rest_request_target", rest_request_target),
    ("ws_client_bytes", ws_client_bytes),
];

/// A fixed `fetched_at` for the records built here: the clock plays no part in what is fuzzed.
const FETCHED_AT: i64 = 1_700_000_000_000;

/// A site summary: parsed, normalized (without and with a league hint), diffed twice (the second snapshot
/// changes nothing), and turned into the ingest records (the game from the header, every play).
pub fn espn_summary(data: &[u8]) {
    if let Ok(summary) = model::parse_summary(data) {
        summary_records(&summary);
    }
}

/// A site scoreboard: parsed, then each game's teams and scoreboard record as ingest builds them.
pub fn espn_scoreboard(data: &[u8]) {
    let Ok(board) = model::parse_scoreboard(data) else { return };
    for league in League::ALL {
        for event in &board.events {
            let Some(competition) = event.competitions.first() else { continue };
            for team in competition.competitors.iter().filter_map(|c| c.team.as_ref()) {
                let _ = convert::team_row(league, team, FETCHED_AT);
            }
            if let Ok(record) =
                convert::scoreboard_event(league, &event.id, competition, event.season, event.date.as_deref(), 0)
            {
                let _ = convert::game_row(&record);
            }
        }
    }
}

/// A play-by-play page, the first byte choosing which: the cdn play-by-play page (its game package goes the
/// summary's way), a core-API plays page, or either as the collectors' play document.
pub fn espn_play_by_play(data: &[u8]) {
    let Some((&which, page)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            if let Ok(cdn) = model::parse_cdn_play_by_play(page) {
                summary_records(&cdn.game_package);
            }
        }
        1 => {
            if let Ok(core) = model::parse_core_plays_page(page) {
                for league in [None, Some(League::Nba)] {
                    let (_, plays) = normalize::normalize_core_page(&core, league);
                    play_records(plays, League::Nba, (None, None));
                }
            }
        }
        _ => match model::parse_play_document(page) {
            Ok(model::PlayDocument::Summary(summary)) => summary_records(&summary),
            Ok(model::PlayDocument::CorePlays(core)) => {
                let (_, plays) = normalize::normalize_core_page(&core, None);
                play_records(plays, League::Wnba, (None, None));
            }
            Err(_) => {}
        },
    }
}

fn summary_records(summary: &Summary) {
    for hint in [None, Some(League::Nba), Some(League::MensCollege)] {
        let (context, plays) = normalize::normalize_summary(summary, hint);
        let league = context.league.unwrap_or(League::Nba);
        let mut teams = (None, None);
        if let Some(competition) = summary.header.competition() {
            teams = convert::sides(competition);
            for team in competition.competitors.iter().filter_map(|c| c.team.as_ref()) {
                let _ = convert::team_row(league, team, FETCHED_AT);
            }
            if let Ok(record) =
                convert::scoreboard_event(league, &context.game_id, competition, summary.header.season, None, 0)
            {
                let _ = convert::game_row(&record);
            }
        }
        play_records(plays, league, teams);
    }
}

/// Diffs the plays as two fetches of the same snapshot, then builds the `raw.plays` record of each change.
fn play_records(plays: Vec<NormalizedPlay>, league: League, teams: (Option<String>, Option<String>)) {
    let mut state = GameSnapshotState::new();
    let diff = state.apply(plays.clone());
    let again = state.apply(plays);
    assert!(again.changes.is_empty(), "the same snapshot twice changes nothing the second time");
    for change in &diff.changes {
        let _ = convert::play_event(&change.play, league, pbp_avro::ChangeKind::New, teams.clone(), FETCHED_AT);
    }
}

/// The four records' codecs over one in-process registry, each schema registered under its topic's subject
/// (ids 1 to 4, in [`avro_records`]'s order). Built once: registering is not what is fuzzed.
struct Codecs {
    play: AvroCodec<PlayEvent>,
    scoreboard: AvroCodec<ScoreboardEvent>,
    enriched: AvroCodec<EnrichedEvent>,
    state: AvroCodec<GameState>,
}

fn codecs() -> &'static Codecs {
    static CODECS: OnceLock<Codecs> = OnceLock::new();
    CODECS.get_or_init(|| {
        let registry = Arc::new(EmbeddedRegistry::new());
        fn codec<T: AvroRecord>(registry: &Arc<EmbeddedRegistry>, topic: &str) -> AvroCodec<T> {
            let subject = pbp_avro::registry::value_subject(topic);
            let id = registry
                .with_core(|core| core.register(&subject, T::SCHEMA))
                .unwrap_or_else(|e| panic!("{} must register: {e}", T::FULL_NAME))
                .id;
            AvroCodec::with_schema_id(registry.clone(), id)
                .unwrap_or_else(|e| panic!("{} codec must build: {e}", T::FULL_NAME))
        }
        Codecs {
            play: codec(&registry, crate::topics::RAW_PLAYS),
            scoreboard: codec(&registry, crate::topics::RAW_SCOREBOARD),
            enriched: codec(&registry, crate::topics::ENRICHED_PLAYS),
            state: codec(&registry, crate::topics::GAME_STATE),
        }
    })
}

/// A message for one of the four records, the first byte choosing which (play, scoreboard, enriched play, game
/// state): the Confluent framing split, then the Avro decoder (resolving the writer schema by the message's id
/// among the four registered) or, without the magic byte, the JSON fallback. A value that decodes must encode
/// and decode back to the same bytes.
pub fn avro_records(data: &[u8]) {
    let Some((&which, message)) = data.split_first() else { return };
    let _ = pbp_avro::wire::split(message);
    let codecs = codecs();
    match which % 4 {
        0 => round_trip(&codecs.play, message),
        1 => round_trip(&codecs.scoreboard, message),
        2 => round_trip(&codecs.enriched, message),
        _ => round_trip(&codecs.state, message),
    }
}

fn round_trip<T: AvroRecord>(codec: &AvroCodec<T>, message: &[u8]) {
    let Ok(value) = codec.decode_slice(message) else { return };
    let mut first = Vec::new();
    if codec.encode_into(&value, &mut first).is_err() {
        return;
    }
    let again =
        codec.decode_slice(&first).unwrap_or_else(|e| panic!("{} encoded by the codec must decode: {e}", T::FULL_NAME));
    let mut second = Vec::new();
    codec
        .encode_into(&again, &mut second)
        .unwrap_or_else(|e| panic!("{} decoded from the codec's bytes must encode: {e}", T::FULL_NAME));
    assert_eq!(first, second, "{} must encode the same after a round trip", T::FULL_NAME);
}

/// An HTTP request target (`/v1/games/1/plays?cursor=...`) as the REST server reads it: the URI hyper parses,
/// the route matched on its path, then that route's query parameters as the handler parses them. Every query
/// parser is also run on the query (the plays one for a fixed game id), so that each is reached whatever the
/// path. A plays cursor that decodes must encode back to a cursor that decodes the same.
pub fn rest_request_target(data: &[u8]) {
    let Ok(uri) = hyper::Uri::try_from(data) else { return };
    let query = uri.query();
    let parse = |route: &Route| Params::parse(query, routes::allowed_params(route));
    if let Ok(route) = routes::route(uri.path()) {
        let _ = route.template();
        match &route {
            Route::Games => {
                let _ = parse(&route).and_then(|p| routes::games_query(&p));
            }
            Route::Plays(id) => plays_request(parse(&route), id),
            Route::Ws(_) => {
                let _ = parse(&route).and_then(|p| routes::ws_resume(&p));
            }
            Route::Teams => {
                let _ = parse(&route).and_then(|p| routes::teams_league(&p));
            }
            Route::Live | Route::Game(_) => {
                let _ = parse(&route);
            }
            Route::Health | Route::Metrics => {}
        }
    }
    let _ = parse(&Route::Games).and_then(|p| routes::games_query(&p));
    plays_request(parse(&Route::Plays(String::new())), "401585607");
    let _ = parse(&Route::Ws(String::new())).and_then(|p| routes::ws_resume(&p));
    let _ = parse(&Route::Teams).and_then(|p| routes::teams_league(&p));
}

fn plays_request(params: Result<Params, ApiError>, game_id: &str) {
    let Ok(request) = params.and_then(|p| routes::plays_request(&p, game_id)) else { return };
    let _ = request.cache_field(game_id);
    if let routes::PlaysRequest::Page { cursor: Some(cursor), .. } = request {
        let again = routes::Cursor::decode(&cursor.encode(game_id), game_id).ok();
        assert_eq!(again, Some(cursor), "a cursor the API writes decodes to itself");
    }
}

/// Bytes a WebSocket client sends after the handshake, read by a session's real reader (the server side of
/// tokio-tungstenite with the session's limits, and the session's handling of each client message) until it
/// ends the session, which it must once the bytes run out. What the server writes back (pongs, the close
/// reply) is dropped.
pub fn ws_client_bytes(data: &[u8]) {
    thread_local! {
        static RUNTIME: Option<tokio::runtime::Runtime> =
            tokio::runtime::Builder::new_current_thread().enable_all().build().ok();
    }
    RUNTIME.with(|runtime| {
        let Some(runtime) = runtime else { return };
        runtime.block_on(async {
            let connection = tokio::io::join(data, tokio::io::sink());
            let config = session_config(&WsSettings::default());
            let socket = WebSocketStream::from_raw_socket(connection, Role::Server, Some(config)).await;
            let (_sink, incoming) = futures::StreamExt::split(socket);
            let (left, ended) = tokio::sync::oneshot::channel();
            read_client(incoming, left).await;
            let end = ended.await;
            assert!(matches!(end, Ok(End::ClientClosed | End::Failed(_))), "the reader ends the session: {end:?}");
        });
    });
}
