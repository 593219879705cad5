-- Change numbers and tombstones (docs/store.md, docs/serving.md). Portable SQL, like the first migration.
--
-- Every write that changes a game's plays (an insert, a correction, a deletion) gives each changed play the
-- next number of the game's counter, games.last_change, under a lock on the game's row: numbers commit in
-- order, so "every play whose last_change is above N" is a complete change feed, and "every play whose
-- last_change is at most N" a snapshot as of N that later writes only shrink.
--
-- A deleted play stays as a tombstone (deleted, with the change number of its deletion) so that the change feed
-- reports it; reads of plays skip tombstones. The sequence stays unique among the plays that are not deleted
-- only (a partial index): a tombstone must not refuse a later play that reuses its sequence. SQLite cannot
-- drop or change a table's constraints, so the plays table is rebuilt.

ALTER TABLE games ADD COLUMN last_change BIGINT NOT NULL DEFAULT 0 CHECK (last_change >= 0);

CREATE TABLE plays_next (
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
    change                 TEXT             NOT NULL CHECK (change IN ('new', 'update', 'delete')),
    fetched_at             BIGINT           NOT NULL,
    enriched_at            BIGINT           NOT NULL,
    revision               BIGINT           NOT NULL DEFAULT 1 CHECK (revision >= 1),
    deleted                BOOLEAN          NOT NULL DEFAULT FALSE,
    last_change            BIGINT           NOT NULL CHECK (last_change >= 1),
    PRIMARY KEY (game_id, play_id),
    CHECK (side IS NULL OR team_id IS NOT NULL),
    CHECK (score_differential = home_score - away_score),
    CHECK ((coord_x IS NULL) = (coord_y IS NULL)),
    CHECK ((change = 'delete') = deleted)
);

-- The plays already stored get their game's first change numbers, in game order.
INSERT INTO plays_next (
    game_id, play_id, sequence, game_order, league, period, clock_display, clock_seconds, game_seconds_left,
    period_elapsed_seconds, game_elapsed_seconds, overtime, event_type, espn_type_id, espn_type_text, team_id, side,
    home_score, away_score, score_differential, score_value, scoring_play, shooting_play, shot_value, coord_x,
    coord_y, wallclock, participants, text, change, fetched_at, enriched_at, revision, deleted, last_change
)
SELECT
    game_id, play_id, sequence, game_order, league, period, clock_display, clock_seconds, game_seconds_left,
    period_elapsed_seconds, game_elapsed_seconds, overtime, event_type, espn_type_id, espn_type_text, team_id, side,
    home_score, away_score, score_differential, score_value, scoring_play, shooting_play, shot_value, coord_x,
    coord_y, wallclock, participants, text, change, fetched_at, enriched_at, revision, FALSE,
    ROW_NUMBER() OVER (PARTITION BY game_id ORDER BY game_order, sequence)
FROM plays;

DROP TABLE plays;
ALTER TABLE plays_next RENAME TO plays;

CREATE INDEX plays_in_game_order ON plays (game_id, game_order, sequence) WHERE NOT deleted;
CREATE UNIQUE INDEX plays_sequence_per_game ON plays (game_id, sequence) WHERE NOT deleted;
CREATE UNIQUE INDEX plays_by_change ON plays (game_id, last_change);

UPDATE games SET last_change = COALESCE((SELECT MAX(p.last_change) FROM plays p WHERE p.game_id = games.id), 0);
