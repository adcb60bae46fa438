//! The platform's one notion of "now": microseconds since the Unix epoch, as every
//! timestamp is stored.

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
