//! The type table: ESPN type id → canonical event type, for every type seen in real ESPN data
//! (NBA, WNBA and men's college vocabularies; FIELDS.md §3 and §8).

use super::EventType;
use EventType::*;

/// One row: ESPN type id, ESPN's type text (as observed; for reference and tests), canonical type.
pub type TypeRow = (u32, &'static str, EventType);

/// Known ESPN type ids, sorted by id (binary-searched).
pub const TYPE_TABLE: &[TypeRow] = &[
    (8, "Delay of Game", Violation),
    (9, "Defensive Goaltending", Goaltending),
    (10, "Offensive Goaltending", Goaltending),
    (11, "Lane Violation", Violation),
    (12, "Kicked Ball", Violation),
    (16, "Full Timeout", Timeout),
    (17, "Short Timeout", Timeout),
    (19, "Official Timeout", Timeout),
    (22, "Personal Take Foul", TakeFoul),
    (24, "Offensive Charge", OffensiveFoul),
    (29, "Defensive 3-Seconds Technical", TechnicalFoul),
    (30, "Technical Foul", TechnicalFoul),
    (32, "Flagrant Foul Type 1", FlagrantFoul),
    (33, "Flagrant Foul Type 2", FlagrantFoul),
    (35, "Clear Path Foul", PersonalFoul),
    (36, "Away from Play Foul", PersonalFoul),
    (42, "Offensive Foul", OffensiveFoul),
    (43, "Loose Ball Foul", LooseBallFoul),
    (44, "Shooting Foul", ShootingFoul),
    (45, "Personal Foul", PersonalFoul),
    // Seen only as a live scoreboard's last play, with the text "Paul George foul": a foul was called.
    (46, "No Foul", PersonalFoul),
    (62, "Bad Pass\nTurnover", BadPassTurnover),
    (63, "Lost Ball Turnover", LostBallTurnover),
    (64, "Traveling", Traveling),
    (65, "Double Dribble Turnover", DribbleTurnover),
    (66, "Discontinued Dribble Turnover", DribbleTurnover),
    (67, "3-Second Turnover", SecondsViolationTurnover),
    (68, "5-Second Turnover", SecondsViolationTurnover),
    (69, "8-Second Turnover", SecondsViolationTurnover),
    (70, "Shot Clock Turnover", ShotClockTurnover),
    (71, "Inbound Turnover", Turnover),
    (72, "Back Court Turnover", BackcourtTurnover),
    (73, "Offensive Goaltending Turnover", Turnover),
    (74, "Lane Violation Turnover", Turnover),
    (78, "Palming Turnover", DribbleTurnover),
    (84, "Offensive Foul Turnover", OffensiveFoulTurnover),
    (86, "Out of Bounds - Step Turnover", OutOfBoundsTurnover),
    (87, "Out of Bounds - Lost Ball Turnover", OutOfBoundsTurnover),
    (90, "Out of Bounds - Bad Pass Turnover", OutOfBoundsTurnover),
    (92, "Jump Shot", JumpShot),
    (93, "Hook Shot", HookShot),
    (94, "Tip Shot", TipShot),
    (95, "Layup Shot", Layup),
    (96, "Dunk Shot", Dunk),
    (97, "Free Throw - 1 of 1", FreeThrow),
    (98, "Free Throw - 1 of 2", FreeThrow),
    (99, "Free Throw - 2 of 2", FreeThrow),
    (100, "Free Throw - 1 of 3", FreeThrow),
    (101, "Free Throw - 2 of 3", FreeThrow),
    (102, "Free Throw - 3 of 3", FreeThrow),
    (103, "Free Throw - Technical", FreeThrow),
    (104, "Free Throw - Flagrant 1 of 2", FreeThrow),
    (105, "Free Throw - Flagrant 2 of 2", FreeThrow),
    (106, "Free Throw - Flagrant 1 of 1", FreeThrow),
    (107, "Free Throw - Clear Path 1 of 2", FreeThrow),
    (108, "Free Throw - Clear Path 2 of 2", FreeThrow),
    (109, "Running Layup Shot", Layup),
    (110, "Driving Layup Shot", Layup),
    (111, "Alley Oop Layup Shot", Layup),
    (112, "Reverse Layup Shot", Layup),
    (113, "Running Jump Shot", JumpShot),
    (114, "Turnaround Jump Shot", JumpShot),
    (115, "Driving Dunk Shot", Dunk),
    (116, "Running Dunk Shot", Dunk),
    (117, "Reverse Dunk Shot", Dunk),
    (118, "Alley Oop Dunk Shot", Dunk),
    (119, "Driving Hook Shot", HookShot),
    (120, "Turnaround Hook Shot", HookShot),
    (121, "Fade Away Jump Shot", JumpShot),
    (122, "Jump Shot Bank", JumpShot),
    (123, "Hook Shot Bank", HookShot),
    (124, "Finger Roll Layup", Layup),
    (125, "Layup Shot Putback", Layup),
    (126, "Layup Driving Reverse", Layup),
    (127, "Layup Running Reverse", Layup),
    (128, "Driving Finger Roll Layup", Layup),
    (129, "Running Finger Roll Layup", Layup),
    (130, "Floating Jump Shot", JumpShot),
    (131, "Pullup Jump Shot", JumpShot),
    (132, "Step Back Jump Shot", JumpShot),
    (133, "Pullup Bank Jump Shot", JumpShot),
    (134, "Driving Bank Jump Shot", JumpShot),
    (135, "Turnaround Bank Jump Shot", JumpShot),
    (136, "Fade Away Bank Jump Shot", JumpShot),
    (137, "Turnaround Fade Away Jump Shot", JumpShot),
    (138, "Putback Dunk Shot", Dunk),
    (139, "Hook Driving Bank", HookShot),
    (140, "Hook Turnaround Bank", HookShot),
    (141, "Cutting Layup Shot", Layup),
    (142, "Cutting Finger Roll Layup Shot", Layup),
    (143, "Running Reverse Dunk Shot", Dunk),
    (144, "Driving Floating Jump Shot", JumpShot),
    (145, "Driving Floating Bank Jump Shot", JumpShot),
    (146, "Running Pullup Jump Shot", JumpShot),
    (147, "Step Back Bank Jump Shot", JumpShot),
    (148, "Turnaround Fade Away Bank Jump Shot", JumpShot),
    (149, "Running Alley Oop Dunk Shot", Dunk),
    (150, "Tip Dunk Shot", Dunk),
    (151, "Cutting Dunk Shot", Dunk),
    (152, "Driving Reverse Dunk Shot", Dunk),
    (155, "Defensive Rebound", DefensiveRebound),
    (156, "Offensive Rebound", OffensiveRebound),
    (213, "Challenge", Challenge),
    (214, "Coach's Challenge (Support Ruling)", Challenge),
    (215, "Coach's Challenge (Overturned)", Challenge),
    (216, "Coach's Challenge (Stands)", Challenge),
    (278, "Ref-Initiated Review (Supported)", Review),
    (279, "Ref-Initiated Review (Overturned)", Review),
    (282, "Heave Jump Shot", JumpShot),
    (402, "End Game", EndGame),
    (412, "End Period", EndPeriod),
    (437, "TipShot", TipShot),
    (449, "Dead Ball Rebound", DeadBallRebound),
    (519, "PersonalFoul", PersonalFoul),
    (520, "TechnicalFoul", TechnicalFoul),
    (540, "MadeFreeThrow", FreeThrow),
    (558, "JumpShot", JumpShot),
    (572, "LayUpShot", Layup),
    (574, "DunkShot", Dunk),
    (579, "ShortTimeOut", Timeout),
    (580, "OfficialTVTimeOut", Timeout),
    (584, "Substitution", Substitution),
    (586, "Offensive Rebound", OffensiveRebound),
    (587, "Defensive Rebound", DefensiveRebound),
    (598, "Lost Ball Turnover", LostBallTurnover),
    (607, "Steal", Steal),
    (615, "Jumpball", JumpBall),
    (618, "Block Shot", Block),
];

/// Looks up an ESPN type id (a string of digits).
pub fn lookup(type_id: &str) -> Option<EventType> {
    let id: u32 = type_id.trim().parse().ok()?;
    TYPE_TABLE.binary_search_by_key(&id, |row| row.0).ok().map(|index| TYPE_TABLE[index].2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_without_duplicates() {
        assert!(TYPE_TABLE.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }

    #[test]
    fn lookup_finds_rows_and_rejects_garbage() {
        assert_eq!(lookup("92"), Some(JumpShot));
        assert_eq!(lookup("618"), Some(Block));
        assert_eq!(lookup("9999"), None);
        assert_eq!(lookup("abc"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn the_fallback_agrees_with_every_row() {
        // The table and the text fallback are two independent classifications; they must agree on every text we
        // know, which keeps the fallback honest for texts we have not seen.
        let disagreements: Vec<String> = TYPE_TABLE
            .iter()
            .filter(|(_, text, expected)| super::super::fallback::classify(text) != *expected)
            .map(|(id, text, expected)| {
                format!("{id} `{text}`: table {expected}, fallback {}", super::super::fallback::classify(text))
            })
            .collect();
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }
}
