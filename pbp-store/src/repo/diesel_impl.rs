//! The [`Repository`](super::Repository) implementation over diesel-async, shared by both backends.
//!
//! Both stores run the same portable SQL (see [`crate::sql`]) through `diesel::sql_query` with dynamically bound
//! parameters; the macro below instantiates the implementation once per backend, because diesel's bind and load
//! bounds are backend-specific types.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::StoreError;
use crate::model::UpsertOutcome;

/// Turns a diesel error of a write into a typed error with context.
pub(crate) fn write_error(table: &'static str, first_key: String, e: DieselError) -> StoreError {
    match e {
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::ForeignKeyViolation
            | DatabaseErrorKind::CheckViolation
            | DatabaseErrorKind::NotNullViolation,
            info,
        ) => StoreError::Constraint { table, first_key, message: info.message().to_owned() },
        source => StoreError::from_database(table, "upsert", source),
    }
}

/// Turns a diesel error of a read into a typed error with context.
pub(crate) fn read_error(table: &'static str) -> impl FnOnce(DieselError) -> StoreError {
    move |source| StoreError::from_database(table, "select", source)
}

/// Splits a chunk's result: `rows` written, of which `existing` were stored before and `changed` were returned
/// by the upsert (inserted or updated).
pub(crate) fn split(rows: usize, existing: u64, changed: u64) -> UpsertOutcome {
    let inserted = rows as u64 - existing;
    let updated = changed.saturating_sub(inserted);
    UpsertOutcome { inserted, updated, unchanged: rows as u64 - inserted - updated }
}

macro_rules! impl_repository {
    ($store:ty, $db:ty, $ph:expr, $snapshot:expr, $lock:expr) => {
        impl $store {
            /// The change numbers of the stored games among `ids` (sorted), their rows locked with `$lock` until
            /// the transaction ends.
            async fn lock_change_numbers(
                conn: &mut <Self as $crate::repo::diesel_impl::Backend>::Conn,
                ids: &[&str],
            ) -> Result<std::collections::HashMap<String, i64>, diesel::result::Error> {
                use diesel_async::RunQueryDsl;
                let mut found = std::collections::HashMap::with_capacity(ids.len());
                for chunk in ids.chunks(1000) {
                    let mut q =
                        diesel::sql_query($crate::sql::lock_game_changes($ph, chunk.len(), $lock)).into_boxed::<$db>();
                    for id in chunk {
                        q = q.bind::<diesel::sql_types::Text, _>(*id);
                    }
                    for r in q.load::<$crate::repo::records::ChangeNumberRecord>(conn).await? {
                        found.insert(r.key, r.n);
                    }
                }
                Ok(found)
            }

            /// Game ids among `ids` that are not stored.
            async fn missing_games(
                conn: &mut <Self as $crate::repo::diesel_impl::Backend>::Conn,
                ids: &[&str],
            ) -> Result<Vec<String>, diesel::result::Error> {
                use diesel_async::RunQueryDsl;
                let mut missing = Vec::new();
                for chunk in ids.chunks(1000) {
                    let mut q = diesel::sql_query($crate::sql::existing_games($ph, chunk.len())).into_boxed::<$db>();
                    for id in chunk {
                        q = q.bind::<diesel::sql_types::Text, _>(*id);
                    }
                    let found: std::collections::HashSet<String> =
                        q.load::<$crate::repo::records::KeyRecord>(conn).await?.into_iter().map(|r| r.key).collect();
                    missing.extend(chunk.iter().filter(|id| !found.contains(**id)).map(|id| (*id).to_owned()));
                }
                Ok(missing)
            }
        }

        #[async_trait::async_trait]
        impl $crate::repo::Repository for $store {
            async fn upsert_teams(
                &self,
                teams: &[$crate::model::TeamRow],
            ) -> $crate::error::Result<$crate::model::UpsertOutcome> {
                use diesel::sql_types::{BigInt, Nullable, Text};
                use diesel_async::{AsyncConnection, RunQueryDsl};
                use $crate::repo::records::{CountRecord, KeyRecord};
                use $crate::sql;
                for t in teams {
                    t.validate()?;
                }
                let (rows, duplicates) = $crate::repo::dedup_last(teams, |t| (t.league.as_str(), t.id.as_str()));
                let mut outcome = $crate::model::UpsertOutcome { unchanged: duplicates, ..Default::default() };
                let Some(first) = <[_]>::first(&rows) else { return Ok(outcome) };
                let first_key = first.key();
                let _writer = self.write_lock().await;
                let mut pooled = self.conn().await?;
                let conn = &mut *pooled;
                let table = &sql::TEAMS;
                let written = conn
                    .transaction(async |conn| {
                        let mut total = $crate::model::UpsertOutcome::default();
                        for chunk in rows.chunks(sql::chunk_rows(table.width())) {
                            let mut q =
                                diesel::sql_query(sql::count_existing(table, $ph, chunk.len())).into_boxed::<$db>();
                            for t in chunk {
                                q = q.bind::<Text, _>(t.league.as_str()).bind::<Text, _>(t.id.as_str());
                            }
                            let existing = q.get_result::<CountRecord>(conn).await?.n as u64;
                            let mut q = diesel::sql_query(sql::upsert(table, $ph, chunk.len(), "id AS key"))
                                .into_boxed::<$db>();
                            for t in chunk {
                                q = q
                                    .bind::<Text, _>(t.league.as_str())
                                    .bind::<Text, _>(t.id.as_str())
                                    .bind::<Text, _>(t.abbreviation.as_str())
                                    .bind::<Text, _>(t.display_name.as_str())
                                    .bind::<Nullable<Text>, _>(t.color.as_deref())
                                    .bind::<Nullable<Text>, _>(t.alternate_color.as_deref())
                                    .bind::<BigInt, _>(t.updated_at);
                            }
                            let changed = q.load::<KeyRecord>(conn).await?.len() as u64;
                            total.add($crate::repo::diesel_impl::split(chunk.len(), existing, changed));
                        }
                        Ok::<_, diesel::result::Error>(total)
                    })
                    .await
                    .map_err(|e| $crate::repo::diesel_impl::write_error("teams", first_key, e))?;
                outcome.add(written);
                tracing::debug!(
                    table = "teams",
                    rows = teams.len(),
                    inserted = outcome.inserted,
                    updated = outcome.updated,
                    "upsert"
                );
                Ok(outcome)
            }

            async fn upsert_games(
                &self,
                games: &[$crate::model::GameRow],
            ) -> $crate::error::Result<$crate::model::UpsertOutcome> {
                use diesel::sql_types::{BigInt, Bool, Double, Integer, Text};
                use diesel_async::{AsyncConnection, RunQueryDsl};
                use $crate::repo::records::{CountRecord, KeyRecord, TeamKeyRecord};
                use $crate::sql;
                for g in games {
                    g.validate()?;
                }
                let (mut rows, duplicates) = $crate::repo::dedup_last(games, |g| g.id.as_str());
                // Rows in id order: the order in which play writers lock games (`lock_change_numbers`), so that
                // the two never wait for each other in a cycle.
                rows.sort_by(|a, b| a.id.cmp(&b.id));
                let mut outcome = $crate::model::UpsertOutcome { unchanged: duplicates, ..Default::default() };
                let Some(first) = <[_]>::first(&rows) else { return Ok(outcome) };
                let first_key = first.id.clone();
                let _writer = self.write_lock().await;
                let mut pooled = self.conn().await?;
                let conn = &mut *pooled;
                let table = &sql::GAMES;
                let written = conn
                    .transaction(async |conn| {
                        // Referenced teams must exist: report the first missing one by name.
                        let mut teams: Vec<(&str, &str, &str)> = Vec::new();
                        let mut seen = std::collections::HashSet::new();
                        for g in &rows {
                            for team in [g.home_team_id.as_str(), g.away_team_id.as_str()] {
                                if seen.insert((g.league.as_str(), team)) {
                                    teams.push((g.league.as_str(), team, g.id.as_str()));
                                }
                            }
                        }
                        for chunk in teams.chunks(1000) {
                            let mut q = diesel::sql_query(sql::existing_teams($ph, chunk.len())).into_boxed::<$db>();
                            for (league, team, _) in chunk {
                                q = q.bind::<Text, _>(*league).bind::<Text, _>(*team);
                            }
                            let found: std::collections::HashSet<(String, String)> =
                                q.load::<TeamKeyRecord>(conn).await?.into_iter().map(|r| (r.league, r.key)).collect();
                            if let Some((league, team, game)) =
                                chunk.iter().find(|(l, t, _)| !found.contains(&((*l).to_owned(), (*t).to_owned())))
                            {
                                return Ok(Err($crate::error::StoreError::UnknownTeam {
                                    game_id: (*game).to_owned(),
                                    league: (*league).to_owned(),
                                    team_id: (*team).to_owned(),
                                }));
                            }
                        }
                        let mut total = $crate::model::UpsertOutcome::default();
                        for chunk in rows.chunks(sql::chunk_rows(table.width())) {
                            let mut q =
                                diesel::sql_query(sql::count_existing(table, $ph, chunk.len())).into_boxed::<$db>();
                            for g in chunk {
                                q = q.bind::<Text, _>(g.id.as_str());
                            }
                            let existing = q.get_result::<CountRecord>(conn).await?.n as u64;
                            let mut q = diesel::sql_query(sql::upsert(table, $ph, chunk.len(), "id AS key"))
                                .into_boxed::<$db>();
                            for g in chunk {
                                q = q
                                    .bind::<Text, _>(g.id.as_str())
                                    .bind::<Text, _>(g.league.as_str())
                                    .bind::<Integer, _>(g.season)
                                    .bind::<Integer, _>(g.season_type)
                                    .bind::<Text, _>(g.game_date.as_str())
                                    .bind::<BigInt, _>(g.start_time)
                                    .bind::<Text, _>(g.status.as_str())
                                    .bind::<Text, _>(g.status_detail.as_str())
                                    .bind::<Integer, _>(g.period)
                                    .bind::<Text, _>(g.clock_display.as_str())
                                    .bind::<Double, _>(g.clock_seconds)
                                    .bind::<Bool, _>(g.completed)
                                    .bind::<Text, _>(g.home_team_id.as_str())
                                    .bind::<Text, _>(g.away_team_id.as_str())
                                    .bind::<Integer, _>(g.home_score)
                                    .bind::<Integer, _>(g.away_score)
                                    .bind::<BigInt, _>(g.fetched_at);
                            }
                            let changed = q.load::<KeyRecord>(conn).await?.len() as u64;
                            total.add($crate::repo::diesel_impl::split(chunk.len(), existing, changed));
                        }
                        Ok::<_, diesel::result::Error>(Ok(total))
                    })
                    .await
                    .map_err(|e| $crate::repo::diesel_impl::write_error("games", first_key, e))??;
                outcome.add(written);
                tracing::debug!(
                    table = "games",
                    rows = games.len(),
                    inserted = outcome.inserted,
                    updated = outcome.updated,
                    "upsert"
                );
                Ok(outcome)
            }

            async fn upsert_plays_with_changes(
                &self,
                plays: &[$crate::model::PlayRow],
            ) -> $crate::error::Result<$crate::model::PlaysWritten> {
                use diesel_async::{AsyncConnection, RunQueryDsl};
                use $crate::repo::records::RevisionRecord;
                use $crate::repo::rows_statement::Bind;
                use $crate::sql;
                for p in plays {
                    p.validate()?;
                }
                let (rows, duplicates) = $crate::repo::dedup_last(plays, |p| (p.game_id.as_str(), p.play_id.as_str()));
                let mut outcome = $crate::model::UpsertOutcome { unchanged: duplicates, ..Default::default() };
                let Some(first) = <[_]>::first(&rows) else {
                    return Ok($crate::model::PlaysWritten { outcome, changed: Vec::new() });
                };
                let first_key = first.key();
                let participants: Vec<String> =
                    rows.iter().map(|p| serde_json::to_string(&p.participants)).collect::<Result<_, _>>().map_err(
                        |e| $crate::error::StoreError::Invalid {
                            table: "plays",
                            key: first_key.clone(),
                            reason: format!("participants cannot be encoded: {e}"),
                        },
                    )?;
                let mut game_ids: Vec<&str> = rows.iter().map(|p| p.game_id.as_str()).collect();
                game_ids.sort_unstable();
                game_ids.dedup();
                let _writer = self.write_lock().await;
                let mut pooled = self.conn().await?;
                let conn = &mut *pooled;
                let table = &sql::PLAYS;
                let written = conn
                    .transaction(async |conn| {
                        // The games' change numbers, their rows locked until the commit (PostgreSQL; SQLite's
                        // writers queue on `write_lock`): writers of a game's plays number their changes one after
                        // the other, so numbers commit in order and a change feed read never skips one.
                        let mut counters = Self::lock_change_numbers(conn, &game_ids).await?;
                        if let Some(game_id) = game_ids.iter().find(|id| !counters.contains_key(**id)) {
                            let game_id = (*game_id).to_owned();
                            let key = rows.iter().find(|p| p.game_id == game_id).map(|p| p.key()).unwrap_or_default();
                            return Ok(Err($crate::error::StoreError::UnknownGame { table: "plays", key, game_id }));
                        }
                        // Each row is offered the next number of its game, in batch order; a row the upsert leaves
                        // unchanged does not use its number (the gap is harmless: only the order counts).
                        let numbers: Vec<i64> = rows
                            .iter()
                            .map(|p| {
                                let counter = counters.entry(p.game_id.clone()).or_default();
                                *counter += 1;
                                *counter
                            })
                            .collect();
                        let mut total = $crate::model::UpsertOutcome::default();
                        let mut changed = Vec::new();
                        // One prepared statement per chunk size, kept by the connection (see `rows_statement`).
                        let (prefix, suffix) =
                            sql::upsert_parts(table, "game_id, play_id, revision, last_change, deleted");
                        let mut start = 0;
                        for size in $crate::repo::rows_statement::chunk_sizes(rows.len(), sql::PLAY_CHUNK_ROWS) {
                            let (chunk, json) = (&rows[start..start + size], &participants[start..start + size]);
                            let chunk_numbers = &numbers[start..start + size];
                            start += size;
                            let mut q = $crate::repo::rows_statement::RowsStatement::<$db>::new(
                                &prefix,
                                &suffix,
                                table.width(),
                                size,
                            );
                            for ((p, json), number) in chunk.iter().zip(json).zip(chunk_numbers) {
                                q.bind(Bind::Text(p.game_id.as_str()))
                                    .bind(Bind::Text(p.play_id.as_str()))
                                    .bind(Bind::BigInt(p.sequence))
                                    .bind(Bind::BigInt(p.game_order))
                                    .bind(Bind::Text(p.league.as_str()))
                                    .bind(Bind::Integer(p.period))
                                    .bind(Bind::Text(p.clock_display.as_str()))
                                    .bind(Bind::Double(p.clock_seconds))
                                    .bind(Bind::Double(p.game_seconds_left))
                                    .bind(Bind::Double(p.period_elapsed_seconds))
                                    .bind(Bind::Double(p.game_elapsed_seconds))
                                    .bind(Bind::Bool(p.overtime))
                                    .bind(Bind::Text(p.event_type.as_str()))
                                    .bind(Bind::Text(p.espn_type_id.as_str()))
                                    .bind(Bind::Text(p.espn_type_text.as_str()))
                                    .bind(Bind::NullableText(p.team_id.as_deref()))
                                    .bind(Bind::NullableText(p.side.map(|s| s.as_str())))
                                    .bind(Bind::Integer(p.home_score))
                                    .bind(Bind::Integer(p.away_score))
                                    .bind(Bind::Integer(p.score_differential))
                                    .bind(Bind::Integer(p.score_value))
                                    .bind(Bind::Bool(p.scoring_play))
                                    .bind(Bind::Bool(p.shooting_play))
                                    .bind(Bind::NullableInteger(p.shot_value))
                                    .bind(Bind::NullableInteger(p.coordinate.map(|c| c.x)))
                                    .bind(Bind::NullableInteger(p.coordinate.map(|c| c.y)))
                                    .bind(Bind::NullableBigInt(p.wallclock))
                                    .bind(Bind::Text(json.as_str()))
                                    .bind(Bind::Text(p.text.as_str()))
                                    .bind(Bind::Bool(p.is_deleted()))
                                    .bind(Bind::Text(p.change.as_str()))
                                    .bind(Bind::BigInt(p.fetched_at))
                                    .bind(Bind::BigInt(p.enriched_at))
                                    .bind(Bind::BigInt(*number));
                            }
                            let returned = q.load::<RevisionRecord>(conn).await?;
                            let inserted = returned.iter().filter(|r| r.revision == 1).count() as u64;
                            let updated = returned.len() as u64 - inserted;
                            total.add($crate::model::UpsertOutcome {
                                inserted,
                                updated,
                                unchanged: chunk.len() as u64 - inserted - updated,
                            });
                            changed.extend(returned.into_iter().map(|r| $crate::model::PlayRevision {
                                game_id: r.game_id,
                                play_id: r.play_id,
                                revision: r.revision,
                                change_number: r.last_change,
                                deleted: r.deleted,
                            }));
                        }
                        // The counter of each game with a change moves past the numbers its rows were offered.
                        let mut moved: Vec<&str> = changed.iter().map(|c| c.game_id.as_str()).collect();
                        moved.sort_unstable();
                        moved.dedup();
                        for game_id in moved {
                            let Some(number) = counters.get(game_id) else { continue };
                            diesel::sql_query(sql::set_change_number($ph))
                                .into_boxed::<$db>()
                                .bind::<diesel::sql_types::BigInt, _>(*number)
                                .bind::<diesel::sql_types::Text, _>(game_id)
                                .execute(conn)
                                .await?;
                        }
                        Ok::<_, diesel::result::Error>(Ok((total, changed)))
                    })
                    .await
                    .map_err(|e| $crate::repo::diesel_impl::write_error("plays", first_key, e))??;
                let (written, changed) = written;
                outcome.add(written);
                tracing::debug!(
                    table = "plays",
                    rows = plays.len(),
                    inserted = outcome.inserted,
                    updated = outcome.updated,
                    "upsert"
                );
                Ok($crate::model::PlaysWritten { outcome, changed })
            }

            async fn upsert_game_states(
                &self,
                states: &[$crate::model::GameStateRow],
            ) -> $crate::error::Result<$crate::model::UpsertOutcome> {
                use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text};
                use diesel_async::{AsyncConnection, RunQueryDsl};
                use $crate::repo::records::{CountRecord, KeyRecord};
                use $crate::sql;
                for s in states {
                    s.validate()?;
                }
                let (rows, duplicates) = $crate::repo::dedup_last(states, |s| s.game_id.as_str());
                let mut outcome = $crate::model::UpsertOutcome { unchanged: duplicates, ..Default::default() };
                let Some(first) = <[_]>::first(&rows) else { return Ok(outcome) };
                let first_key = first.game_id.clone();
                let mut game_ids: Vec<&str> = rows.iter().map(|s| s.game_id.as_str()).collect();
                game_ids.sort_unstable();
                let _writer = self.write_lock().await;
                let mut pooled = self.conn().await?;
                let conn = &mut *pooled;
                let table = &sql::GAME_STATES;
                let sides = &sql::GAME_STATE_TEAMS;
                let written = conn
                    .transaction(async |conn| {
                        let missing = Self::missing_games(conn, &game_ids).await?;
                        if let Some(game_id) = missing.into_iter().next() {
                            return Ok(Err($crate::error::StoreError::UnknownGame {
                                table: "game_states",
                                key: game_id.clone(),
                                game_id,
                            }));
                        }
                        let mut total = $crate::model::UpsertOutcome::default();
                        for chunk in rows.chunks(sql::chunk_rows(sides.width() * 2)) {
                            let mut q =
                                diesel::sql_query(sql::count_existing(table, $ph, chunk.len())).into_boxed::<$db>();
                            for s in chunk {
                                q = q.bind::<Text, _>(s.game_id.as_str());
                            }
                            let existing = q.get_result::<CountRecord>(conn).await?.n as u64;
                            let mut q = diesel::sql_query(sql::upsert(table, $ph, chunk.len(), "game_id AS key"))
                                .into_boxed::<$db>();
                            for s in chunk {
                                q = q
                                    .bind::<Text, _>(s.game_id.as_str())
                                    .bind::<Text, _>(s.league.as_str())
                                    .bind::<Text, _>(s.status.as_str())
                                    .bind::<Integer, _>(s.period)
                                    .bind::<Text, _>(s.clock_display.as_str())
                                    .bind::<Double, _>(s.clock_seconds)
                                    .bind::<Integer, _>(s.home_score)
                                    .bind::<Integer, _>(s.away_score)
                                    .bind::<BigInt, _>(s.last_sequence)
                                    .bind::<Nullable<Text>, _>(s.last_play_id.as_deref())
                                    .bind::<Nullable<Text>, _>(s.last_play_text.as_deref())
                                    .bind::<BigInt, _>(s.plays_applied)
                                    .bind::<BigInt, _>(s.updated_at);
                            }
                            let applied: std::collections::HashSet<String> =
                                q.load::<KeyRecord>(conn).await?.into_iter().map(|r| r.key).collect();
                            total.add($crate::repo::diesel_impl::split(chunk.len(), existing, applied.len() as u64));
                            let applied: Vec<_> = chunk.iter().filter(|s| applied.contains(&s.game_id)).collect();
                            if applied.is_empty() {
                                continue;
                            }
                            let mut q = diesel::sql_query(sql::upsert(sides, $ph, applied.len() * 2, "game_id AS key"))
                                .into_boxed::<$db>();
                            for s in applied {
                                for (side, c) in
                                    [($crate::model::Side::Home, &s.home), ($crate::model::Side::Away, &s.away)]
                                {
                                    q = q
                                        .bind::<Text, _>(s.game_id.as_str())
                                        .bind::<Text, _>(side.as_str())
                                        .bind::<Nullable<Text>, _>(c.team_id.as_deref())
                                        .bind::<Integer, _>(c.points)
                                        .bind::<Integer, _>(c.field_goals_made)
                                        .bind::<Integer, _>(c.field_goals_attempted)
                                        .bind::<Integer, _>(c.three_pointers_made)
                                        .bind::<Integer, _>(c.three_pointers_attempted)
                                        .bind::<Integer, _>(c.free_throws_made)
                                        .bind::<Integer, _>(c.free_throws_attempted)
                                        .bind::<Integer, _>(c.offensive_rebounds)
                                        .bind::<Integer, _>(c.defensive_rebounds)
                                        .bind::<Integer, _>(c.turnovers)
                                        .bind::<Integer, _>(c.fouls)
                                        .bind::<Integer, _>(c.period_fouls)
                                        .bind::<Integer, _>(c.timeouts);
                                }
                            }
                            q.load::<KeyRecord>(conn).await?;
                        }
                        Ok::<_, diesel::result::Error>(Ok(total))
                    })
                    .await
                    .map_err(|e| $crate::repo::diesel_impl::write_error("game_states", first_key, e))??;
                outcome.add(written);
                tracing::debug!(
                    table = "game_states",
                    rows = states.len(),
                    inserted = outcome.inserted,
                    updated = outcome.updated,
                    "upsert"
                );
                Ok(outcome)
            }

            async fn teams(&self, league: Option<&str>) -> $crate::error::Result<Vec<$crate::model::TeamRow>> {
                use diesel::sql_types::Text;
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let mut q = diesel::sql_query($crate::sql::select_teams($ph, league.is_some())).into_boxed::<$db>();
                if let Some(league) = league {
                    q = q.bind::<Text, _>(league);
                }
                let records = q
                    .load::<$crate::repo::records::TeamRecord>(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("teams"))?;
                Ok(records.into_iter().map(Into::into).collect())
            }

            async fn games(
                &self,
                query: &$crate::model::GamesQuery,
            ) -> $crate::error::Result<Vec<$crate::model::GameRow>> {
                use diesel::sql_types::{BigInt, Text};
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let sql = $crate::sql::select_games(
                    $ph,
                    query.date.is_some(),
                    query.status.is_some(),
                    query.league.is_some(),
                    query.limit.is_some(),
                );
                let mut q = diesel::sql_query(sql).into_boxed::<$db>();
                if let Some(date) = &query.date {
                    q = q.bind::<Text, _>(date.as_str());
                }
                if let Some(status) = query.status {
                    q = q.bind::<Text, _>(status.as_str());
                }
                if let Some(league) = &query.league {
                    q = q.bind::<Text, _>(league.as_str());
                }
                if let Some(limit) = query.limit {
                    q = q.bind::<BigInt, _>(i64::from(limit));
                }
                let records = q
                    .load::<$crate::repo::records::GameRecord>(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("games"))?;
                records.into_iter().map(TryInto::try_into).collect()
            }

            async fn game(&self, game_id: &str) -> $crate::error::Result<Option<$crate::model::GameRow>> {
                use diesel::OptionalExtension;
                use diesel::sql_types::Text;
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let record = diesel::sql_query($crate::sql::select_game($ph))
                    .into_boxed::<$db>()
                    .bind::<Text, _>(game_id)
                    .get_result::<$crate::repo::records::GameRecord>(&mut *pooled)
                    .await
                    .optional()
                    .map_err($crate::repo::diesel_impl::read_error("games"))?;
                record.map(TryInto::try_into).transpose()
            }

            async fn plays(
                &self,
                game_id: &str,
                query: &$crate::model::PlaysQuery,
            ) -> $crate::error::Result<Vec<$crate::model::PlayRow>> {
                use diesel::sql_types::{BigInt, Text};
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let sql =
                    $crate::sql::select_plays($ph, query.since.is_some(), query.corrections, query.limit.is_some());
                let mut q = diesel::sql_query(sql).into_boxed::<$db>().bind::<Text, _>(game_id);
                if let Some(since) = query.since {
                    q = q.bind::<BigInt, _>(since);
                }
                if let Some(limit) = query.limit {
                    q = q.bind::<BigInt, _>(i64::from(limit));
                }
                let records = q
                    .load::<$crate::repo::records::PlayRecord>(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("plays"))?;
                records.into_iter().map(TryInto::try_into).collect()
            }

            async fn last_plays(&self, game_id: &str, n: u32) -> $crate::error::Result<Vec<$crate::model::PlayRow>> {
                use diesel::sql_types::{BigInt, Text};
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let records = diesel::sql_query($crate::sql::select_last_plays($ph))
                    .into_boxed::<$db>()
                    .bind::<Text, _>(game_id)
                    .bind::<BigInt, _>(i64::from(n))
                    .load::<$crate::repo::records::PlayRecord>(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("plays"))?;
                let mut rows: Vec<$crate::model::PlayRow> =
                    records.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?;
                rows.reverse();
                Ok(rows)
            }

            async fn plays_page(
                &self,
                game_id: &str,
                query: &$crate::model::PlaysPageQuery,
            ) -> $crate::error::Result<$crate::model::PlaysPage> {
                use diesel::sql_types::{BigInt, Text};
                use diesel_async::RunQueryDsl;
                // The snapshot's change number first: every change up to it is committed, so the rows read next
                // hold all of them (and a change committed in between has a higher number: it is not read).
                let as_of = match query.as_of {
                    Some(as_of) => as_of,
                    None => self.change_number(game_id).await?.unwrap_or(0),
                };
                let mut pooled = self.conn().await?;
                let sql = $crate::sql::select_plays_page($ph, query.after.is_some());
                let mut q =
                    diesel::sql_query(sql).into_boxed::<$db>().bind::<Text, _>(game_id).bind::<BigInt, _>(as_of);
                if let Some(after) = query.after {
                    q = q.bind::<BigInt, _>(after.game_order).bind::<BigInt, _>(after.sequence);
                }
                let records = q
                    .bind::<BigInt, _>(i64::from(query.limit))
                    .load::<$crate::repo::records::PlayRecord>(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("plays"))?;
                let plays = records.into_iter().map(TryInto::try_into).collect::<Result<_, _>>()?;
                Ok($crate::model::PlaysPage { as_of, plays })
            }

            async fn play_changes(
                &self,
                game_id: &str,
                after: i64,
                limit: Option<u32>,
            ) -> $crate::error::Result<Vec<$crate::model::PlayRow>> {
                use diesel::sql_types::{BigInt, Text};
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let mut q = diesel::sql_query($crate::sql::select_play_changes($ph, limit.is_some()))
                    .into_boxed::<$db>()
                    .bind::<Text, _>(game_id)
                    .bind::<BigInt, _>(after);
                if let Some(limit) = limit {
                    q = q.bind::<BigInt, _>(i64::from(limit));
                }
                let records = q
                    .load::<$crate::repo::records::PlayRecord>(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("plays"))?;
                records.into_iter().map(TryInto::try_into).collect()
            }

            async fn change_number(&self, game_id: &str) -> $crate::error::Result<Option<i64>> {
                use diesel::OptionalExtension;
                use diesel::sql_types::Text;
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                let record = diesel::sql_query($crate::sql::select_change_number($ph))
                    .into_boxed::<$db>()
                    .bind::<Text, _>(game_id)
                    .get_result::<$crate::repo::records::CountRecord>(&mut *pooled)
                    .await
                    .optional()
                    .map_err($crate::repo::diesel_impl::read_error("games"))?;
                Ok(record.map(|r| r.n))
            }

            async fn game_state(&self, game_id: &str) -> $crate::error::Result<Option<$crate::model::GameStateRow>> {
                use diesel::OptionalExtension;
                use diesel::sql_types::Text;
                use diesel_async::{AsyncConnection, RunQueryDsl};
                let mut pooled = self.conn().await?;
                let conn = &mut *pooled;
                // State and counters are written in one transaction; read them from one snapshot.
                let read = conn
                    .transaction(async |conn| {
                        if let Some(snapshot) = $snapshot {
                            diesel::sql_query(snapshot).execute(conn).await?;
                        }
                        let state = diesel::sql_query($crate::sql::select_state($ph))
                            .into_boxed::<$db>()
                            .bind::<Text, _>(game_id)
                            .get_result::<$crate::repo::records::StateRecord>(conn)
                            .await
                            .optional()?;
                        let Some(state) = state else { return Ok(None) };
                        let sides = diesel::sql_query($crate::sql::select_state_teams($ph))
                            .into_boxed::<$db>()
                            .bind::<Text, _>(game_id)
                            .load::<$crate::repo::records::StateTeamRecord>(conn)
                            .await?;
                        Ok::<_, diesel::result::Error>(Some((state, sides)))
                    })
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("game_states"))?;
                read.map(|(state, sides)| state.into_row(sides)).transpose()
            }

            async fn ping(&self) -> $crate::error::Result<()> {
                use diesel_async::RunQueryDsl;
                let mut pooled = self.conn().await?;
                diesel::sql_query("SELECT 1 AS n")
                    .execute(&mut *pooled)
                    .await
                    .map_err($crate::repo::diesel_impl::read_error("*"))?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_repository;

/// The connection type of a store, for the helpers the macro generates.
pub(crate) trait Backend {
    /// The diesel-async connection.
    type Conn;
}
