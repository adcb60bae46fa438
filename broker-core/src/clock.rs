//! The platform's one notion of "now": microseconds since the Unix epoch, as every
//! timestamp is stored.

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A stored time as RFC 3339 UTC with microseconds (empty if out of range).
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}
