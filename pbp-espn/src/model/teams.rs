//! The site teams list (`/apis/site/v2/sports/basketball/{league}/teams`).

use serde::Deserialize;

use super::game::Team;

/// `{"sports":[{"leagues":[{"teams":[{"team":{…}}]}]}]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TeamsResponse {
    /// One sport (basketball).
    #[serde(default)]
    pub sports: Vec<TeamsSport>,
}

impl TeamsResponse {
    /// Every team of every league in the response.
    pub fn teams(&self) -> impl Iterator<Item = &Team> {
        self.sports
            .iter()
            .flat_map(|sport| sport.leagues.iter())
            .flat_map(|league| league.teams.iter())
            .map(|e| &e.team)
    }
}

/// A sport in the teams list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TeamsSport {
    /// Leagues of the sport.
    #[serde(default)]
    pub leagues: Vec<TeamsLeague>,
}

/// A league in the teams list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TeamsLeague {
    /// League slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// Teams.
    #[serde(default)]
    pub teams: Vec<TeamEntry>,
}

/// `{"team":{…}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TeamEntry {
    /// The team.
    pub team: Team,
}
