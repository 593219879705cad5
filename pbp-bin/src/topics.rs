//! The project's topics, in one place: names, partition counts and cleanup policies. `pbp topics create`
//! makes them; the pipelines name their sources, sinks, stores and dead-letter queues from these constants.

use pbp_dataflow::transport::TopicSpec;

/// Scoreboard events from the ESPN collectors.
pub(crate) const RAW_SCOREBOARD: &str = "raw.scoreboard";
/// Normalized plays from the ESPN collectors, keyed by game.
pub(crate) const RAW_PLAYS: &str = "raw.plays";
/// Plays enriched with game state, keyed by game (co-partitioned with `raw.plays`).
pub(crate) const ENRICHED_PLAYS: &str = "enriched.plays";
/// The latest state of each game (compacted: one record per game).
pub(crate) const GAME_STATE: &str = "game.state";
/// Reference data of teams (compacted: one record per team), read whole by every instance as a global table.
pub(crate) const REF_TEAMS: &str = "ref.teams";
/// The enrich pipeline's per-game state store (`StateStore::new(ENRICH_GAME_STATE_STORE, ..)`); its changelog
/// is [`changelog_of`] it, compacted and partitioned like `raw.plays`.
pub(crate) const ENRICH_GAME_STATE_STORE: &str = "enrich-game-state";
/// Dead letters of the ingest pipeline.
pub(crate) const DLQ_INGEST: &str = "dlq.ingest";
/// Dead letters of the enrich pipeline.
pub(crate) const DLQ_ENRICH: &str = "dlq.enrich";
/// Dead letters of the serve pipeline.
pub(crate) const DLQ_SERVE: &str = "dlq.serve";
/// The schema registry's journal (`pbp schema-registry --transport kafka://...`), as Confluent names it:
/// compacted, one partition so that its entries keep their order.
pub(crate) const SCHEMAS: &str = pbp_avro::registry::DEFAULT_SCHEMAS_TOPIC;

/// Partitions of the play topics and of everything co-partitioned with them.
const PLAY_PARTITIONS: u32 = 12;
/// Partitions of per-game topics with one record per game and update.
const GAME_PARTITIONS: u32 = 6;
/// `ref.teams` holds a few hundred small records and is read whole by every instance (a global table):
/// one partition keeps its bootstrap a single sequential read.
const REF_PARTITIONS: u32 = 1;
/// Dead-letter topics carry little traffic; three partitions spread it without co-partitioning rules.
const DLQ_PARTITIONS: u32 = 3;
/// The registry reads its journal in order and refuses a topic with more partitions.
const SCHEMAS_PARTITIONS: u32 = 1;

/// The changelog topic of a state store, as pbp-dataflow names it.
pub(crate) fn changelog_of(store: &str) -> String {
    format!("{store}-changelog")
}

/// Every topic the pipelines and the schema registry use, with its partition count and cleanup policy.
pub(crate) fn all() -> Vec<TopicSpec> {
    vec![
        TopicSpec::new(RAW_SCOREBOARD, GAME_PARTITIONS),
        TopicSpec::new(RAW_PLAYS, PLAY_PARTITIONS),
        TopicSpec::new(ENRICHED_PLAYS, PLAY_PARTITIONS),
        TopicSpec::compacted(GAME_STATE, GAME_PARTITIONS),
        TopicSpec::compacted(REF_TEAMS, REF_PARTITIONS),
        TopicSpec::compacted(changelog_of(ENRICH_GAME_STATE_STORE), PLAY_PARTITIONS),
        TopicSpec::new(DLQ_INGEST, DLQ_PARTITIONS),
        TopicSpec::new(DLQ_ENRICH, DLQ_PARTITIONS),
        TopicSpec::new(DLQ_SERVE, DLQ_PARTITIONS),
        TopicSpec::compacted(SCHEMAS, SCHEMAS_PARTITIONS),
    ]
}

/// Makes sure every topic exists with its partition count and policy (creating the missing ones), so that any
/// process can start first.
pub(crate) async fn ensure_all(transport: &dyn pbp_dataflow::Transport) -> Result<(), pbp_dataflow::TransportError> {
    for spec in all() {
        transport.ensure_topic(&spec).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changelog_is_named_after_the_store_and_partitioned_like_its_source() {
        let specs = all();
        let find = |name: &str| specs.iter().find(|s| s.name == name).unwrap();
        let store: pbp_dataflow::operator::aggregate::StateStore<String, u64> =
            pbp_dataflow::operator::aggregate::StateStore::new(
                ENRICH_GAME_STATE_STORE,
                pbp_dataflow::codec::Utf8,
                pbp_dataflow::codec::BigEndian,
            );
        assert_eq!(store.changelog(), changelog_of(ENRICH_GAME_STATE_STORE));
        let changelog = find(&changelog_of(ENRICH_GAME_STATE_STORE));
        assert!(changelog.compacted);
        assert_eq!(changelog.partitions, find(RAW_PLAYS).partitions);
        assert_eq!(find(ENRICHED_PLAYS).partitions, find(RAW_PLAYS).partitions);
        let schemas = find(SCHEMAS);
        assert!(schemas.compacted && schemas.partitions == 1, "the registry's journal: {schemas:?}");
        let names: std::collections::HashSet<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), specs.len(), "names are unique");
    }
}
