//! The enrich pipeline: `raw.plays` → team join → derived fields → `enriched.plays`, and the per-game state
//! aggregate → `game.state`.
//!
//! ```text
//! raw.plays ─▶ left join ref.teams (home) ─▶ left join ref.teams (away) ─▶ EnrichedEvent ─┬─▶ enriched.plays
//!                                                                                         └─▶ aggregate by game ─▶ game.state
//! ```
//!
//! Records are keyed by game id, so a game's plays arrive in order on one partition and its state lives with
//! them; the state's changelog is `enrich-game-state-changelog`. `game.state` gets each game's state once per
//! batch, after the batch's last play of the game. Undecodable records and plays the state
//! cannot take go to `dlq.enrich`.

use std::sync::Arc;

use pbp_avro::{AvroCodec, EnrichedEvent, GameState, PlayEvent, SchemaRegistry, TeamInfo};
use pbp_dataflow::codec::{Json, Utf8};
use pbp_dataflow::operator::Operator;
use pbp_dataflow::operator::aggregate::StateStore;
use pbp_dataflow::operator::join::GlobalTable;
use pbp_dataflow::sink::{Sink, TopicSink};
use pbp_dataflow::source::{Source, TopicSource};
use pbp_dataflow::{Dataflow, DataflowMetrics, DeadLetterQueue, Pipeline, PipelineConfig, Record, Transport};
use pbp_store::TeamRow;

use super::convert::{now_millis, team_info, team_key};
use super::game_state::GameAccumulator;
use crate::topics;

/// The consumer group of the enrich pipeline: enrich processes share its partitions.
pub(crate) const GROUP: &str = "pbp-enrich";

/// The codecs enrich reads and writes with, registered once.
pub(crate) struct EnrichCodecs {
    plays: AvroCodec<PlayEvent>,
    enriched: AvroCodec<EnrichedEvent>,
    states: AvroCodec<GameState>,
}

impl EnrichCodecs {
    /// Registers the schemas of `raw.plays`, `enriched.plays` and `game.state`.
    pub(crate) async fn register(registry: Arc<dyn SchemaRegistry>) -> anyhow::Result<Self> {
        Ok(Self {
            plays: AvroCodec::for_topic(registry.clone(), topics::RAW_PLAYS).await?,
            enriched: AvroCodec::for_topic(registry.clone(), topics::ENRICHED_PLAYS).await?,
            states: AvroCodec::for_topic(registry, topics::GAME_STATE).await?,
        })
    }
}

/// A team the table does not know yet: its id alone, so that the play still flows (and says which team).
fn unknown_team(id: Option<&String>) -> TeamInfo {
    TeamInfo {
        team_id: id.cloned().unwrap_or_default(),
        abbreviation: String::new(),
        display_name: String::new(),
        color: None,
        alternate_color: None,
    }
}

/// Joins a play with its teams and derives score and clock fields.
pub(crate) fn enrich(play: PlayEvent, home: Option<TeamRow>, away: Option<&TeamRow>) -> EnrichedEvent {
    let home_info = home.as_ref().map_or_else(|| unknown_team(play.home_team_id.as_ref()), team_info);
    let away_info = away.map_or_else(|| unknown_team(play.away_team_id.as_ref()), team_info);
    if home.is_none() || away.is_none() {
        tracing::debug!(game_id = %play.game_id, home = ?play.home_team_id, away = ?play.away_team_id, "A team of the play is not in ref.teams.");
    }
    let acting = play.team_id.as_ref().and_then(|id| {
        [&home_info, &away_info].into_iter().find(|t| &t.team_id == id && !t.abbreviation.is_empty()).cloned()
    });
    EnrichedEvent::new(play, acting, home_info, away_info, now_millis())
}

/// Builds the enrich pipeline.
pub(crate) fn pipeline(
    transport: Arc<dyn Transport>,
    codecs: EnrichCodecs,
    config: PipelineConfig,
    metrics: Arc<DataflowMetrics>,
) -> Pipeline<
    impl Source<Key = String, Value = PlayEvent>,
    impl Operator<String, PlayEvent, OutKey = String, OutValue = GameState>,
    impl Sink<String, GameState>,
> {
    let teams: GlobalTable<String, TeamRow> = GlobalTable::new(topics::REF_TEAMS, Utf8, Json::new());
    let store: StateStore<String, GameAccumulator> =
        StateStore::new(topics::ENRICH_GAME_STATE_STORE, Utf8, Json::new());
    Dataflow::new("enrich", transport)
        .with_config(config)
        .with_metrics(metrics)
        .source(TopicSource::new(topics::RAW_PLAYS, GROUP, Utf8, codecs.plays))
        .left_join_global(
            &teams,
            |r: &Record<String, PlayEvent>| r.value.home_team_id.as_ref().map(|id| team_key(&r.value.league, id)),
            |play: PlayEvent, home: Option<&TeamRow>| (play, home.cloned()),
        )
        .named("join-home-team")
        .left_join_global(
            &teams,
            |r: &Record<String, (PlayEvent, Option<TeamRow>)>| {
                r.value.0.away_team_id.as_ref().map(|id| team_key(&r.value.0.league, id))
            },
            |(play, home): (PlayEvent, Option<TeamRow>), away: Option<&TeamRow>| enrich(play, home, away),
        )
        .named("join-away-team")
        .also_to(TopicSink::new(topics::ENRICHED_PLAYS, Utf8, codecs.enriched))
        .named("to-enriched-plays")
        // One state per game per batch: game.state is compacted and the store keeps the latest state only.
        .aggregate_by_key_per_batch(&store, |acc: &mut GameAccumulator, r: &Record<String, EnrichedEvent>| {
            acc.apply(&r.value);
            Ok(())
        })
        .filter_map(GameAccumulator::into_state)
        .named("game-state")
        .to(TopicSink::new(topics::GAME_STATE, Utf8, codecs.states))
        .with_dlq(DeadLetterQueue::new(topics::DLQ_ENRICH))
}
