//! Just enough calendar arithmetic for the fake server: ESPN's UTC timestamps to seconds, and US dates.

/// Seconds since the Unix epoch of `YYYY-MM-DDTHH:MM[:SS][.fff]Z` (ESPN writes both minute and second precision).
pub(crate) fn parse_utc_seconds(text: &str) -> Option<i64> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    let mut time_parts = time.splitn(3, ':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: i64 = match time_parts.next() {
        Some(seconds) => seconds.split('.').next()?.parse().ok()?,
        None => 0,
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if hour < 0 || minute < 0 || second < 0 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The `YYYYMMDD` scoreboard date of a tip-off: ESPN's scoreboards are US days, so shift UTC back 5 hours
/// (a 00:30Z tip-off belongs to the previous US evening).
pub(crate) fn us_date_key(utc: &str) -> Option<String> {
    let seconds = parse_utc_seconds(utc)? - 5 * 3600;
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    Some(format!("{year:04}{month:02}{day:02}"))
}

// Howard Hinnant's days-from-civil and its inverse (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_utc_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc_seconds("2024-03-17T22:10:44Z"), Some(1_710_713_444));
        assert_eq!(parse_utc_seconds("2023-11-09T01:11Z"), Some(1_699_492_260));
        assert_eq!(parse_utc_seconds("2024-03-17 22:10:44"), None);
        assert_eq!(parse_utc_seconds("2024-13-17T22:10:44Z"), None);
        assert_eq!(parse_utc_seconds("T:Z"), None);
    }

    #[test]
    fn us_dates() {
        assert_eq!(us_date_key("2025-11-16T00:00Z").as_deref(), Some("20251115"));
        assert_eq!(us_date_key("2024-12-01T20:30Z").as_deref(), Some("20241201"));
        assert_eq!(us_date_key("2024-03-01T02:00Z").as_deref(), Some("20240229"));
    }
}
