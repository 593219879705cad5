//! The ingest side: ESPN data (from the collectors, or from recorded files on replay) onto the raw topics.
//!
//! * teams → `ref.teams` (JSON rows keyed `league:id`, compacted), from the teams endpoint and from every
//!   scoreboard and summary header, sent only when new or changed;
//! * games → `raw.scoreboard` (Avro `ScoreboardEvent`, keyed by game id);
//! * plays → `raw.plays` (Avro `PlayEvent`, keyed by game id, so that a game's plays stay in order on one
//!   partition), each carrying its game's home and away team ids for enrich's team join;
//! * what cannot be used (an undecodable body, a play without a sequence number) → `dlq.ingest`, with the
//!   reason in the standard dead-letter headers.
//!
//! Ordering: new team records are acknowledged (flushed) before any record that refers to them is sent, so
//! that enrich, whose team table catches up before each batch, finds them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pbp_avro::{AvroCodec, ChangeKind, PlayEvent, SchemaRegistry, ScoreboardEvent};
use pbp_dataflow::codec::Json;
use pbp_dataflow::transport::{OutgoingRecord, Producer};
use pbp_dataflow::{Codec, RawRecord, Rejection, Transport, dlq};
use pbp_espn::League;
use pbp_espn::collect::{CollectorEvent, PlayBatch};
use pbp_espn::diff;
use pbp_espn::model::{Competition, Scoreboard, Summary, TeamsResponse};
use pbp_espn::normalize::normalize_summary;
use pbp_store::TeamRow;
use serde::Serialize;

use super::convert::{now_millis, play_event, scoreboard_event, sides, team_key, team_row, us_day};
use crate::topics;

/// What ingest has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct IngestStats {
    /// Team records sent.
    pub(crate) teams: u64,
    /// Scoreboard (game) records sent.
    pub(crate) games: u64,
    /// Play records sent.
    pub(crate) plays: u64,
    /// Dead letters sent.
    pub(crate) dead_letters: u64,
}

/// A recorded game whose teams and game record were sent, with its plays still to send.
#[derive(Debug)]
pub(crate) struct RecordedGame {
    pub(crate) league: League,
    pub(crate) game_id: String,
    /// Home and away team ids, as each play carries them.
    pub(crate) teams: (Option<String>, Option<String>),
    /// The plays in feed order.
    pub(crate) plays: Vec<pbp_espn::NormalizedPlay>,
}

/// Writes ESPN data to the raw topics.
pub(crate) struct Ingest {
    producer: Arc<dyn Producer>,
    plays: AvroCodec<PlayEvent>,
    scoreboards: AvroCodec<ScoreboardEvent>,
    teams: Json<TeamRow>,
    /// Last team record sent per key, so unchanged teams are not sent again.
    sent_teams: HashMap<String, TeamRow>,
    /// Home and away team ids per game, learned from scoreboards, for the plays of live games.
    sides: HashMap<String, (Option<String>, Option<String>)>,
    /// Records waiting to be sent, per topic.
    pending: Vec<(&'static str, Vec<OutgoingRecord>)>,
    stats: IngestStats,
}

/// A replayed game's identity: `copy` 0 keeps the recorded ids; copy `k` gets the game id `IDrk` (letters and digits, like ESPN ids) and a
/// tip-off `k` days later, so that `--repeat N` simulates a season of distinct games.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReplayCopy {
    pub(crate) copy: u32,
}

impl ReplayCopy {
    fn game_id(self, recorded: &str) -> String {
        if self.copy == 0 { recorded.to_owned() } else { format!("{recorded}r{}", self.copy) }
    }
}

impl Ingest {
    /// Registers the schemas and makes sure the topics exist.
    pub(crate) async fn new(transport: &Arc<dyn Transport>, registry: Arc<dyn SchemaRegistry>) -> anyhow::Result<Self> {
        topics::ensure_all(transport.as_ref()).await?;
        Ok(Self {
            producer: transport.producer()?,
            plays: AvroCodec::for_topic(registry.clone(), topics::RAW_PLAYS).await?,
            scoreboards: AvroCodec::for_topic(registry, topics::RAW_SCOREBOARD).await?,
            teams: Json::new(),
            sent_teams: HashMap::new(),
            sides: HashMap::new(),
            pending: vec![
                (topics::REF_TEAMS, Vec::new()),
                (topics::RAW_SCOREBOARD, Vec::new()),
                (topics::RAW_PLAYS, Vec::new()),
                (topics::DLQ_INGEST, Vec::new()),
            ],
            stats: IngestStats::default(),
        })
    }

    /// What was sent so far.
    pub(crate) fn stats(&self) -> IngestStats {
        self.stats
    }

    fn queue(&mut self, topic: &'static str, key: &str, value: Option<Bytes>) {
        let record = OutgoingRecord::from(RawRecord::new(Some(Bytes::copy_from_slice(key.as_bytes())), value));
        if let Some((_, records)) = self.pending.iter_mut().find(|(t, _)| *t == topic) {
            records.push(record);
        }
    }

    /// Sends everything queued, in topic order (teams, games, plays, dead letters).
    async fn send_pending(&mut self) -> anyhow::Result<()> {
        for (topic, records) in &mut self.pending {
            if !records.is_empty() {
                self.producer.send(topic, records).await?;
            }
        }
        Ok(())
    }

    /// Sends everything queued and waits until the broker acknowledged it.
    pub(crate) async fn flush(&mut self) -> anyhow::Result<()> {
        self.send_pending().await?;
        self.producer.flush().await?;
        Ok(())
    }

    /// Queues a team if it is new or changed; returns whether it was queued.
    fn team(&mut self, row: TeamRow) -> anyhow::Result<bool> {
        let key = team_key(&row.league, &row.id);
        let unchanged = self.sent_teams.get(&key).is_some_and(|sent| {
            sent.abbreviation == row.abbreviation
                && sent.display_name == row.display_name
                && sent.color == row.color
                && sent.alternate_color == row.alternate_color
        });
        if unchanged {
            return Ok(false);
        }
        let value = self.teams.encode(&row)?;
        self.queue(topics::REF_TEAMS, &key, value);
        self.sent_teams.insert(key, row);
        self.stats.teams += 1;
        Ok(true)
    }

    /// Queues the teams of a competition; returns whether any was new.
    fn competition_teams(&mut self, league: League, competition: &Competition, now: i64) -> anyhow::Result<bool> {
        let mut any = false;
        for team in competition.competitors.iter().filter_map(|c| c.team.as_ref()) {
            if let Some(row) = team_row(league, team, now) {
                any |= self.team(row)?;
            }
        }
        Ok(any)
    }

    /// The teams list of a league.
    pub(crate) async fn teams(&mut self, league: League, teams: &TeamsResponse) -> anyhow::Result<()> {
        let now = now_millis();
        for team in teams.teams() {
            if let Some(row) = team_row(league, team, now) {
                self.team(row)?;
            }
        }
        self.flush().await
    }

    fn game(&mut self, event: &ScoreboardEvent) -> anyhow::Result<()> {
        let value = self.scoreboards.encode(event)?;
        self.queue(topics::RAW_SCOREBOARD, &event.game_id, value);
        self.sides.insert(event.game_id.clone(), (Some(event.home_team_id.clone()), Some(event.away_team_id.clone())));
        self.stats.games += 1;
        Ok(())
    }

    /// A scoreboard: its teams, then one record per game.
    pub(crate) async fn scoreboard(&mut self, league: League, board: &Scoreboard) -> anyhow::Result<()> {
        let now = now_millis();
        let mut new_teams = false;
        for event in &board.events {
            let Some(competition) = event.competitions.first() else { continue };
            new_teams |= self.competition_teams(league, competition, now)?;
        }
        if new_teams {
            // Teams are acknowledged before the games and plays that refer to them are sent.
            self.flush().await?;
        }
        let day = board.day.as_ref().and_then(|d| d.date.clone());
        for event in &board.events {
            let Some(competition) = event.competitions.first() else { continue };
            match scoreboard_event(league, &event.id, competition, event.season, event.date.as_deref(), now) {
                Ok(mut record) => {
                    if let Some(day) = day.as_deref().filter(|d| d.len() == 10) {
                        day.clone_into(&mut record.date);
                    }
                    self.game(&record)?;
                }
                Err(reason) => self.dead_letter(Some(&event.id), None, "UnusableGame", &reason),
            }
        }
        self.send_pending().await
    }

    /// The changed plays of one fetch of a live game: new, corrected, and deleted (a play the collector found
    /// missing from enough consecutive snapshots, `--delete-after-polls`; its record carries its last emitted
    /// content with `change` `delete`, so that enrich can take its contribution out of the game state and the
    /// store can keep a tombstone).
    pub(crate) async fn plays(&mut self, batch: &PlayBatch) -> anyhow::Result<()> {
        let teams = self.sides.get(&batch.game_id).cloned().unwrap_or_default();
        if teams.0.is_none() {
            tracing::warn!(game_id = %batch.game_id, "Plays of a game not seen on a scoreboard: no team ids for them.");
        }
        let now = now_millis();
        for change in &batch.changes {
            let kind = match change.kind {
                diff::ChangeKind::New => ChangeKind::New,
                diff::ChangeKind::Updated => ChangeKind::Update,
                diff::ChangeKind::Deleted => ChangeKind::Delete,
            };
            self.play(&change.play, batch.league, kind, teams.clone(), now)?;
        }
        self.send_pending().await
    }

    fn play(
        &mut self,
        play: &pbp_espn::NormalizedPlay,
        league: League,
        kind: ChangeKind,
        teams: (Option<String>, Option<String>),
        now: i64,
    ) -> anyhow::Result<()> {
        match play_event(play, league, kind, teams, now) {
            Ok(event) => {
                let value = self.plays.encode(&event)?;
                self.queue(topics::RAW_PLAYS, &event.game_id, value);
                self.stats.plays += 1;
            }
            Err(reason) => {
                let body = serde_json::to_vec(play).ok().map(Bytes::from);
                self.dead_letter(Some(&play.game_id), body, "UnusablePlay", &reason);
            }
        }
        Ok(())
    }

    /// A whole recorded summary (replay): its teams, its game, then every play as new. Returns the number of
    /// plays sent.
    pub(crate) async fn summary(
        &mut self,
        summary: &Summary,
        league_hint: Option<League>,
        copy: ReplayCopy,
    ) -> anyhow::Result<u64> {
        let Some(game) = self.summary_game(summary, league_hint, copy).await? else { return Ok(0) };
        let before = self.stats.plays;
        let now = now_millis();
        for play in &game.plays {
            self.play(play, game.league, ChangeKind::New, game.teams.clone(), now)?;
        }
        self.send_pending().await?;
        Ok(self.stats.plays - before)
    }

    /// The teams and the game of a recorded summary, sent (the teams acknowledged); its plays, re-keyed to the
    /// copy's game id, are returned for the caller to send. `None` when the summary names no league we know
    /// (dead-lettered).
    pub(crate) async fn summary_game(
        &mut self,
        summary: &Summary,
        league_hint: Option<League>,
        copy: ReplayCopy,
    ) -> anyhow::Result<Option<RecordedGame>> {
        let (context, mut plays) = normalize_summary(summary, league_hint);
        let Some(league) = context.league else {
            self.dead_letter(Some(&context.game_id), None, "UnknownLeague", "the summary names no league we know");
            return Ok(None);
        };
        let game_id = copy.game_id(&context.game_id);
        let now = now_millis();
        let mut teams = (None, None);
        if let Some(competition) = summary.header.competition() {
            if self.competition_teams(league, competition, now)? {
                self.flush().await?;
            }
            teams = sides(competition);
            match scoreboard_event(league, &game_id, competition, summary.header.season, None, now) {
                Ok(mut game) => {
                    game.start_time += i64::from(copy.copy) * 86_400_000;
                    game.date = us_day(game.start_time);
                    self.game(&game)?;
                }
                Err(reason) => self.dead_letter(Some(&game_id), None, "UnusableGame", &reason),
            }
        }
        for play in &mut plays {
            play.game_id.clone_from(&game_id);
        }
        Ok(Some(RecordedGame { league, game_id, teams, plays }))
    }

    /// Queues a dead letter: the input's bytes (if any) with the reason in the standard headers.
    pub(crate) fn dead_letter(
        &mut self,
        key: Option<&str>,
        body: Option<Bytes>,
        exception: &'static str,
        reason: &str,
    ) {
        tracing::warn!(key, exception, reason, "Ingest input dead-lettered.");
        let mut record = dlq::dead_letter(
            "ingest",
            None,
            &Rejection { stage: Arc::from("ingest"), ..Rejection::new(exception, reason) },
        );
        record.key = key.map(|k| Bytes::copy_from_slice(k.as_bytes()));
        record.value = body;
        if let Some((_, records)) = self.pending.iter_mut().find(|(t, _)| *t == topics::DLQ_INGEST) {
            records.push(OutgoingRecord::from(record));
        }
        self.stats.dead_letters += 1;
    }

    /// One collector event.
    pub(crate) async fn handle(&mut self, event: CollectorEvent) -> anyhow::Result<()> {
        match event {
            CollectorEvent::Scoreboard { league, scoreboard } => self.scoreboard(league, &scoreboard).await,
            CollectorEvent::Plays(batch) => self.plays(&batch).await,
            CollectorEvent::Undecodable { league, game_id, url, body, reason } => {
                let key = game_id.as_deref().unwrap_or(league.slug());
                self.dead_letter(Some(key), Some(body), "UndecodableResponse", &format!("{url}: {reason}"));
                self.send_pending().await
            }
            CollectorEvent::GameFinished { league, game_id } => {
                tracing::info!(%league, game_id, "Game finished.");
                Ok(())
            }
        }
    }
}
