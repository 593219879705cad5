use super::*;

#[test]
fn placeholders_follow_the_backend() {
    let pg = select_plays(Placeholder::Dollar, true, false, true);
    assert!(
        pg.ends_with("WHERE NOT deleted AND game_id = $1 AND sequence > $2 ORDER BY game_order, sequence LIMIT $3"),
        "{pg}"
    );
    let lite = select_plays(Placeholder::Question, false, false, true);
    assert!(lite.ends_with("WHERE NOT deleted AND game_id = ?1 ORDER BY game_order, sequence LIMIT ?2"), "{lite}");
    let resume = select_plays(Placeholder::Question, true, true, false);
    assert!(
        resume.ends_with(
            "WHERE NOT deleted AND game_id = ?1 AND (sequence > ?2 OR revision > 1) ORDER BY game_order, sequence"
        ),
        "{resume}"
    );
}

#[test]
fn upsert_binds_every_column_of_every_row_once() {
    let sql = upsert(&PLAYS, Placeholder::Dollar, 3, "revision");
    let width = PLAYS.width();
    assert!(sql.contains(&format!("${}", 3 * width)));
    assert!(!sql.contains(&format!("${}", 3 * width + 1)));
    assert!(sql.contains("ON CONFLICT (game_id, play_id) DO UPDATE SET sequence = excluded.sequence"));
    assert!(sql.contains("revision = plays.revision + 1"));
    assert!(sql.contains("WHERE excluded.fetched_at >= plays.fetched_at AND (plays.sequence IS DISTINCT FROM"));
    // Delivery metadata is written but never compared.
    assert!(!sql.contains("plays.enriched_at IS DISTINCT FROM"));
    assert!(!sql.contains("plays.change IS DISTINCT FROM"));
    assert!(sql.ends_with("RETURNING revision"));
    // A deletion or a restore is a change; the change number is written with any change.
    assert!(sql.contains("plays.deleted IS DISTINCT FROM excluded.deleted"));
    assert!(sql.contains("last_change = excluded.last_change"));
    assert!(!sql.contains("plays.last_change IS DISTINCT FROM"));
}

#[test]
fn pages_and_the_change_feed() {
    assert_eq!(
        select_plays_page(Placeholder::Dollar, true),
        format!(
            "SELECT {PLAY_COLUMNS} FROM plays WHERE NOT deleted AND game_id = $1 AND last_change <= $2 AND \
             (game_order, sequence) > ($3, $4) ORDER BY game_order, sequence LIMIT $5"
        )
    );
    assert!(
        select_plays_page(Placeholder::Question, false)
            .ends_with("last_change <= ?2 ORDER BY game_order, sequence LIMIT ?3")
    );
    assert!(
        select_play_changes(Placeholder::Question, true).ends_with("last_change > ?2 ORDER BY last_change LIMIT ?3")
    );
    assert_eq!(
        lock_game_changes(Placeholder::Dollar, 2, " FOR NO KEY UPDATE"),
        "SELECT id AS key, last_change AS n FROM games WHERE id IN ($1, $2) ORDER BY id FOR NO KEY UPDATE"
    );
}

#[test]
fn counters_have_no_version_guard() {
    let sql = upsert(&GAME_STATE_TEAMS, Placeholder::Question, 2, "game_id AS key");
    assert!(sql.contains("VALUES (?1, ?2,"));
    assert!(sql.contains("WHERE (game_state_teams.team_id IS DISTINCT FROM excluded.team_id OR"));
}

#[test]
fn chunks_stay_under_both_backends_bind_limits() {
    for table in [&TEAMS, &GAMES, &PLAYS, &GAME_STATES, &GAME_STATE_TEAMS] {
        let rows = chunk_rows(table.width());
        assert!(rows * table.width() <= 32_766, "{}", table.name);
        assert!(rows >= 500, "{} batches only {rows} rows per statement", table.name);
    }
}

#[test]
fn filters_are_numbered_in_order() {
    assert_eq!(
        select_games(Placeholder::Dollar, true, false, true, true),
        format!(
            "SELECT {GAME_COLUMNS} FROM games WHERE game_date = $1 AND league = $2 ORDER BY start_time, id LIMIT $3"
        )
    );
    assert_eq!(
        count_existing(&TEAMS, Placeholder::Question, 2),
        "SELECT COUNT(*) AS n FROM teams WHERE (league, id) IN (VALUES (?1, ?2), (?3, ?4))"
    );
}
