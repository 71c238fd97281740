//! Instants as the signals carry them: a tiny RFC 3339 reader (no date crate needed) and an
//! epoch-milliseconds value that prints back as RFC 3339 in UTC.

use std::fmt;

/// An instant, to the millisecond, as milliseconds since 1970-01-01T00:00:00Z.
///
/// Read from RFC 3339 text (`2022-11-29T18:07:16Z`, `2020-05-29T11:44:13.1882432-05:00`):
/// digits past the millisecond are dropped (truncated, not rounded). Printed as
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, which FHIR's `instant` and `_lastUpdated` accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    epoch_millis: i64,
}

impl Timestamp {
    /// The instant `epoch_millis` milliseconds after 1970-01-01T00:00:00Z (negative: before).
    pub const fn from_epoch_millis(epoch_millis: i64) -> Self {
        Self { epoch_millis }
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn epoch_millis(self) -> i64 {
        self.epoch_millis
    }

    /// Reads an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t` and `z` may
    /// be lower case. The date must exist (leap years checked); a leap second (`:60`) is read as
    /// the first second of the next minute. `None` for anything else, including a time without
    /// an offset.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() < 20 {
            return None;
        }
        let year = digits(bytes, 0, 4)?;
        let month = digits(bytes, 5, 2)?;
        let day = digits(bytes, 8, 2)?;
        let hour = digits(bytes, 11, 2)?;
        let minute = digits(bytes, 14, 2)?;
        let second = digits(bytes, 17, 2)?;
        if bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't') {
            return None;
        }
        if bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut position = 19;
        let mut millis = 0;
        if bytes.get(position) == Some(&b'.') {
            position += 1;
            let start = position;
            while bytes.get(position).is_some_and(u8::is_ascii_digit) {
                if position - start < 3 {
                    millis = millis * 10 + i64::from(bytes[position] - b'0');
                }
                position += 1;
            }
            let fraction_digits = position - start;
            if fraction_digits == 0 {
                return None;
            }
            for _ in fraction_digits..3 {
                millis *= 10;
            }
        }
        let offset_minutes = match bytes.get(position..)? {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
                let offset_hours = digits(rest, 0, 2)?;
                let offset_minutes = digits(rest, 3, 2)?;
                if offset_hours > 23 || offset_minutes > 59 {
                    return None;
                }
                let total = offset_hours * 60 + offset_minutes;
                if *sign == b'-' { -total } else { total }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
        Some(Self { epoch_millis: seconds * 1_000 + millis })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.epoch_millis.div_euclid(86_400_000);
        let millis_of_day = self.epoch_millis.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let seconds_of_day = millis_of_day / 1_000;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            seconds_of_day / 3_600,
            seconds_of_day / 60 % 60,
            seconds_of_day % 60,
            millis_of_day % 1_000
        )
    }
}

/// The number written with `count` ASCII digits at `start`, or `None`.
fn digits(bytes: &[u8], start: usize, count: usize) -> Option<i64> {
    let slice = bytes.get(start..start + count)?;
    slice.iter().try_fold(0_i64, |value, byte| byte.is_ascii_digit().then(|| value * 10 + i64::from(byte - b'0')))
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> Option<i64> {
        Timestamp::parse_rfc3339(text).map(Timestamp::epoch_millis)
    }

    #[test]
    fn reads_whole_seconds_in_utc() {
        assert_eq!(millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(millis("2022-11-29T18:07:16Z"), Some(1_669_745_236_000));
    }

    #[test]
    fn reads_fractions_and_offsets() {
        assert_eq!(millis("2022-11-29T18:07:16.5Z"), Some(1_669_745_236_500));
        assert_eq!(millis("2022-11-29T18:07:16.123456789Z"), Some(1_669_745_236_123));
        assert_eq!(millis("2020-05-29T11:44:13.1882432-05:00"), millis("2020-05-29T16:44:13.188Z"));
        assert_eq!(millis("2020-05-30T01:14:13+09:30"), millis("2020-05-29T15:44:13Z"));
        assert_eq!(millis("2022-11-29t18:07:16z"), Some(1_669_745_236_000));
    }

    #[test]
    fn checks_the_calendar() {
        assert!(millis("2024-02-29T00:00:00Z").is_some());
        assert_eq!(millis("2023-02-29T00:00:00Z"), None);
        assert_eq!(millis("1900-02-29T00:00:00Z"), None);
        assert!(millis("2000-02-29T00:00:00Z").is_some());
        assert_eq!(millis("2022-04-31T00:00:00Z"), None);
        assert_eq!(millis("2022-13-01T00:00:00Z"), None);
        assert_eq!(millis("2022-00-01T00:00:00Z"), None);
        assert_eq!(millis("2022-01-01T24:00:00Z"), None);
        assert_eq!(millis("2016-12-31T23:59:60Z"), millis("2017-01-01T00:00:00Z"));
    }

    #[test]
    fn refuses_other_forms() {
        for text in [
            "",
            "2022-11-29",
            "2022-11-29T18:07:16",
            "2022-11-29 18:07:16Z",
            "2022-11-29T18:07:16.Z",
            "2022-11-29T18:07:16+0500",
            "2022-11-29T18:07:16+05:00 ",
            "2022-11-29T18:07:16+24:00",
            "+2022-11-29T18:07:16Z",
            "2022-1１-29T18:07:16Z",
            "1669745236",
        ] {
            assert_eq!(millis(text), None, "{text:?}");
        }
    }

    #[test]
    fn prints_rfc3339_utc_with_milliseconds() {
        for (text, printed) in [
            ("2022-11-29T18:07:16Z", "2022-11-29T18:07:16.000Z"),
            ("2020-05-29T11:44:13.1882432-05:00", "2020-05-29T16:44:13.188Z"),
            ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
            ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00.000Z"),
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text).unwrap().to_string(), printed);
        }
    }

    #[test]
    fn round_trips_every_day_across_leap_cycles() {
        for days in -800_000..800_000_i64 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
