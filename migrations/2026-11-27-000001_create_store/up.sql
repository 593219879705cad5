-- Play-by-Play store schema. Portable SQL: the same file runs on PostgreSQL and on SQLite (the embedded store).
-- Timestamps are milliseconds since the Unix epoch (BIGINT), as in the Avro records; booleans are BOOLEAN
-- (SQLite stores 0/1); participant lists are JSON arrays in TEXT.

-- Team reference data. ESPN team ids are only unique within a league, so the key is (league, id).
CREATE TABLE teams (
    league          TEXT   NOT NULL CHECK (length(league) > 0),
    id              TEXT   NOT NULL CHECK (length(id) > 0),
    abbreviation    TEXT   NOT NULL CHECK (length(abbreviation) > 0),
    display_name    TEXT   NOT NULL CHECK (length(display_name) > 0),
    color           TEXT   NULL CHECK (color IS NULL OR length(color) = 6),
    alternate_color TEXT   NULL CHECK (alternate_color IS NULL OR length(alternate_color) = 6),
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (league, id)
);

-- One game as the scoreboard describes it.
CREATE TABLE games (
    id            TEXT             NOT NULL PRIMARY KEY CHECK (length(id) > 0),
    league        TEXT             NOT NULL,
    season        INTEGER          NOT NULL CHECK (season >= 1900),
    season_type   INTEGER          NOT NULL CHECK (season_type >= 1),
    game_date     TEXT             NOT NULL CHECK (game_date LIKE '____-__-__'),
    start_time    BIGINT           NOT NULL,
    status        TEXT             NOT NULL CHECK (status IN ('pre', 'in', 'post')),
    status_detail TEXT             NOT NULL,
    period        INTEGER          NOT NULL CHECK (period >= 0),
    clock_display TEXT             NOT NULL,
    clock_seconds DOUBLE PRECISION NOT NULL CHECK (clock_seconds >= 0),
    completed     BOOLEAN          NOT NULL,
    home_team_id  TEXT             NOT NULL,
    away_team_id  TEXT             NOT NULL,
    home_score    INTEGER          NOT NULL CHECK (home_score >= 0),
    away_score    INTEGER          NOT NULL CHECK (away_score >= 0),
    fetched_at    BIGINT           NOT NULL,
    CHECK (home_team_id <> away_team_id),
    FOREIGN KEY (league, home_team_id) REFERENCES teams (league, id),
    FOREIGN KEY (league, away_team_id) REFERENCES teams (league, id)
);
CREATE INDEX games_by_date ON games (game_date, start_time);
CREATE INDEX games_by_status ON games (status, start_time);

-- One enriched play. Key (game_id, play_id); game_order is the play's position in game order (the feed's
-- position), ties broken by sequence. revision counts content changes (1 on insert).
CREATE TABLE plays (
    game_id                TEXT             NOT NULL REFERENCES games (id) ON DELETE CASCADE,
    play_id                TEXT             NOT NULL CHECK (length(play_id) > 0),
    sequence               BIGINT           NOT NULL CHECK (sequence >= 0),
    game_order             BIGINT           NOT NULL CHECK (game_order >= 0),
    league                 TEXT             NOT NULL,
    period                 INTEGER          NOT NULL CHECK (period >= 1),
    clock_display          TEXT             NOT NULL,
    clock_seconds          DOUBLE PRECISION NOT NULL CHECK (clock_seconds >= 0),
    game_seconds_left      DOUBLE PRECISION NOT NULL CHECK (game_seconds_left >= 0),
    period_elapsed_seconds DOUBLE PRECISION NOT NULL CHECK (period_elapsed_seconds >= 0),
    game_elapsed_seconds   DOUBLE PRECISION NOT NULL CHECK (game_elapsed_seconds >= 0),
    overtime               BOOLEAN          NOT NULL,
    event_type             TEXT             NOT NULL CHECK (length(event_type) > 0),
    espn_type_id           TEXT             NOT NULL,
    espn_type_text         TEXT             NOT NULL,
    team_id                TEXT             NULL,
    side                   TEXT             NULL CHECK (side IN ('home', 'away')),
    home_score             INTEGER          NOT NULL CHECK (home_score >= 0),
    away_score             INTEGER          NOT NULL CHECK (away_score >= 0),
    score_differential     INTEGER          NOT NULL,
    score_value            INTEGER          NOT NULL CHECK (score_value BETWEEN 0 AND 3),
    scoring_play           BOOLEAN          NOT NULL,
    shooting_play          BOOLEAN          NOT NULL,
    shot_value             INTEGER          NULL CHECK (shot_value BETWEEN 1 AND 3),
    coord_x                INTEGER          NULL,
    coord_y                INTEGER          NULL,
    wallclock              BIGINT           NULL,
    participants           TEXT             NOT NULL CHECK (participants LIKE '[%]'),
    text                   TEXT             NOT NULL,
    change                 TEXT             NOT NULL CHECK (change IN ('new', 'update')),
    fetched_at             BIGINT           NOT NULL,
    enriched_at            BIGINT           NOT NULL,
    revision               BIGINT           NOT NULL DEFAULT 1 CHECK (revision >= 1),
    PRIMARY KEY (game_id, play_id),
    UNIQUE (game_id, sequence),
    CHECK (side IS NULL OR team_id IS NOT NULL),
    CHECK (score_differential = home_score - away_score),
    CHECK ((coord_x IS NULL) = (coord_y IS NULL))
);
CREATE INDEX plays_in_game_order ON plays (game_id, game_order, sequence);

-- The latest folded state of one game, with the running counters of both teams.
CREATE TABLE game_states (
    game_id        TEXT             NOT NULL PRIMARY KEY REFERENCES games (id) ON DELETE CASCADE,
    league         TEXT             NOT NULL,
    status         TEXT             NOT NULL CHECK (status IN ('pre', 'in', 'post')),
    period         INTEGER          NOT NULL CHECK (period >= 0),
    clock_display  TEXT             NOT NULL,
    clock_seconds  DOUBLE PRECISION NOT NULL CHECK (clock_seconds >= 0),
    home_score     INTEGER          NOT NULL CHECK (home_score >= 0),
    away_score     INTEGER          NOT NULL CHECK (away_score >= 0),
    last_sequence  BIGINT           NOT NULL CHECK (last_sequence >= 0),
    last_play_id   TEXT             NULL,
    last_play_text TEXT             NULL,
    plays_applied  BIGINT           NOT NULL CHECK (plays_applied >= 0),
    updated_at     BIGINT           NOT NULL,
    CHECK ((last_play_id IS NULL) = (last_play_text IS NULL))
);

-- Running counters of one side of one game, part of its game state (written in the same transaction).
CREATE TABLE game_state_teams (
    game_id                  TEXT    NOT NULL REFERENCES game_states (game_id) ON DELETE CASCADE,
    side                     TEXT    NOT NULL CHECK (side IN ('home', 'away')),
    team_id                  TEXT    NULL,
    points                   INTEGER NOT NULL CHECK (points >= 0),
    field_goals_made         INTEGER NOT NULL CHECK (field_goals_made >= 0),
    field_goals_attempted    INTEGER NOT NULL CHECK (field_goals_attempted >= field_goals_made),
    three_pointers_made      INTEGER NOT NULL CHECK (three_pointers_made >= 0),
    three_pointers_attempted INTEGER NOT NULL CHECK (three_pointers_attempted >= three_pointers_made),
    free_throws_made         INTEGER NOT NULL CHECK (free_throws_made >= 0),
    free_throws_attempted    INTEGER NOT NULL CHECK (free_throws_attempted >= free_throws_made),
    offensive_rebounds       INTEGER NOT NULL CHECK (offensive_rebounds >= 0),
    defensive_rebounds       INTEGER NOT NULL CHECK (defensive_rebounds >= 0),
    turnovers                INTEGER NOT NULL CHECK (turnovers >= 0),
    fouls                    INTEGER NOT NULL CHECK (fouls >= 0),
    period_fouls             INTEGER NOT NULL CHECK (period_fouls >= 0 AND period_fouls <= fouls),
    timeouts                 INTEGER NOT NULL CHECK (timeouts >= 0),
    PRIMARY KEY (game_id, side)
);
