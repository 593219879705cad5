DROP TABLE game_state_teams;
DROP TABLE game_states;
DROP TABLE plays;
DROP TABLE games;
DROP TABLE teams;
