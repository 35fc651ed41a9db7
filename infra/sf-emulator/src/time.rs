//! Date and time: Salesforce wire formats and the emulator's controllable clock.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Salesforce response format: `2011-07-07T00:37:00.000+0000`.
pub fn fmt_datetime(ms: Millis) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string(),
        None => String::from("1970-01-01T00:00:00.000+0000"),
    }
}

/// `2010-01-01`.
pub fn fmt_date(days: i32) -> String {
    match NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_FROM_CE) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => String::from("1970-01-01"),
    }
}

/// Days since 1970-01-01 of a date.
pub fn date_to_days(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

/// Parses `YYYY-MM-DD` strictly.
pub fn parse_date(s: &str) -> Option<i32> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(date_to_days)
}

/// Parses a datetime as accepted in JSON request bodies and in query parameters:
/// `2026-01-31T12:00:00Z`, `…00.000Z`, `…+01:00`, `…+0100`. A bare date is refused.
pub fn parse_datetime(s: &str) -> Option<Millis> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Some(dt.timestamp_millis());
        }
    }
    None
}

/// Parses a SOQL datetime literal: no fractional seconds; `Z` or `±hh:mm` (also `±hhmm`).
pub fn parse_soql_datetime(s: &str) -> Option<Millis> {
    if s.contains('.') || s.len() < 20 {
        return None;
    }
    let (main, zone) = s.split_at(19);
    let naive = NaiveDateTime::parse_from_str(main, "%Y-%m-%dT%H:%M:%S").ok()?;
    let offset_secs = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            let colon_ok = matches!(zone.len(), 6 if &zone[3..4] == ":") || zone.len() == 5;
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) || !colon_ok {
                return None;
            }
            let h: i32 = digits[..2].parse().ok()?;
            let m: i32 = digits[2..].parse().ok()?;
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    Some((naive.and_utc().timestamp() - i64::from(offset_secs)) * 1000)
}

/// Truncates to whole seconds.
pub fn to_second(ms: Millis) -> Millis {
    ms.div_euclid(1000) * 1000
}

/// Truncates to whole minutes.
pub fn to_minute(ms: Millis) -> Millis {
    ms.div_euclid(60_000) * 60_000
}

/// Wall clock in milliseconds.
pub fn wall_now() -> Millis {
    Utc::now().timestamp_millis()
}

/// The emulator's clock: real time plus an offset, or frozen at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Real time shifted by this many milliseconds.
    Offset(Millis),
    /// Time does not move until set or advanced.
    Frozen(Millis),
}

impl Default for Clock {
    fn default() -> Self {
        Clock::Offset(0)
    }
}

impl Clock {
    /// Current emulated time in milliseconds.
    pub fn now(&self) -> Millis {
        match self {
            Clock::Offset(o) => wall_now() + o,
            Clock::Frozen(t) => *t,
        }
    }

    /// Sets the current time, keeping the frozen/running mode.
    pub fn set(&mut self, at: Millis) {
        *self = match self {
            Clock::Offset(_) => Clock::Offset(at - wall_now()),
            Clock::Frozen(_) => Clock::Frozen(at),
        };
    }

    /// Moves the clock forward (or backward with a negative amount).
    pub fn advance(&mut self, by: Millis) {
        *self = match self {
            Clock::Offset(o) => Clock::Offset(*o + by),
            Clock::Frozen(t) => Clock::Frozen(*t + by),
        };
    }

    /// Stops time at the current instant.
    pub fn freeze(&mut self) {
        *self = Clock::Frozen(self.now());
    }

    /// Lets time run again from the current instant.
    pub fn unfreeze(&mut self) {
        let now = self.now();
        *self = Clock::Offset(now - wall_now());
    }

    /// True when frozen.
    pub fn is_frozen(&self) -> bool {
        matches!(self, Clock::Frozen(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let ms = parse_datetime("2011-07-07T00:37:00Z").unwrap();
        assert_eq!(fmt_datetime(ms), "2011-07-07T00:37:00.000+0000");
        assert_eq!(fmt_date(parse_date("2010-01-01").unwrap()), "2010-01-01");
        assert_eq!(
            parse_datetime("2011-07-07T02:37:00.000+0200"),
            Some(ms),
            "offset without colon"
        );
        assert_eq!(parse_datetime("2011-07-07T02:37:00+02:00"), Some(ms));
        assert_eq!(parse_datetime("2011-07-07"), None);
    }

    #[test]
    fn soql_datetimes() {
        let z = parse_soql_datetime("2026-01-31T12:00:00Z").unwrap();
        assert_eq!(parse_soql_datetime("2026-01-31T13:00:00+01:00"), Some(z));
        assert_eq!(parse_soql_datetime("2026-01-31T07:00:00-05:00"), Some(z));
        assert_eq!(parse_soql_datetime("2026-01-31T12:00:00.000Z"), None);
        assert_eq!(parse_soql_datetime("2026-01-31T12:00:00"), None);
        assert_eq!(parse_soql_datetime("2026-01-31T12:00:00+1:00"), None);
    }

    #[test]
    fn clock_controls() {
        let mut c = Clock::default();
        c.freeze();
        let t = c.now();
        c.advance(5_000);
        assert_eq!(c.now(), t + 5_000);
        c.set(1_000);
        assert_eq!(c.now(), 1_000);
        c.unfreeze();
        assert!(c.now() >= 1_000);
    }
}
