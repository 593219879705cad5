//! Text fallback for ESPN type ids that are not in the table: classify the type text by its words.
//!
//! Careful word matching rather than a regex engine: the text is lower-cased, punctuation becomes spaces and
//! camel case is split (`LayUpShot` → `lay up shot`), then rules are tried from the most specific to the most
//! general. Anything that does not look like a basketball action is `other`.

use super::EventType;

/// Classifies an ESPN type text (e.g. `Driving Reverse Layup`, `Bad Pass\nTurnover`).
pub fn classify(type_text: &str) -> EventType {
    let words = Words::new(type_text);
    let has = |word: &str| words.contains(word);
    let any = |list: &[&str]| list.iter().any(|word| words.contains(word));

    if words.contains_phrase(&["end", "game"]) || words.contains_phrase(&["end", "of", "game"]) {
        return EventType::EndGame;
    }
    if any(&["end", "halftime"]) && any(&["period", "quarter", "half", "halftime", "overtime"]) {
        return EventType::EndPeriod;
    }
    if any(&["start", "beginning"]) && any(&["period", "quarter", "half", "overtime"]) {
        return EventType::StartPeriod;
    }
    if words.contains_phrase(&["free", "throw"]) || any(&["freethrow", "ft"]) {
        return EventType::FreeThrow;
    }
    if has("challenge") {
        return EventType::Challenge;
    }
    if any(&["review", "replay"]) {
        return EventType::Review;
    }
    if has("timeout") || words.contains_phrase(&["time", "out"]) {
        return EventType::Timeout;
    }
    if any(&["substitution", "sub", "subbing"]) {
        return EventType::Substitution;
    }
    if has("jumpball") || words.contains_phrase(&["jump", "ball"]) {
        return EventType::JumpBall;
    }
    if has("ejection") || has("ejected") {
        return EventType::Ejection;
    }
    if has("turnover") || has("traveling") || has("travel") {
        return classify_turnover(&words);
    }
    if has("goaltending") {
        return EventType::Goaltending;
    }
    if has("flagrant") {
        return EventType::FlagrantFoul;
    }
    if has("technical") {
        return EventType::TechnicalFoul;
    }
    if has("foul") || has("charge") {
        return classify_foul(&words);
    }
    if has("rebound") {
        return if has("offensive") {
            EventType::OffensiveRebound
        } else if has("defensive") {
            EventType::DefensiveRebound
        } else {
            EventType::DeadBallRebound
        };
    }
    if has("block") {
        return EventType::Block;
    }
    if has("steal") {
        return EventType::Steal;
    }
    if has("dunk") {
        return EventType::Dunk;
    }
    if has("layup") || words.contains_phrase(&["lay", "up"]) || words.contains_phrase(&["finger", "roll"]) {
        return EventType::Layup;
    }
    if has("hook") {
        return EventType::HookShot;
    }
    if has("tip") {
        return EventType::TipShot;
    }
    if any(&["jumper", "jumpshot", "shot", "fadeaway", "floater"]) || words.contains_phrase(&["jump", "shot"]) {
        return EventType::JumpShot;
    }
    if any(&["violation", "kicked", "delay"]) {
        return EventType::Violation;
    }
    EventType::Other
}

fn classify_turnover(words: &Words) -> EventType {
    let has = |word: &str| words.contains(word);
    if words.contains_phrase(&["out", "of", "bounds"]) {
        EventType::OutOfBoundsTurnover
    } else if words.contains_phrase(&["bad", "pass"]) {
        EventType::BadPassTurnover
    } else if words.contains_phrase(&["lost", "ball"]) {
        EventType::LostBallTurnover
    } else if words.contains_phrase(&["offensive", "foul"]) || has("charge") {
        EventType::OffensiveFoulTurnover
    } else if words.contains_phrase(&["shot", "clock"]) {
        EventType::ShotClockTurnover
    } else if words.contains_phrase(&["back", "court"]) || has("backcourt") {
        EventType::BackcourtTurnover
    } else if has("dribble") || has("palming") {
        EventType::DribbleTurnover
    } else if has("second") || has("seconds") {
        EventType::SecondsViolationTurnover
    } else if has("traveling") || has("travel") {
        EventType::Traveling
    } else {
        EventType::Turnover
    }
}

fn classify_foul(words: &Words) -> EventType {
    let has = |word: &str| words.contains(word);
    if has("shooting") {
        EventType::ShootingFoul
    } else if has("offensive") || has("charge") {
        EventType::OffensiveFoul
    } else if words.contains_phrase(&["loose", "ball"]) {
        EventType::LooseBallFoul
    } else if has("take") {
        EventType::TakeFoul
    } else {
        EventType::PersonalFoul
    }
}

/// The lower-cased words of a type text.
struct Words {
    words: Vec<String>,
}

impl Words {
    fn new(text: &str) -> Words {
        let chars: Vec<char> = text.chars().collect();
        let mut words = Vec::new();
        let mut current = String::new();
        for (index, &c) in chars.iter().enumerate() {
            if !c.is_alphanumeric() {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                continue;
            }
            // A camel-case boundary: `lay|Up`, or the end of an acronym: `TV|Time`.
            if c.is_uppercase() && !current.is_empty() && index > 0 {
                let previous = chars[index - 1];
                let next_is_lower = chars.get(index + 1).is_some_and(|n| n.is_lowercase());
                if previous.is_lowercase() || previous.is_ascii_digit() || (previous.is_uppercase() && next_is_lower) {
                    words.push(std::mem::take(&mut current));
                }
            }
            current.extend(c.to_lowercase());
        }
        if !current.is_empty() {
            words.push(current);
        }
        // Names ESPN writes both joined and apart, folded to the joined form.
        let mut folded: Vec<String> = Vec::with_capacity(words.len());
        for word in words {
            match (folded.last().map(String::as_str), word.as_str()) {
                (Some("time"), "out" | "outs") => {
                    folded.pop();
                    folded.push("timeout".to_owned());
                }
                _ => folded.push(word),
            }
        }
        Words { words: folded }
    }

    fn contains(&self, word: &str) -> bool {
        self.words.iter().any(|w| w == word)
    }

    fn contains_phrase(&self, phrase: &[&str]) -> bool {
        !phrase.is_empty()
            && self.words.windows(phrase.len()).any(|window| window.iter().zip(phrase).all(|(a, b)| a == b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_basketball_texts_are_classified() {
        let cases = [
            ("Driving Reverse Layup Shot", EventType::Layup),
            ("Step Back Bank Hook Shot", EventType::HookShot),
            ("Cutting Tip Shot", EventType::TipShot),
            ("Running Tip Dunk", EventType::Dunk),
            ("Technical Free Throw", EventType::FreeThrow),
            ("Hanging Technical", EventType::TechnicalFoul),
            ("Away From Play Foul", EventType::PersonalFoul),
            ("Flagrant Foul Type 2", EventType::FlagrantFoul),
            ("Offensive Goaltending", EventType::Goaltending),
            ("8-Second Turnover", EventType::SecondsViolationTurnover),
            ("Discontinued Dribble Turnover", EventType::DribbleTurnover),
            ("Lane Violation", EventType::Violation),
            ("TV Timeout", EventType::Timeout),
            ("Ejection", EventType::Ejection),
            ("End of 2nd Quarter", EventType::EndPeriod),
            ("Start Period", EventType::StartPeriod),
            ("Team Rebound", EventType::DeadBallRebound),
            ("Coach's Challenge (Support Ruling)", EventType::Challenge),
            ("Instant Replay", EventType::Review),
            ("BlockShot", EventType::Block),
            ("MissedFreeThrow", EventType::FreeThrow),
        ];
        for (text, expected) in cases {
            assert_eq!(classify(text), expected, "{text}");
        }
    }

    #[test]
    fn non_basketball_texts_are_other() {
        for text in ["", "   ", "\n", "Anthem", "Player Introduction", "Kickoff", "Broadcast Note"] {
            assert_eq!(classify(text), EventType::Other, "{text:?}");
        }
    }

    #[test]
    fn camel_case_and_acronyms_are_split() {
        assert_eq!(Words::new("OfficialTVTimeOut").words, ["official", "tv", "timeout"]);
        assert_eq!(Words::new("Bad Pass\nTurnover").words, ["bad", "pass", "turnover"]);
        assert_eq!(Words::new("LayUpShot").words, ["lay", "up", "shot"]);
    }
}
