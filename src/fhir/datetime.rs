//! FHIR date, dateTime, instant and time values: parsing with their precision,
//! and formatting of server timestamps (microseconds since the Unix epoch).

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// Hours, minutes, optional seconds, and fractional-second digits.
pub type Time = (u32, u32, Option<u32>, Option<String>);

/// A parsed date/dateTime/instant with the parts that were given.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub year: i32,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub time: Option<Time>,
    /// Offset from UTC in minutes (`Z` is 0).
    pub offset_minutes: Option<i32>,
}

fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    if s.len() < n || !s.as_bytes()[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

fn parse_time(s: &str) -> Option<(Time, &str)> {
    let (h, rest) = digits(s, 2)?;
    let rest = rest.strip_prefix(':')?;
    let (m, mut rest) = digits(rest, 2)?;
    let mut sec = None;
    let mut frac = None;
    if let Some(r) = rest.strip_prefix(':') {
        let (sv, r) = digits(r, 2)?;
        sec = Some(sv);
        rest = r;
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            frac = Some(r[..n].to_string());
            rest = &r[n..];
        }
    }
    if h > 23 || m > 59 || sec.is_some_and(|s| s > 60) {
        return None;
    }
    Some(((h, m, sec, frac), rest))
}

fn parse_offset(s: &str) -> Option<(i32, &str)> {
    if let Some(rest) = s.strip_prefix('Z') {
        return Some((0, rest));
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, rest) = digits(&s[1..], 2)?;
    let rest = rest.strip_prefix(':')?;
    let (m, rest) = digits(rest, 2)?;
    if h > 14 || m > 59 {
        return None;
    }
    Some((sign * (h as i32 * 60 + m as i32), rest))
}

/// Parses `YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]]`; seconds and zone are
/// optional here so that search values can use this parser too.
pub fn parse(s: &str) -> Option<Parsed> {
    let (year, mut rest) = digits(s, 4)?;
    let mut p = Parsed {
        year: year as i32,
        month: None,
        day: None,
        time: None,
        offset_minutes: None,
    };
    if let Some(r) = rest.strip_prefix('-') {
        let (month, r) = digits(r, 2)?;
        if !(1..=12).contains(&month) {
            return None;
        }
        p.month = Some(month);
        rest = r;
        if let Some(r) = rest.strip_prefix('-') {
            let (day, r) = digits(r, 2)?;
            NaiveDate::from_ymd_opt(p.year, month, day)?;
            p.day = Some(day);
            rest = r;
            if let Some(r) = rest.strip_prefix('T') {
                let (time, r) = parse_time(r)?;
                p.time = Some(time);
                rest = r;
                if !rest.is_empty() {
                    let (offset, r) = parse_offset(rest)?;
                    p.offset_minutes = Some(offset);
                    rest = r;
                }
            }
        }
    }
    rest.is_empty().then_some(p)
}

/// FHIR `date`: YYYY, YYYY-MM or YYYY-MM-DD.
pub fn is_date(s: &str) -> bool {
    parse(s).is_some_and(|p| p.time.is_none() && p.year >= 1)
}

/// FHIR `dateTime`: a date, or a full date with time (seconds required) and zone.
pub fn is_date_time(s: &str) -> bool {
    parse(s).is_some_and(|p| match &p.time {
        None => p.year >= 1,
        Some((_, _, sec, _)) => sec.is_some() && p.offset_minutes.is_some(),
    })
}

/// FHIR `instant`: full date, time with seconds, and zone.
pub fn is_instant(s: &str) -> bool {
    parse(s).is_some_and(|p| {
        p.day.is_some()
            && p.offset_minutes.is_some()
            && p.time.as_ref().is_some_and(|t| t.2.is_some())
    })
}

/// FHIR `time`: hh:mm:ss(.fff).
pub fn is_time(s: &str) -> bool {
    matches!(parse_time(s), Some(((_, _, Some(_), _), "")))
}

/// The first and last microsecond a value covers, given its precision
/// (`2024` covers the whole year). A value without a zone is taken as UTC.
pub fn range_micros(s: &str) -> Option<(i64, i64)> {
    let p = parse(s)?;
    let offset = i64::from(p.offset_minutes.unwrap_or(0)) * 60_000_000;
    let day_start = |y: i32, m: u32, d: u32| -> Option<i64> {
        Some(
            NaiveDate::from_ymd_opt(y, m, d)?
                .and_hms_opt(0, 0, 0)?
                .and_utc()
                .timestamp_micros(),
        )
    };
    let (start, end_exclusive) = match (p.month, p.day, &p.time) {
        (None, _, _) => (day_start(p.year, 1, 1)?, day_start(p.year + 1, 1, 1)?),
        (Some(m), None, _) => {
            let (ny, nm) = if m == 12 {
                (p.year + 1, 1)
            } else {
                (p.year, m + 1)
            };
            (day_start(p.year, m, 1)?, day_start(ny, nm, 1)?)
        }
        (Some(m), Some(d), None) => {
            let s = day_start(p.year, m, d)?;
            (s, s + 86_400_000_000)
        }
        (Some(m), Some(d), Some((h, min, sec, frac))) => {
            let base = day_start(p.year, m, d)?
                + i64::from(*h) * 3_600_000_000
                + i64::from(*min) * 60_000_000
                - offset;
            match (sec, frac) {
                (None, _) => (base, base + 60_000_000),
                (Some(sec), None) => {
                    let s = base + i64::from(*sec) * 1_000_000;
                    (s, s + 1_000_000)
                }
                (Some(sec), Some(frac)) => {
                    let digits = frac.len().min(6);
                    let micros: i64 = frac[..digits].parse().ok()?;
                    let scale = 10i64.pow(6 - digits as u32);
                    let s = base + i64::from(*sec) * 1_000_000 + micros * scale;
                    (s, s + scale)
                }
            }
        }
    };
    Some((start, end_exclusive - 1))
}

/// Formats a server timestamp as a FHIR instant with microseconds, in UTC.
pub fn format_instant(micros: i64) -> String {
    utc(micros).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Formats a server timestamp as an HTTP date (`Last-Modified`).
pub fn format_http_date(micros: i64) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::from(utc(micros)))
}

/// Parses an HTTP date (`If-Modified-Since`) into microseconds.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s).ok()?;
    Some(DateTime::<Utc>::from(t).timestamp_micros())
}

fn utc(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

/// The current time in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Year of a timestamp (used in tests and sanity checks).
pub fn year_of(micros: i64) -> i32 {
    utc(micros).year()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_fhir_formats() {
        assert!(is_date("2020") && is_date("2020-02") && is_date("2020-02-29"));
        assert!(!is_date("2021-02-29") && !is_date("2020-13") && !is_date("hello"));
        assert!(!is_date("2020-1-01") && !is_date("2020-01-01T10:00:00Z"));
        assert!(
            is_date_time("2020-01-01T10:00:00Z") && is_date_time("2020-01-01T10:00:00.123+05:30")
        );
        assert!(!is_date_time("2020-01-01T10:00Z") && !is_date_time("2020-01-01T10:00:00"));
        assert!(is_instant("2020-01-01T10:00:00.5Z") && !is_instant("2020-01-01"));
        assert!(is_time("23:59:59") && !is_time("24:00:00") && !is_time("10:00"));
    }

    #[test]
    fn ranges_follow_precision() {
        let (s, e) = range_micros("2020").unwrap();
        assert_eq!(format_instant(s), "2020-01-01T00:00:00.000000Z");
        assert_eq!(format_instant(e), "2020-12-31T23:59:59.999999Z");
        let (s, e) = range_micros("2020-02").unwrap();
        assert_eq!(format_instant(e + 1), "2020-03-01T00:00:00.000000Z");
        assert_eq!(format_instant(s), "2020-02-01T00:00:00.000000Z");
        let (s, _) = range_micros("2020-01-01T10:00:00+02:00").unwrap();
        assert_eq!(format_instant(s), "2020-01-01T08:00:00.000000Z");
        let (s, e) = range_micros("2020-01-01T10:00:00.25Z").unwrap();
        assert_eq!(e - s + 1, 10_000);
        assert_eq!(year_of(s), 2020);
    }
}
