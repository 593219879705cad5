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

#[cfg(test)]
mod tests {
    use pbp_avro::registry::EmbeddedRegistry;
    use pbp_avro::{PlayEvent, TeamInfo};
    use pbp_dataflow::dlq;
    use pbp_dataflow::testing::TestDriver;
    use pbp_store::{PlaysQuery, SqliteStore};

    use super::*;
    use crate::pipelines::convert::team_key;

    fn team_row(id: &str, abbreviation: &str) -> TeamRow {
        TeamRow {
            league: "nba".to_owned(),
            id: id.to_owned(),
            abbreviation: abbreviation.to_owned(),
            display_name: format!("Team {abbreviation}"),
            color: None,
            alternate_color: None,
            updated_at: 1,
        }
    }

    fn team_info(id: &str) -> TeamInfo {
        TeamInfo {
            team_id: id.to_owned(),
            abbreviation: id.to_owned(),
            display_name: id.to_owned(),
            color: None,
            alternate_color: None,
        }
    }

    /// Play `n` of the example game: sequence `n`, a second later in the first period than play `n - 1`.
    fn play(n: i64, play_id: &str) -> EnrichedEvent {
        let event = PlayEvent {
            play_id: play_id.to_owned(),
            sequence: n,
            clock_seconds: 700.0 - n as f64,
            clock_display: super::super::convert::clock_display(700.0 - n as f64),
            ..PlayEvent::example()
        };
        EnrichedEvent::new(event, None, team_info("19"), team_info("2"), 1_710_713_500_000)
    }

    /// Item A: a play the database refuses (a second play with a stored play's sequence, which only the
    /// database's `UNIQUE (game_id, sequence)` catches) is dead-lettered on `dlq.serve` with the database's
    /// reason; every other play of its batch is stored, and the pipeline keeps running.
    async fn a_row_the_database_refuses_is_dead_lettered_and_the_rest_stored(
        repository: Arc<dyn Repository>,
    ) -> anyhow::Result<()> {
        let driver = TestDriver::new();
        let transport = driver.transport();
        topics::ensure_all(transport.as_ref()).await?;
        let registry: Arc<dyn SchemaRegistry> = Arc::new(EmbeddedRegistry::new());
        let metrics = {
            let mut registry = prometheus_client::registry::Registry::default();
            DataflowMetrics::register(&mut registry)
        };
        let mut pipelines = pipelines(
            transport,
            registry.clone(),
            repository.clone(),
            PipelineConfig::DEFAULT,
            metrics,
            Duration::from_millis(200),
        )
        .await?;
        for pipeline in &mut pipelines {
            pipeline.open().await?;
        }
        let teams = driver.input(topics::REF_TEAMS, Utf8, Json::<TeamRow>::new());
        for (id, abbreviation) in [("19", "ORL"), ("2", "BOS")] {
            teams.pipe(&team_key("nba", id), &team_row(id, abbreviation)).await?;
        }
        let game = ScoreboardEvent::example();
        let games_codec = AvroCodec::<ScoreboardEvent>::for_topic(registry.clone(), topics::RAW_SCOREBOARD).await?;
        driver.input(topics::RAW_SCOREBOARD, Utf8, games_codec).pipe(&game.game_id, &game).await?;
        let plays_codec = AvroCodec::<EnrichedEvent>::for_topic(registry, topics::ENRICHED_PLAYS).await?;
        let plays = driver.input(topics::ENRICHED_PLAYS, Utf8, plays_codec);
        // First delivery: plays 1 to 5.
        for n in 1..=5 {
            plays.pipe(&game.game_id, &play(n, &format!("p{n}"))).await?;
        }
        for pipeline in &mut pipelines {
            pipeline.run_until_idle().await?;
        }
        // One batch of 21 plays: 6 to 25, and in the middle a play of another id with play 3's sequence.
        for n in 6..=25 {
            plays.pipe(&game.game_id, &play(n, &format!("p{n}"))).await?;
            if n == 15 {
                plays.pipe(&game.game_id, &play(3, "clash")).await?;
            }
        }
        for pipeline in &mut pipelines {
            pipeline.run_until_idle().await?;
        }
        let stored = repository.plays(&game.game_id, &PlaysQuery::default()).await?;
        let ids: Vec<&str> = stored.iter().map(|p| p.play_id.as_str()).collect();
        let expected: Vec<String> = (1..=25).map(|n| format!("p{n}")).collect();
        assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>(), "every other play is stored");
        let dead = driver.raw_records(topics::DLQ_SERVE)?;
        assert_eq!(dead.len(), 1, "exactly one dead letter: {dead:?}");
        let header = |name: &str| dead[0].record.headers.get_str(name).unwrap_or_default().to_owned();
        assert_eq!(header(dlq::EXCEPTION), "ConstraintViolation");
        let message = header(dlq::MESSAGE);
        assert!(message.contains(&format!("{}/clash", game.game_id)), "{message}");
        assert!(message.to_lowercase().contains("unique"), "the database's reason: {message}");
        // The pipeline goes on: the next plays land.
        plays.pipe(&game.game_id, &play(26, "p26")).await?;
        for pipeline in &mut pipelines {
            pipeline.run_until_idle().await?;
        }
        assert_eq!(repository.plays(&game.game_id, &PlaysQuery::default()).await?.len(), 26);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_row_is_dead_lettered_on_sqlite() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn Repository> = Arc::new(SqliteStore::open(dir.path(), 2).await?);
        a_row_the_database_refuses_is_dead_lettered_and_the_rest_stored(store).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_row_is_dead_lettered_on_postgres() -> anyhow::Result<()> {
        let Some((store, _schema)) = crate::testing::pg_store().await? else { return Ok(()) };
        a_row_the_database_refuses_is_dead_lettered_and_the_rest_stored(Arc::new(store)).await
    }
}
