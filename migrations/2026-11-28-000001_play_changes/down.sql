-- Back to the first schema: tombstones are dropped, change numbers forgotten.
CREATE TABLE plays_previous (
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

INSERT INTO plays_previous (
    game_id, play_id, sequence, game_order, league, period, clock_display, clock_seconds, game_seconds_left,
    period_elapsed_seconds, game_elapsed_seconds, overtime, event_type, espn_type_id, espn_type_text, team_id, side,
    home_score, away_score, score_differential, score_value, scoring_play, shooting_play, shot_value, coord_x,
    coord_y, wallclock, participants, text, change, fetched_at, enriched_at, revision
)
SELECT
    game_id, play_id, sequence, game_order, league, period, clock_display, clock_seconds, game_seconds_left,
    period_elapsed_seconds, game_elapsed_seconds, overtime, event_type, espn_type_id, espn_type_text, team_id, side,
    home_score, away_score, score_differential, score_value, scoring_play, shooting_play, shot_value, coord_x,
    coord_y, wallclock, participants, text, change, fetched_at, enriched_at, revision
FROM plays
WHERE NOT deleted;

DROP TABLE plays;
ALTER TABLE plays_previous RENAME TO plays;
CREATE INDEX plays_in_game_order ON plays (game_id, game_order, sequence);

ALTER TABLE games DROP COLUMN last_change;
