//! FHIR `date` and `dateTime` from domain attributes, normalised to FHIR's formats.
//!
//! Accepted domain forms: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `MM-DD-YYYY` (US order) and, for
//! `dateTime` only, RFC 3339 times with a UTC offset from -14:00 to +14:00, as FHIR allows
//! (`2026-03-01T09:30:00Z`, `2026-03-01T09:30:00.250+01:00`) or whole epoch seconds as a DynamoDB number. A time without
//! an offset is rejected: FHIR requires one, and guessing the zone would shift the instant.

use fhir_sdk::{Date, DateTime, Instant, time};

use crate::{AttributeValue, ErrorKind, Image, MappingError};

const DATE_FORMATS: &str = "YYYY-MM-DD, MM-DD-YYYY, YYYY-MM or YYYY";
const DATE_TIME_FORMATS: &str =
    "YYYY-MM-DD, MM-DD-YYYY, YYYY-MM, YYYY, an RFC 3339 time with offset, or epoch seconds (N)";

fn invalid(field: &str, formats: &str) -> MappingError {
    MappingError::new(field, ErrorKind::InvalidDate, format!("not a calendar date in an accepted format ({formats})"))
}

/// Parses `text` as a FHIR `date` (full date, year-month or year); `field` names it in errors.
pub fn parse_date(text: &str, field: &str) -> Result<Date, MappingError> {
    parse_date_parts(text).ok_or_else(|| invalid(field, DATE_FORMATS))
}

/// Like [`parse_date`], but only a full calendar date (`YYYY-MM-DD` or `MM-DD-YYYY`).
pub fn parse_full_date(text: &str, field: &str) -> Result<Date, MappingError> {
    match parse_date_parts(text) {
        Some(date @ Date::Date(_)) => Ok(date),
        _ => Err(MappingError::new(
            field,
            ErrorKind::InvalidDate,
            "not a calendar date in YYYY-MM-DD or MM-DD-YYYY format",
        )),
    }
}

fn parse_date_parts(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u16> {
        let part = bytes.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
    };
    let month_of = |month: u16| u8::try_from(month).ok().and_then(|m| time::Month::try_from(m).ok());
    let (year, month, day) = match bytes {
        [_, _, _, _] => (digits(0..4)?, None, None),
        [_, _, _, _, b'-', _, _] => (digits(0..4)?, Some(digits(5..7)?), None),
        [_, _, _, _, b'-', _, _, b'-', _, _] => (digits(0..4)?, Some(digits(5..7)?), Some(digits(8..10)?)),
        [_, _, b'-', _, _, b'-', _, _, _, _] => (digits(6..10)?, Some(digits(0..2)?), Some(digits(3..5)?)),
        _ => return None,
    };
    // FHIR has no year 0000; partial dates serialize only with four-digit years.
    match (month, day) {
        (Some(month), Some(day)) if year > 0 => {
            let day = u8::try_from(day).ok()?;
            Some(Date::Date(time::Date::from_calendar_date(i32::from(year), month_of(month)?, day).ok()?))
        }
        (Some(month), None) if year >= 1000 => Some(Date::YearMonth(i32::from(year), month_of(month)?)),
        (None, None) if year >= 1000 => Some(Date::Year(i32::from(year))),
        _ => None,
    }
}

/// Parses `text` as a FHIR `dateTime`: a date (see [`parse_date`]) or an RFC 3339 time with offset.
pub fn parse_date_time(text: &str, field: &str) -> Result<DateTime, MappingError> {
    if text.len() <= 10 {
        return parse_date_parts(text).map(DateTime::Date).ok_or_else(|| invalid(field, DATE_TIME_FORMATS));
    }
    let instant = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
        let has_offset = text.ends_with(['Z', 'z']) || text.get(text.len().saturating_sub(6)..).is_some_and(is_offset);
        if has_offset {
            invalid(field, DATE_TIME_FORMATS)
        } else {
            MappingError::new(field, ErrorKind::InvalidDate, "a time needs a UTC offset (Z or ±hh:mm)")
        }
    })?;
    instant_in_range(instant, field)
}

fn is_offset(tail: &str) -> bool {
    let bytes = tail.as_bytes();
    matches!(bytes, [b'+' | b'-', h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()))
}

fn instant_in_range(instant: time::OffsetDateTime, field: &str) -> Result<DateTime, MappingError> {
    // FHIR dateTimes have four-digit years; the serializer rejects others.
    if !(1000..=9999).contains(&instant.year()) {
        return Err(invalid(field, DATE_TIME_FORMATS));
    }
    // FHIR's dateTime allows UTC offsets from -14:00 to +14:00 (RFC 3339 up to ±23:59).
    if instant.offset().whole_minutes().unsigned_abs() > 14 * 60 {
        return Err(MappingError::new(field, ErrorKind::InvalidDate, "a UTC offset is between -14:00 and +14:00"));
    }
    Ok(DateTime::DateTime(Instant(instant)))
}

/// Whole epoch seconds (a DynamoDB number such as a TTL) as a UTC `dateTime`.
pub fn epoch_seconds_date_time(digits: &str, field: &str) -> Result<DateTime, MappingError> {
    let seconds: i64 = digits.trim().parse().map_err(|_| invalid(field, DATE_TIME_FORMATS))?;
    let instant = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| invalid(field, DATE_TIME_FORMATS))?;
    instant_in_range(instant, field)
}

impl Image<'_> {
    /// Reads a FHIR `date` from an `S` attribute (see [`parse_date`]).
    pub fn date(&self, name: &str, path: &str) -> Result<Option<Date>, MappingError> {
        self.string(name, path)?.map(|text| parse_date(text, path)).transpose()
    }

    /// Reads a FHIR `dateTime` from an `S` (date or RFC 3339 time) or `N` (epoch seconds) attribute.
    pub fn date_time(&self, name: &str, path: &str) -> Result<Option<DateTime>, MappingError> {
        match self.get(name) {
            Some(AttributeValue::N(digits)) => epoch_seconds_date_time(digits, path).map(Some),
            _ => self.string(name, path)?.map(|text| parse_date_time(text, path)).transpose(),
        }
    }
}

/// True when `start` is known to be after `end`: the earliest moment `start` can mean is after
/// the latest `end` can mean (`2001-03` is not after `2001`; `2002` is after `2001-12-31`).
/// Instants are compared with dates by their UTC date.
pub fn is_after(start: &DateTime, end: &DateTime) -> bool {
    match (start, end) {
        (DateTime::DateTime(start), DateTime::DateTime(end)) => start.0 > end.0,
        (start, end) => earliest_day(start) > latest_day(end),
    }
}

fn earliest_day(value: &DateTime) -> Option<time::Date> {
    match value {
        DateTime::DateTime(instant) => Some(instant.0.to_offset(time::UtcOffset::UTC).date()),
        DateTime::Date(Date::Date(date)) => Some(*date),
        DateTime::Date(Date::YearMonth(year, month)) => time::Date::from_calendar_date(*year, *month, 1).ok(),
        DateTime::Date(Date::Year(year)) => time::Date::from_calendar_date(*year, time::Month::January, 1).ok(),
    }
}

fn latest_day(value: &DateTime) -> Option<time::Date> {
    match value {
        DateTime::DateTime(_) | DateTime::Date(Date::Date(_)) => earliest_day(value),
        DateTime::Date(Date::YearMonth(year, month)) => {
            time::Date::from_calendar_date(*year, *month, month.length(*year)).ok()
        }
        DateTime::Date(Date::Year(year)) => time::Date::from_calendar_date(*year, time::Month::December, 31).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: &DateTime) -> String {
        serde_json::to_value(value).unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn dates_of_every_precision_and_both_orders() {
        for (text, expected) in [
            ("2026-03-01", "2026-03-01"),
            ("03-01-2026", "2026-03-01"),
            ("2026-03", "2026-03"),
            ("2026", "2026"),
            ("2024-02-29", "2024-02-29"),
        ] {
            assert_eq!(json(&parse_date_time(text, "f").unwrap()), expected, "{text}");
            assert_eq!(serde_json::to_value(parse_date(text, "f").unwrap()).unwrap(), expected);
        }
        for bad in ["2026-13", "0999", "0000-01-01", "2023-02-29", "2026/03/01", "26-03-01", "", "2026-3-1"] {
            let error = parse_date(bad, "onset").unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("onset", ErrorKind::InvalidDate), "{bad}");
        }
        assert!(parse_full_date("2026-03", "birthDate").is_err());
    }

    #[test]
    fn times_need_an_offset_and_keep_it() {
        assert_eq!(json(&parse_date_time("2026-03-01T09:30:00Z", "f").unwrap()), "2026-03-01T09:30:00Z");
        assert_eq!(
            json(&parse_date_time("2026-03-01T09:30:00.25+01:00", "f").unwrap()),
            "2026-03-01T09:30:00.25+01:00"
        );
        let error = parse_date_time("2026-03-01T09:30:00", "effective").unwrap_err();
        assert!(error.message.contains("offset"), "{error}");
        for bad in ["2026-03-01T25:30:00Z", "2026-02-30T09:30:00Z", "2026-03-01 09:30", "2026-03-01T09:30Z"] {
            assert_eq!(parse_date_time(bad, "f").unwrap_err().kind, ErrorKind::InvalidDate, "{bad}");
        }
    }

    #[test]
    fn epoch_seconds_from_numbers() {
        let image = Image::from_json(r#"{"t":{"N":"1772357400"},"s":{"S":"2026"},"b":{"BOOL":true}}"#).unwrap();
        assert_eq!(json(&image.date_time("t", "t").unwrap().unwrap()), "2026-03-01T09:30:00Z");
        assert_eq!(json(&image.date_time("s", "s").unwrap().unwrap()), "2026");
        assert_eq!(image.date_time("b", "b").unwrap_err().kind, ErrorKind::WrongType);
        assert_eq!(image.date_time("zz", "zz").unwrap(), None);
        assert!(epoch_seconds_date_time("1.5", "t").is_err());
        assert!(epoch_seconds_date_time("99999999999999", "t").is_err());
    }

    #[test]
    fn ordering_of_comparable_values() {
        let at = |text| parse_date_time(text, "f").unwrap();
        assert!(!is_after(&at("2026-03-02T00:00:00Z"), &at("2026-03-01T23:00:00-02:00")));
        assert!(is_after(&at("2026-03-02"), &at("2026-03-01")));
        assert!(!is_after(&at("2026-03"), &at("2026-03-01")));
        assert!(!is_after(&at("2026-03"), &at("2026")));
        assert!(is_after(&at("2027"), &at("2026-12-31")));
        assert!(is_after(&at("2026-03-02T00:30:00+00:00"), &at("2026-03-01")));
        assert!(!is_after(&at("2026-03-01"), &at("2026-03-01T00:00:00Z")));
    }

    #[test]
    fn regression_offsets_beyond_fourteen_hours_are_rejected() {
        for valid in ["2026-03-01T09:30:00+14:00", "2026-03-01T09:30:00-12:00", "2026-03-01T09:30:00-14:00"] {
            assert_eq!(json(&parse_date_time(valid, "f").unwrap()), valid);
        }
        for invalid in ["2026-03-01T09:30:00+14:01", "2026-03-01T09:30:00-15:00", "2026-03-01T09:30:00+23:59"] {
            let error = parse_date_time(invalid, "start").unwrap_err();
            assert_eq!((error.field.as_str(), error.kind), ("start", ErrorKind::InvalidDate), "{invalid}");
        }
    }
}
