//! The leagues that share ESPN's basketball URL shape, and their default game formats.

use std::fmt;
use std::str::FromStr;

/// A basketball league served by ESPN under `/sports/basketball/{slug}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum League {
    /// National Basketball Association (`nba`).
    Nba,
    /// Women's National Basketball Association (`wnba`).
    Wnba,
    /// NCAA men's basketball (`mens-college-basketball`).
    MensCollege,
    /// NCAA women's basketball (`womens-college-basketball`).
    WomensCollege,
}

/// Period structure of a game: how many regulation periods and how long each period lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GameFormat {
    /// Number of regulation periods (4 quarters or 2 halves).
    pub regulation_periods: u32,
    /// Length of a regulation period in seconds.
    pub period_seconds: f64,
    /// Length of an overtime period in seconds.
    pub overtime_seconds: f64,
}

impl League {
    /// Every supported league.
    pub const ALL: [League; 4] = [League::Nba, League::Wnba, League::MensCollege, League::WomensCollege];

    /// The path segment ESPN uses for this league.
    pub fn slug(self) -> &'static str {
        match self {
            League::Nba => "nba",
            League::Wnba => "wnba",
            League::MensCollege => "mens-college-basketball",
            League::WomensCollege => "womens-college-basketball",
        }
    }

    /// Parses ESPN's league slug.
    pub fn from_slug(slug: &str) -> Option<League> {
        League::ALL.into_iter().find(|league| league.slug() == slug)
    }

    /// The league's format, used when a payload carries no `format` section (the cdn play-by-play, for one).
    ///
    /// NBA 4 × 12 min, WNBA 4 × 10 min, men's college 2 × 20 min, women's college 4 × 10 min; overtime 5 min.
    pub fn default_format(self) -> GameFormat {
        let (regulation_periods, period_seconds) = match self {
            League::Nba => (4, 720.0),
            League::Wnba | League::WomensCollege => (4, 600.0),
            League::MensCollege => (2, 1200.0),
        };
        GameFormat { regulation_periods, period_seconds, overtime_seconds: 300.0 }
    }
}

impl fmt::Display for League {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// Error for a league slug that is not one of [`League::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown league `{0}` (expected nba, wnba, mens-college-basketball or womens-college-basketball)")]
pub struct UnknownLeague(pub String);

impl FromStr for League {
    type Err = UnknownLeague;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        League::from_slug(s).ok_or_else(|| UnknownLeague(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip() {
        for league in League::ALL {
            assert_eq!(league.slug().parse::<League>(), Ok(league));
        }
        assert!("nhl".parse::<League>().is_err());
    }

    #[test]
    fn college_men_play_halves() {
        let format = League::MensCollege.default_format();
        assert_eq!(format.regulation_periods, 2);
        assert_eq!(format.period_seconds, 1200.0);
    }
}
