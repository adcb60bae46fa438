//! Times typed into report and search forms.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A UTC time as forms give it: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` (a
/// `datetime-local` input, read as UTC); with `day`, also `YYYY-MM-DD` (midnight).
pub fn utc_micros(s: &str, day: bool) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .or_else(|| {
            day.then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .flatten()
                .map(|d| d.and_time(Default::default()))
        })
        .map(|t| Utc.from_utc_datetime(&t).timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_times_and_days() {
        let minute = utc_micros("2026-01-02T03:04", false).unwrap();
        assert_eq!(utc_micros("2026-01-02T03:04:00Z", false), Some(minute));
        assert_eq!(utc_micros("2026-01-02T03:04:00", false), Some(minute));
        assert_eq!(utc_micros("2026-01-02", false), None);
        assert_eq!(utc_micros("2026-01-02", true), utc_micros("2026-01-02T00:00", false));
        assert_eq!(utc_micros("yesterday", true), None);
    }
}
