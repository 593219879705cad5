//! Game-clock parsing: ESPN's `displayValue` is `M:SS`/`MM:SS` from one minute up and `S.s` below.

/// Seconds left in the period from a display clock (`11:42` → 702, `53.1` → 53.1, `0:00` → 0).
///
/// Returns `None` for anything that is not a non-negative clock.
pub fn parse_display_clock(display: &str) -> Option<f64> {
    let display = display.trim();
    let seconds = match display.split_once(':') {
        Some((minutes, seconds)) => {
            let minutes: u32 = minutes.parse().ok()?;
            let seconds: f64 = parse_plain_seconds(seconds)?;
            if seconds >= 60.0 {
                return None;
            }
            f64::from(minutes) * 60.0 + seconds
        }
        None => parse_plain_seconds(display)?,
    };
    Some(seconds)
}

/// A plain non-negative decimal (no sign, exponent, `inf` or `NaN`, which `f64::from_str` would accept).
fn parse_plain_seconds(text: &str) -> Option<f64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats() {
        assert_eq!(parse_display_clock("12:00"), Some(720.0));
        assert_eq!(parse_display_clock("11:42"), Some(702.0));
        assert_eq!(parse_display_clock("1:05"), Some(65.0));
        assert_eq!(parse_display_clock("53.1"), Some(53.1));
        assert_eq!(parse_display_clock("0.0"), Some(0.0));
        assert_eq!(parse_display_clock("0:00"), Some(0.0));
        assert_eq!(parse_display_clock("20:00"), Some(1200.0));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["", ":", "1:", ":30", "-1.0", "1:75", "NaN", "inf", "1e3", "a:bc", "1:2:3"] {
            assert_eq!(parse_display_clock(bad), None, "{bad}");
        }
    }
}
