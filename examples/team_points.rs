//! Team points: the pipeline another team can copy.
//!
//! Input: `scores`, JSON scoring events keyed by team id, and `teams`, a compacted topic of team names.
//! The pipeline drops zero-point events, joins each event with its team (a GlobalTable), keeps a running
//! total per team (a keyed aggregate backed by a changelog), writes the totals to `team-totals` and
//! dead-letters what it cannot use: malformed JSON, impossible point values, unknown teams.
//!
//! Everything runs on the embedded log: no services needed. Swap the transport for Kafka and the same code
//! runs distributed.

use std::sync::Arc;
use std::time::Duration;

use pbp_dataflow::codec::{Json, Utf8};
use pbp_dataflow::operator::aggregate::StateStore;
use pbp_dataflow::operator::join::GlobalTable;
use pbp_dataflow::sink::TopicSink;
use pbp_dataflow::source::TopicSource;
use pbp_dataflow::transport::{OutgoingRecord, TopicSpec, read_to_end};
use pbp_dataflow::{
    Codec, Dataflow, DeadLetterQueue, DlqLimit, EmbeddedLog, EmbeddedTransport, Outcome, PipelineConfig, RawRecord,
    Record, Rejection, Transport, dlq,
};
use serde::{Deserialize, Serialize};

/// A scoring event: `points` scored by team `team_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreEvent {
    /// The team that scored; also the record key.
    pub team_id: String,
    /// Points scored (0 to 4).
    pub points: u32,
}

/// A row of the team table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Team {
    /// Display name.
    pub name: String,
    /// Short name.
    pub abbreviation: String,
}

/// A scoring event after the join.
#[derive(Debug, Clone)]
pub struct TeamScore {
    /// Team abbreviation, from the table.
    pub abbreviation: String,
    /// Points scored.
    pub points: u32,
}

/// The running total of a team: the aggregate's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamTotal {
    /// Team abbreviation.
    pub abbreviation: String,
    /// Points so far.
    pub points: u64,
    /// Scoring events so far.
    pub events: u64,
}

/// What the demo produced.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Latest total per team id, sorted by team id.
    pub totals: Vec<(String, TeamTotal)>,
    /// Dead letters: key, stage and message.
    pub dead_letters: Vec<(String, String, String)>,
}

/// Builds the pipeline on `transport`.
pub fn pipeline(
    transport: Arc<dyn Transport>,
) -> pbp_dataflow::Pipeline<
    impl pbp_dataflow::source::Source<Key = String, Value = ScoreEvent>,
    impl pbp_dataflow::operator::Operator<String, ScoreEvent, OutKey = String, OutValue = TeamTotal>,
    impl pbp_dataflow::sink::Sink<String, TeamTotal>,
> {
    let teams: GlobalTable<String, Team> = GlobalTable::new("teams", Utf8, Json::new());
    let totals: StateStore<String, TeamTotal> = StateStore::new("team-totals-store", Utf8, Json::new());
    let config = PipelineConfig { poll_timeout: Duration::from_millis(50), ..PipelineConfig::default() };
    Dataflow::new("team-points", transport)
        .with_config(config)
        .source(TopicSource::new("scores", "team-points", Utf8, Json::<ScoreEvent>::new()))
        // Free throws to three-pointers, plus four-point plays in some leagues; anything else is bad data.
        .process(|r: Record<String, ScoreEvent>| {
            if r.value.points > 4 {
                Outcome::Reject(Rejection::new("InvalidPoints", format!("{} points in one event", r.value.points)))
            } else {
                Outcome::Emit(r)
            }
        })
        .named("validate")
        .filter(|r| r.value.points > 0)
        .left_join_global(
            &teams,
            |r| Some(r.key.clone()),
            |e: ScoreEvent, team: Option<&Team>| {
                team.map(|t| TeamScore { abbreviation: t.abbreviation.clone(), points: e.points })
            },
        )
        .process(|r: Record<String, Option<TeamScore>>| {
            let Record { key, value, timestamp, headers, origin } = r;
            match value {
                Some(score) => Outcome::Emit(Record { key, value: score, timestamp, headers, origin }),
                None => Outcome::Reject(Rejection::new("UnknownTeam", format!("no team {key}"))),
            }
        })
        .named("require-team")
        .aggregate_by_key(&totals, |total: &mut TeamTotal, r: &Record<String, TeamScore>| {
            total.abbreviation.clone_from(&r.value.abbreviation);
            total.points += u64::from(r.value.points);
            total.events += 1;
            Ok(())
        })
        .to(TopicSink::new("team-totals", Utf8, Json::new()).create_if_missing(3))
        .with_dlq(DeadLetterQueue::new("dlq.team-points").with_limit(DlqLimit::default()))
}

/// Loads sample data into a fresh embedded log, runs the pipeline until its input is processed, and
/// returns the totals and dead letters.
pub async fn run_demo() -> Result<Summary, Box<dyn std::error::Error + Send + Sync>> {
    let transport: Arc<dyn Transport> = Arc::new(EmbeddedTransport::new(EmbeddedLog::new()));
    transport.ensure_topic(&TopicSpec::compacted("teams", 1)).await?;
    transport.ensure_topic(&TopicSpec::new("scores", 3)).await?;
    let producer = transport.producer()?;

    let team_codec = Json::<Team>::new();
    let mut teams = Vec::new();
    for (id, name, abbreviation) in [("19", "Orlando Magic", "ORL"), ("28", "Toronto Raptors", "TOR")] {
        let team = Team { name: name.into(), abbreviation: abbreviation.into() };
        teams.push(OutgoingRecord::from(RawRecord::new(Utf8.encode(&id.to_owned())?, team_codec.encode(&team)?)));
    }
    producer.send("teams", &mut teams).await?;

    let event_codec = Json::<ScoreEvent>::new();
    let mut scores = Vec::new();
    for (team, points) in [("19", 2), ("28", 3), ("19", 0), ("19", 3), ("28", 1), ("99", 2), ("28", 7), ("19", 2)] {
        let e = ScoreEvent { team_id: team.into(), points };
        scores.push(OutgoingRecord::from(RawRecord::new(Utf8.encode(&e.team_id)?, event_codec.encode(&e)?)));
    }
    scores.push(OutgoingRecord::from(RawRecord::new(
        Utf8.encode(&"28".to_owned())?,
        Some(bytes::Bytes::from_static(b"{\"team_id\": \"28\", \"points\": ")),
    )));
    producer.send("scores", &mut scores).await?;
    producer.flush().await?;

    let mut pipeline = pipeline(transport.clone());
    pipeline.run_until_idle().await?;
    drop(pipeline);

    let mut summary = Summary::default();
    let totals_codec = Json::<TeamTotal>::new();
    let mut latest = std::collections::BTreeMap::new();
    for r in read_all(transport.as_ref(), "team-totals").await? {
        latest.insert(Utf8.decode(r.record.key.as_ref())?, totals_codec.decode(r.record.value.as_ref())?);
    }
    summary.totals = latest.into_iter().collect();
    for r in read_all(transport.as_ref(), "dlq.team-points").await? {
        let h = &r.record.headers;
        summary.dead_letters.push((
            r.record.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
            h.get_str(dlq::STAGE).unwrap_or_default().to_owned(),
            h.get_str(dlq::MESSAGE).unwrap_or_default().to_owned(),
        ));
    }
    Ok(summary)
}

async fn read_all(
    transport: &dyn Transport,
    topic: &str,
) -> Result<Vec<pbp_dataflow::ConsumedRecord>, pbp_dataflow::TransportError> {
    let partitions: Vec<u32> = (0..transport.partitions(topic).await?).collect();
    let mut out = Vec::new();
    read_to_end(transport, topic, &partitions, |r| out.push(r)).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn demo_totals_and_dead_letters() {
        let s = super::run_demo().await.unwrap();
        let totals: Vec<_> =
            s.totals.iter().map(|(k, t)| (k.as_str(), t.abbreviation.as_str(), t.points, t.events)).collect();
        assert_eq!(totals, vec![("19", "ORL", 7, 3), ("28", "TOR", 4, 2)]);
        let mut stages: Vec<_> = s.dead_letters.iter().map(|(k, stage, _)| (k.as_str(), stage.as_str())).collect();
        stages.sort_unstable();
        assert_eq!(stages, vec![("28", "deserialize"), ("28", "validate"), ("99", "require-team")]);
    }
}
