//! The canonical event vocabulary.

use std::fmt;

use serde::Serialize;

/// A canonical, league-independent event type (serialized in snake_case).
///
/// Made or missed is not part of the type (see [`super::NormalizedPlay::scoring_play`]); neither is the shot value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Jump shots of every kind: pull-up, step-back, fade-away, floater, bank, heave.
    JumpShot,
    /// Layups, finger rolls, reverses, putback layups.
    Layup,
    /// Dunks of every kind, including alley-oop and putback dunks.
    Dunk,
    /// Hook shots.
    HookShot,
    /// Tip shots.
    TipShot,
    /// Free throws, including technical and flagrant free throws.
    FreeThrow,
    /// Offensive rebound.
    OffensiveRebound,
    /// Defensive rebound.
    DefensiveRebound,
    /// Dead-ball rebound (college) or a rebound of unknown kind.
    DeadBallRebound,
    /// Bad-pass turnover.
    BadPassTurnover,
    /// Lost-ball turnover.
    LostBallTurnover,
    /// Travelling.
    Traveling,
    /// Turnover on an offensive foul.
    OffensiveFoulTurnover,
    /// Shot-clock violation.
    ShotClockTurnover,
    /// Out-of-bounds turnovers (step, lost ball, bad pass).
    OutOfBoundsTurnover,
    /// Back-court violation.
    BackcourtTurnover,
    /// Double dribble, discontinued dribble, palming.
    DribbleTurnover,
    /// 3-, 5-, 8-second violations.
    SecondsViolationTurnover,
    /// Any other turnover.
    Turnover,
    /// Steal (college data only; NBA steals live inside the turnover play).
    Steal,
    /// Block (college data only; NBA blocks live inside the missed shot).
    Block,
    /// Personal foul.
    PersonalFoul,
    /// Shooting foul.
    ShootingFoul,
    /// Offensive foul or charge.
    OffensiveFoul,
    /// Loose-ball foul.
    LooseBallFoul,
    /// Take foul.
    TakeFoul,
    /// Technical foul (including defensive three seconds).
    TechnicalFoul,
    /// Flagrant foul.
    FlagrantFoul,
    /// Any timeout: full, short, official, TV.
    Timeout,
    /// Substitution.
    Substitution,
    /// Jump ball.
    JumpBall,
    /// Non-turnover violation: kicked ball, delay of game, lane violation.
    Violation,
    /// Goaltending (defensive or offensive).
    Goaltending,
    /// Coach's challenge.
    Challenge,
    /// Referee-initiated replay review.
    Review,
    /// Ejection.
    Ejection,
    /// Start of a period.
    StartPeriod,
    /// End of a period.
    EndPeriod,
    /// End of the game.
    EndGame,
    /// Not a basketball action.
    Other,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 40] = [
        EventType::JumpShot,
        EventType::Layup,
        EventType::Dunk,
        EventType::HookShot,
        EventType::TipShot,
        EventType::FreeThrow,
        EventType::OffensiveRebound,
        EventType::DefensiveRebound,
        EventType::DeadBallRebound,
        EventType::BadPassTurnover,
        EventType::LostBallTurnover,
        EventType::Traveling,
        EventType::OffensiveFoulTurnover,
        EventType::ShotClockTurnover,
        EventType::OutOfBoundsTurnover,
        EventType::BackcourtTurnover,
        EventType::DribbleTurnover,
        EventType::SecondsViolationTurnover,
        EventType::Turnover,
        EventType::Steal,
        EventType::Block,
        EventType::PersonalFoul,
        EventType::ShootingFoul,
        EventType::OffensiveFoul,
        EventType::LooseBallFoul,
        EventType::TakeFoul,
        EventType::TechnicalFoul,
        EventType::FlagrantFoul,
        EventType::Timeout,
        EventType::Substitution,
        EventType::JumpBall,
        EventType::Violation,
        EventType::Goaltending,
        EventType::Challenge,
        EventType::Review,
        EventType::Ejection,
        EventType::StartPeriod,
        EventType::EndPeriod,
        EventType::EndGame,
        EventType::Other,
    ];

    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JumpShot => "jump_shot",
            EventType::Layup => "layup",
            EventType::Dunk => "dunk",
            EventType::HookShot => "hook_shot",
            EventType::TipShot => "tip_shot",
            EventType::FreeThrow => "free_throw",
            EventType::OffensiveRebound => "offensive_rebound",
            EventType::DefensiveRebound => "defensive_rebound",
            EventType::DeadBallRebound => "dead_ball_rebound",
            EventType::BadPassTurnover => "bad_pass_turnover",
            EventType::LostBallTurnover => "lost_ball_turnover",
            EventType::Traveling => "traveling",
            EventType::OffensiveFoulTurnover => "offensive_foul_turnover",
            EventType::ShotClockTurnover => "shot_clock_turnover",
            EventType::OutOfBoundsTurnover => "out_of_bounds_turnover",
            EventType::BackcourtTurnover => "backcourt_turnover",
            EventType::DribbleTurnover => "dribble_turnover",
            EventType::SecondsViolationTurnover => "seconds_violation_turnover",
            EventType::Turnover => "turnover",
            EventType::Steal => "steal",
            EventType::Block => "block",
            EventType::PersonalFoul => "personal_foul",
            EventType::ShootingFoul => "shooting_foul",
            EventType::OffensiveFoul => "offensive_foul",
            EventType::LooseBallFoul => "loose_ball_foul",
            EventType::TakeFoul => "take_foul",
            EventType::TechnicalFoul => "technical_foul",
            EventType::FlagrantFoul => "flagrant_foul",
            EventType::Timeout => "timeout",
            EventType::Substitution => "substitution",
            EventType::JumpBall => "jump_ball",
            EventType::Violation => "violation",
            EventType::Goaltending => "goaltending",
            EventType::Challenge => "challenge",
            EventType::Review => "review",
            EventType::Ejection => "ejection",
            EventType::StartPeriod => "start_period",
            EventType::EndPeriod => "end_period",
            EventType::EndGame => "end_game",
            EventType::Other => "other",
        }
    }

    /// True for field-goal attempts (not free throws).
    pub fn is_field_goal(self) -> bool {
        matches!(
            self,
            EventType::JumpShot | EventType::Layup | EventType::Dunk | EventType::HookShot | EventType::TipShot
        )
    }
}

/// A name that is not one of [`EventType::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl std::str::FromStr for EventType {
    type Err = UnknownEventType;

    /// The event type named `name` (as [`EventType::as_str`] writes it).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        EventType::ALL.into_iter().find(|e| e.as_str() == name).ok_or_else(|| UnknownEventType(name.to_owned()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for event in EventType::ALL {
            assert_eq!(event.as_str().parse::<EventType>(), Ok(event));
        }
        let names: std::collections::HashSet<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), EventType::ALL.len(), "distinct names");
        assert!("slam".parse::<EventType>().is_err());
    }

    #[test]
    fn as_str_matches_serde() {
        for event in [EventType::JumpShot, EventType::SecondsViolationTurnover, EventType::EndGame, EventType::Other] {
            assert_eq!(serde_json::to_value(event).ok(), Some(serde_json::Value::from(event.as_str())));
        }
    }
}
