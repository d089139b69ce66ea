//! Dates and local times for generated records. Everything is relative to a
//! fixed "today" ([`TODAY`]), never the clock, so output does not depend on
//! when it was generated.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};

use super::shared::City;

/// The generated records end on this day.
pub const TODAY: (i32, u32, u32) = (2026, 7, 1);

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(TODAY.0, TODAY.1, TODAY.2).expect("a valid date")
}

/// `date` plus whole years (29 February becomes 28 February).
pub fn add_years(date: NaiveDate, years: i32) -> NaiveDate {
    let y = date.year() + years;
    NaiveDate::from_ymd_opt(y, date.month(), date.day())
        .or_else(|| NaiveDate::from_ymd_opt(y, date.month(), date.day() - 1))
        .expect("a valid date")
}

/// Whole years from `birth` to `on`.
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> u32 {
    on.years_since(birth).unwrap_or(0)
}

/// A FHIR dateTime in the city's local time, with its UTC offset (US
/// daylight saving time where the city keeps it).
pub fn local(city: &City, at: NaiveDateTime) -> String {
    let mut offset = city.offset;
    if city.dst && in_us_dst(at.date()) {
        offset += 1;
    }
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{}{}{:02}:00",
        at.format("%Y-%m-%dT%H:%M:%S"),
        sign,
        offset.abs()
    )
}

/// From the second Sunday of March to the first Sunday of November (by
/// date; the hour of the switch is ignored).
fn in_us_dst(date: NaiveDate) -> bool {
    let start = nth_sunday(date.year(), 3, 2);
    let end = nth_sunday(date.year(), 11, 1);
    date >= start && date < end
}

fn nth_sunday(year: i32, month: u32, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Sun, n).expect("a valid date")
}

pub fn minutes(n: i64) -> Duration {
    Duration::minutes(n)
}

pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::shared::CITIES;

    #[test]
    fn local_times_carry_the_zone_of_the_city_and_season() {
        let boston = &CITIES[0];
        let phoenix = &CITIES[3];
        let winter = NaiveDate::from_ymd_opt(2024, 1, 15)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap();
        let summer = NaiveDate::from_ymd_opt(2024, 7, 15)
            .unwrap()
            .and_hms_opt(9, 30, 0)
            .unwrap();
        assert_eq!(local(boston, winter), "2024-01-15T09:30:00-05:00");
        assert_eq!(local(boston, summer), "2024-07-15T09:30:00-04:00");
        assert_eq!(local(phoenix, summer), "2024-07-15T09:30:00-07:00");
        let value = serde_json::Value::String(local(boston, summer));
        assert!(crate::fhir::primitive::check("instant", &value).is_ok());
    }

    #[test]
    fn leap_days_survive_adding_years() {
        let d = NaiveDate::from_ymd_opt(2000, 2, 29).unwrap();
        assert_eq!(
            add_years(d, 1),
            NaiveDate::from_ymd_opt(2001, 2, 28).unwrap()
        );
        assert_eq!(age_on(d, NaiveDate::from_ymd_opt(2010, 2, 28).unwrap()), 9);
    }
}
