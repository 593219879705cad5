//! The serve pipelines' storage side: teams, games, enriched plays and game states from their topics into the
//! store, each topic through its own pipeline and consumer group, each batch in one idempotent upsert. The
//! cache is invalidated by the store wrapper ([`pbp_store::cache::CachedRepository`]) on every write.

use std::sync::Arc;
use std::time::Duration;

use pbp_avro::{AvroCodec, EnrichedEvent, GameState, SchemaRegistry, ScoreboardEvent};
use pbp_dataflow::codec::{Json, Utf8};
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::{Dataflow, DataflowMetrics, DeadLetterQueue, PipelineConfig, Transport};
use pbp_store::{GameRow, GameStateRow, PlayRow, Repository, TeamRow};

use super::DynPipeline;
use super::convert::{game_row, game_state_row, play_row};
use super::store_sink::StoreSink;
use crate::topics;

/// Consumer groups of the serve pipelines, one per topic.
pub(crate) const GROUP_TEAMS: &str = "pbp-serve-teams";
/// See [`GROUP_TEAMS`].
pub(crate) const GROUP_GAMES: &str = "pbp-serve-games";
/// See [`GROUP_TEAMS`].
pub(crate) const GROUP_PLAYS: &str = "pbp-serve-plays";
/// See [`GROUP_TEAMS`].
pub(crate) const GROUP_STATES: &str = "pbp-serve-states";

/// Builds the four store pipelines: teams, games, plays, game states (in the order parents come before
/// children).
pub(crate) async fn pipelines(
    transport: Arc<dyn Transport>,
    registry: Arc<dyn SchemaRegistry>,
    repository: Arc<dyn Repository>,
    config: PipelineConfig,
    metrics: Arc<DataflowMetrics>,
    parent_wait: Duration,
) -> anyhow::Result<Vec<Box<dyn DynPipeline>>> {
    let flow =
        |name: &str| Dataflow::new(name, transport.clone()).with_config(config.clone()).with_metrics(metrics.clone());
    let dlq = || DeadLetterQueue::new(topics::DLQ_SERVE);
    let teams = flow("serve-teams")
        .source(TopicSource::new(topics::REF_TEAMS, GROUP_TEAMS, Utf8, Json::<TeamRow>::new()))
        .to(StoreSink::new(
            repository.clone(),
            "teams",
            std::convert::identity,
            |t: &TeamRow| format!("{}/{}", t.league, t.id),
            |r, rows| r.upsert_teams(rows),
        )
        .with_parent_wait(parent_wait))
        .with_dlq(dlq());
    let games = flow("serve-games")
        .source(TopicSource::new(
            topics::RAW_SCOREBOARD,
            GROUP_GAMES,
            Utf8,
            AvroCodec::<ScoreboardEvent>::for_topic(registry.clone(), topics::RAW_SCOREBOARD).await?,
        ))
        .to(StoreSink::new(
            repository.clone(),
            "games",
            |event: ScoreboardEvent| game_row(&event),
            |g: &GameRow| g.id.clone(),
            |r, rows| r.upsert_games(rows),
        )
        .with_parent_wait(parent_wait))
        .with_dlq(dlq());
    let plays = flow("serve-plays")
        .source(TopicSource::new(
            topics::ENRICHED_PLAYS,
            GROUP_PLAYS,
            Utf8,
            AvroCodec::<EnrichedEvent>::for_topic(registry.clone(), topics::ENRICHED_PLAYS).await?,
        ))
        .to(StoreSink::new(
            repository.clone(),
            "plays",
            play_row,
            |p: &PlayRow| format!("{}/{}", p.game_id, p.play_id),
            |r, rows| r.upsert_plays(rows),
        )
        .with_parent_wait(parent_wait))
        .with_dlq(dlq());
    let states = flow("serve-states")
        .source(TopicSource::new(
            topics::GAME_STATE,
            GROUP_STATES,
            Utf8,
            AvroCodec::<GameState>::for_topic(registry, topics::GAME_STATE).await?,
        ))
        .to(StoreSink::new(
            repository,
            "game_states",
            |state: GameState| game_state_row(&state),
            |s: &GameStateRow| s.game_id.clone(),
            |r, rows| r.upsert_game_states(rows),
        )
        .with_parent_wait(parent_wait))
        .with_dlq(dlq());
    Ok(vec![Box::new(teams), Box::new(games), Box::new(plays), Box::new(states)])
}
