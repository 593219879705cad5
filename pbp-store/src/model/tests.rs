use super::*;

fn game() -> GameRow {
    GameRow {
        id: "1".to_owned(),
        league: "nba".to_owned(),
        season: 2024,
        season_type: 2,
        game_date: "2024-03-17".to_owned(),
        start_time: 0,
        status: GameStatus::Pre,
        status_detail: String::new(),
        period: 0,
        clock_display: String::new(),
        clock_seconds: 0.0,
        completed: false,
        home_team_id: "1".to_owned(),
        away_team_id: "2".to_owned(),
        home_score: 0,
        away_score: 0,
        fetched_at: 0,
    }
}

#[test]
fn enums_parse_their_stored_spelling_only() {
    for s in [GameStatus::Pre, GameStatus::In, GameStatus::Post] {
        assert_eq!(s.as_str().parse::<GameStatus>(), Ok(s));
    }
    assert_eq!("away".parse::<Side>(), Ok(Side::Away));
    assert_eq!("update".parse::<PlayChange>(), Ok(PlayChange::Update));
    let err = "Final".parse::<GameStatus>().unwrap_err();
    assert_eq!(err.to_string(), "unknown game status \"Final\"");
    assert!("HOME".parse::<Side>().is_err());
}

#[test]
fn game_rules() {
    assert!(game().validate().is_ok());
    for (edit, needle) in [
        ((|g: &mut GameRow| g.game_date = "2024-3-17".to_owned()) as fn(&mut GameRow), "YYYY-MM-DD"),
        (|g| g.away_team_id = "1".to_owned(), "both team"),
        (|g| g.home_score = -1, "home_score"),
        (|g| g.clock_seconds = f64::NAN, "clock_seconds"),
        (|g| g.season = 24, "season"),
    ] {
        let mut g = game();
        edit(&mut g);
        let err = g.validate().unwrap_err().to_string();
        assert!(err.contains(needle) && err.contains("games row 1"), "{err}");
    }
}

#[test]
fn team_colours_are_six_hex_digits() {
    let mut t = TeamRow {
        league: "nba".to_owned(),
        id: "2".to_owned(),
        abbreviation: "BOS".to_owned(),
        display_name: "Boston Celtics".to_owned(),
        color: Some("008348".to_owned()),
        alternate_color: None,
        updated_at: 0,
    };
    assert!(t.validate().is_ok());
    t.alternate_color = Some("#fff".to_owned());
    assert!(t.validate().unwrap_err().to_string().contains("alternate_color"));
}

#[test]
fn outcomes_add_up() {
    let mut a = UpsertOutcome { inserted: 1, updated: 2, unchanged: 3 };
    a.add(UpsertOutcome { inserted: 10, updated: 20, unchanged: 30 });
    assert_eq!(a, UpsertOutcome { inserted: 11, updated: 22, unchanged: 33 });
}
