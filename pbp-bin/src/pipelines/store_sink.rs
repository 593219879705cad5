//! A dataflow sink that upserts rows into the store: the end of the serve pipelines.
//!
//! Each batch is written in one repository call (one transaction, multi-row statements), so a season replay is
//! not bound by round trips. Writes are idempotent, which makes the pipeline's at-least-once delivery exact in
//! the store.
//!
//! Failures are told apart ([`StoreError::is_transient`]):
//! * **A row the schema refuses** ([`StoreError::Invalid`], checked before any statement): that row goes to the
//!   dead-letter queue, the rest of the batch is written.
//! * **A parent not stored yet** (a play whose game, or a game whose team, has not landed): the topics are
//!   consumed by separate pipelines, so a child can overtake its parent by a moment. The batch is retried with
//!   backoff for up to [`StoreSink::with_parent_wait`]; rows still orphaned after that are dead-lettered.
//! * **A row the database refuses** (a constraint the Rust checks do not cover, such as a second play with the
//!   same sequence in a game, or a value the database cannot hold): deterministic, so retrying the batch (or
//!   restarting the pipeline, which replays it) would fail the same way for ever. The batch is bisected: each
//!   half is written on its own, a half that fails again is halved again, until the rows at fault stand alone.
//!   They are dead-lettered with the database's message; every other row is written. `k` bad rows in a batch of
//!   `n` cost about `2k·log2(n)` extra writes; the usual batch has none.
//! * **A transient failure** (the database unreachable, the connection lost, a timeout, a deadlock or
//!   serialization conflict): retried with backoff for up to the same wait, then the pipeline stops without
//!   committing (it resumes from its last commit when restarted). Nothing is dead-lettered for it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use pbp_dataflow::sink::{Sink, SinkRejection};
use pbp_dataflow::{Error, Origin, Record, Rejection};
use pbp_store::{Repository, StoreError, UpsertOutcome};

/// How a kind of row is written.
pub(crate) type WriteRows<R> =
    for<'a> fn(&'a dyn Repository, &'a [R]) -> BoxFuture<'a, Result<UpsertOutcome, StoreError>>;

/// Upserts each record's row into a repository.
pub(crate) struct StoreSink<V, R> {
    repository: Arc<dyn Repository>,
    table: &'static str,
    /// Takes the value, so that its strings move into the row instead of being copied.
    to_row: fn(V) -> R,
    row_key: fn(&R) -> String,
    write_rows: WriteRows<R>,
    parent_wait: Duration,
    written: UpsertOutcome,
}

impl<V, R> StoreSink<V, R> {
    /// A sink writing `table` rows made by `to_row` with `write_rows`; `row_key` names a row in errors.
    pub(crate) fn new(
        repository: Arc<dyn Repository>,
        table: &'static str,
        to_row: fn(V) -> R,
        row_key: fn(&R) -> String,
        write_rows: WriteRows<R>,
    ) -> Self {
        Self {
            repository,
            table,
            to_row,
            row_key,
            write_rows,
            parent_wait: Duration::from_secs(30),
            written: UpsertOutcome::default(),
        }
    }

    /// How long a batch waits for missing parents (and for an unreachable database) before giving up.
    pub(crate) fn with_parent_wait(mut self, wait: Duration) -> Self {
        self.parent_wait = wait;
        self
    }
}

impl<V, R> StoreSink<V, R> {
    fn failed(&self, error: StoreError) -> Error {
        Error::Sink { sink: format!("store:{}", self.table), source: Box::new(error) }
    }

    /// Why one row is refused for good, for its dead letter: the kind of refusal and the store's (or the
    /// database's) reason, with the row's key.
    fn rejection(&self, key: &str, error: &StoreError) -> Rejection {
        let exception = match error {
            StoreError::Invalid { .. } => "InvalidRow",
            StoreError::UnknownGame { .. } | StoreError::UnknownTeam { .. } => "MissingParent",
            StoreError::Constraint { .. } => "ConstraintViolation",
            _ => "DatabaseRefused",
        };
        let mut reason = match error {
            // The batch's first key is in the constraint's message; this row is the one at fault.
            StoreError::Constraint { message, .. } => message.clone(),
            StoreError::Invalid { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        Rejection::new(exception, format!("{} row {key}: {reason}", self.table))
    }
}

fn is_missing_parent(error: &StoreError) -> bool {
    matches!(error, StoreError::UnknownGame { .. } | StoreError::UnknownTeam { .. })
}

/// Pauses between retries of a write: 20 ms, doubling, at most 1 s.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(20))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
    }
}

impl<V, R> StoreSink<V, R>
where
    R: Send + Sync,
{
    /// Writes `rows`: waits for missing parents and retries transient errors until the parent wait is over, and
    /// sets aside the rows the store refuses for good. Returns their indices with their reasons.
    async fn write_all(&mut self, rows: &[R]) -> Result<Vec<(usize, Rejection)>, Error> {
        let mut rejected: Vec<(usize, Rejection)> = Vec::new();
        let mut live: Vec<usize> = (0..rows.len()).collect();
        let deadline = Instant::now() + self.parent_wait;
        let mut backoff = Backoff::new();
        let refused = loop {
            if live.is_empty() {
                return Ok(rejected);
            }
            match write_subset(self.write_rows, self.repository.as_ref(), rows, &live).await {
                Ok(outcome) => {
                    self.written.add(outcome);
                    return Ok(rejected);
                }
                Err(StoreError::Invalid { table, key, reason }) => {
                    // Validation names the row: refuse it, write the others (no database round trip was spent).
                    let position = live.iter().position(|&i| (self.row_key)(&rows[i]) == key);
                    let error = StoreError::Invalid { table, key, reason };
                    let Some(position) = position else { break error };
                    let index = live.remove(position);
                    tracing::warn!(table = self.table, %error, "Row refused by the store; dead-lettered.");
                    rejected.push((index, self.rejection(&(self.row_key)(&rows[index]), &error)));
                }
                Err(error) if (is_missing_parent(&error) || error.is_transient()) && Instant::now() < deadline => {
                    tracing::debug!(table = self.table, %error, "Store write waiting for its parents or the database.");
                    backoff.wait().await;
                }
                Err(error) if error.is_transient() => return Err(self.failed(error)),
                // Deterministic, or parents still missing after the wait: find the rows at fault.
                Err(error) => break error,
            }
        };
        self.isolate(rows, live, refused, deadline, &mut rejected).await?;
        Ok(rejected)
    }

    /// Bisects `indices` (whose write failed with `refused`, a deterministic error) until the rows at fault stand
    /// alone: they are rejected, every other row is written. Parts are written in batch order, so that a later
    /// version of a key still lands after an earlier one.
    async fn isolate(
        &mut self,
        rows: &[R],
        indices: Vec<usize>,
        refused: StoreError,
        deadline: Instant,
        rejected: &mut Vec<(usize, Rejection)>,
    ) -> Result<(), Error> {
        let mut parts: VecDeque<(Vec<usize>, Option<StoreError>)> = VecDeque::from([(indices, Some(refused))]);
        while let Some((part, known)) = parts.pop_front() {
            let error = match known {
                Some(error) => error,
                None => match self.write_retrying(rows, &part, deadline).await {
                    Ok(outcome) => {
                        self.written.add(outcome);
                        continue;
                    }
                    Err(error) if error.is_transient() => return Err(self.failed(error)),
                    Err(error) => error,
                },
            };
            if let [index] = part[..] {
                let key = (self.row_key)(&rows[index]);
                tracing::warn!(table = self.table, %key, %error, "Row refused by the store; dead-lettered.");
                rejected.push((index, self.rejection(&key, &error)));
                continue;
            }
            tracing::debug!(table = self.table, rows = part.len(), %error, "Store write refused; bisecting the batch.");
            let mut first = part;
            let second = first.split_off(first.len() / 2);
            parts.push_front((second, None));
            parts.push_front((first, None));
        }
        Ok(())
    }

    /// One write of the rows at `indices`, retrying missing parents and transient errors until `deadline`.
    async fn write_retrying(
        &self,
        rows: &[R],
        indices: &[usize],
        deadline: Instant,
    ) -> Result<UpsertOutcome, StoreError> {
        let mut backoff = Backoff::new();
        loop {
            match write_subset(self.write_rows, self.repository.as_ref(), rows, indices).await {
                Err(error) if (is_missing_parent(&error) || error.is_transient()) && Instant::now() < deadline => {
                    tracing::debug!(table = self.table, %error, "Store write waiting for its parents or the database.");
                    backoff.wait().await;
                }
                result => return result,
            }
        }
    }
}

async fn write_subset<R>(
    write_rows: WriteRows<R>,
    repository: &dyn Repository,
    rows: &[R],
    indices: &[usize],
) -> Result<UpsertOutcome, StoreError> {
    if indices.len() == rows.len() {
        return write_rows(repository, rows).await;
    }
    // Contiguous runs are written as slices; a store call needs a slice of rows.
    let mut total = UpsertOutcome::default();
    let mut start = 0;
    while start < indices.len() {
        let mut end = start + 1;
        while end < indices.len() && indices[end] == indices[end - 1] + 1 {
            end += 1;
        }
        let slice = &rows[indices[start]..=indices[end - 1]];
        total.add(write_rows(repository, slice).await?);
        start = end;
    }
    Ok(total)
}

#[async_trait]
impl<K, V, R> Sink<K, V> for StoreSink<V, R>
where
    K: Send + 'static,
    V: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    async fn write(&mut self, batch: &mut Vec<Record<K, V>>) -> Result<Vec<SinkRejection>, Error> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows: Vec<R> = Vec::with_capacity(batch.len());
        let mut origins: Vec<Option<Origin>> = Vec::with_capacity(batch.len());
        for record in batch.drain(..) {
            origins.push(record.origin);
            rows.push((self.to_row)(record.value));
        }
        let rejected = self.write_all(&rows).await?;
        Ok(rejected.into_iter().map(|(i, rejection)| SinkRejection { origin: origins[i].clone(), rejection }).collect())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        // Every write is committed before `write` returns.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use pbp_avro::ScoreboardEvent;
    use pbp_store::{GameRow, SqliteStore, TeamRow};

    use super::*;
    use crate::pipelines::convert::game_row;

    fn team(id: &str) -> TeamRow {
        TeamRow {
            league: "nba".into(),
            id: id.into(),
            abbreviation: format!("T{id}"),
            display_name: format!("Team {id}"),
            color: None,
            alternate_color: None,
            updated_at: 1,
        }
    }

    fn game(id: &str, home: &str) -> Record<String, GameRow> {
        let mut event = ScoreboardEvent::example();
        event.game_id = id.to_owned();
        event.home_team_id = home.to_owned();
        event.away_team_id = "2".to_owned();
        Record::new(id.to_owned(), game_row(&event))
    }

    fn games_sink(repository: Arc<dyn Repository>, wait: Duration) -> StoreSink<GameRow, GameRow> {
        StoreSink::new(
            repository,
            "games",
            std::convert::identity,
            |g: &GameRow| g.id.clone(),
            |r, rows| r.upsert_games(rows),
        )
        .with_parent_wait(wait)
    }

    #[tokio::test]
    async fn a_missing_parent_is_waited_for_a_bad_row_dead_lettered_an_orphan_too() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let repository: Arc<dyn Repository> = Arc::new(SqliteStore::open(dir.path(), 2).await?);
        repository.upsert_teams(&[team("2")]).await?;

        // Team 19 lands while the batch waits for it.
        let mut sink = games_sink(repository.clone(), Duration::from_secs(10));
        let late = repository.clone();
        let parent = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            late.upsert_teams(&[team("19")]).await
        });
        let rejected = Sink::<String, GameRow>::write(&mut sink, &mut vec![game("1", "19")]).await?;
        parent.await??;
        assert!(rejected.is_empty());
        assert!(repository.game("1").await?.is_some());

        // A row the schema refuses is dead-lettered; the rest of the batch is written.
        let mut bad = game("2", "19");
        bad.value.game_date = "yesterday".into();
        let rejected = Sink::<String, GameRow>::write(&mut sink, &mut vec![bad, game("3", "19")]).await?;
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].rejection.exception, "InvalidRow");
        assert!(repository.game("3").await?.is_some() && repository.game("2").await?.is_none());

        // A parent that never comes: the orphan is dead-lettered after the wait, its neighbours are written.
        let mut sink = games_sink(repository.clone(), Duration::from_millis(100));
        let rejected =
            Sink::<String, GameRow>::write(&mut sink, &mut vec![game("4", "19"), game("5", "77"), game("6", "19")])
                .await?;
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(rejected[0].rejection.message.contains("77"), "{rejected:?}");
        assert!(repository.game("4").await?.is_some() && repository.game("6").await?.is_some());
        assert!(repository.game("5").await?.is_none());
        Ok(())
    }
}
