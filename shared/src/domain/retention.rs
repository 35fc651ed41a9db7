//! How long stored calls (message and outcome) are kept: a per-tenant number of
//! days, applied through DynamoDB TTL (`ttl`, epoch seconds) on each outcome written.

use chrono::{DateTime, Duration, Utc};

/// Unless the tenant says otherwise.
pub const DEFAULT_RETENTION_DAYS: u16 = 400;
/// Bounds an admin may set: a month (calls must outlive re-matching and replays)
/// to ten years.
pub const MIN_RETENTION_DAYS: u16 = 30;
pub const MAX_RETENTION_DAYS: u16 = 3650;

pub fn valid_days(days: u16) -> bool {
    (MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&days)
}

/// When a call that started at `started_at` expires.
pub fn expires_at(started_at: DateTime<Utc>, days: u16) -> DateTime<Utc> {
    started_at + Duration::days(i64::from(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_expiry() {
        assert!(valid_days(DEFAULT_RETENTION_DAYS));
        assert!(!valid_days(MIN_RETENTION_DAYS - 1));
        assert!(!valid_days(MAX_RETENTION_DAYS + 1));
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(expires_at(t, 31).to_rfc3339(), "2026-02-01T00:00:00+00:00");
    }
}
