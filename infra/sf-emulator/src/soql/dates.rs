//! SOQL date literals (SOQL and SOSL Reference, "Date Formats and Date
//! Literals"): each names a range of days relative to today, `[start, end)`.
//!
//! * `YESTERDAY`, `TODAY`, `TOMORROW`: one day.
//! * `LAST_WEEK`, `THIS_WEEK`, `NEXT_WEEK`: seven days from the first day of
//!   the week (Sunday: the en_US locale).
//! * `LAST_MONTH`, `THIS_MONTH`, `NEXT_MONTH`; `…_QUARTER` (calendar
//!   quarters); `…_YEAR`.
//! * `LAST_90_DAYS`: "starts with the current day and continues for the past
//!   90 days. This includes the current day, … so it includes 91 days";
//!   `NEXT_90_DAYS`: from tomorrow, 90 days.
//! * `LAST_N_DAYS:n`: today and the n days before it ("LAST_N_DAYS:1 includes
//!   yesterday and today"); `NEXT_N_DAYS:n`: the n days after today;
//!   `N_DAYS_AGO:n`: that one day.
//! * `LAST_N_WEEKS:n`, `LAST_N_MONTHS:n`, `LAST_N_QUARTERS:n`,
//!   `LAST_N_YEARS:n`: the n whole periods before the current one;
//!   `NEXT_N_…:n`: the n whole periods after it; `N_…_AGO:n`: the one period
//!   n before the current one.
//!
//! Days are UTC days (the emulated users' time zone is GMT). Fiscal literals
//! are refused.

use chrono::{Datelike, NaiveDate};

/// Whether a literal takes `:n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// `TODAY`.
    Nothing,
    /// `LAST_N_DAYS:n`.
    Number,
}

/// A date literal as written (canonical upper-case name, and n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateLiteral {
    /// Canonical name, e.g. `LAST_N_DAYS`.
    pub name: &'static str,
    /// The `:n` value.
    pub n: Option<u32>,
}

const PLAIN: &[&str] = &[
    "YESTERDAY",
    "TODAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_90_DAYS",
    "NEXT_90_DAYS",
    "LAST_QUARTER",
    "THIS_QUARTER",
    "NEXT_QUARTER",
    "LAST_YEAR",
    "THIS_YEAR",
    "NEXT_YEAR",
];

const WITH_N: &[&str] = &[
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "N_DAYS_AGO",
    "LAST_N_WEEKS",
    "NEXT_N_WEEKS",
    "N_WEEKS_AGO",
    "LAST_N_MONTHS",
    "NEXT_N_MONTHS",
    "N_MONTHS_AGO",
    "LAST_N_QUARTERS",
    "NEXT_N_QUARTERS",
    "N_QUARTERS_AGO",
    "LAST_N_YEARS",
    "NEXT_N_YEARS",
    "N_YEARS_AGO",
];

impl DateLiteral {
    /// The canonical name of a literal (any case) and whether it takes `:n`.
    pub fn lookup(word: &str) -> Option<(&'static str, Takes)> {
        let upper = word.to_ascii_uppercase();
        if let Some(n) = PLAIN.iter().find(|n| **n == upper) {
            return Some((n, Takes::Nothing));
        }
        WITH_N
            .iter()
            .find(|n| **n == upper)
            .map(|n| (*n, Takes::Number))
    }

    /// The range of days `[start, end)` (days since 1970-01-01) when today is
    /// `today`.
    pub fn days(&self, today: i32) -> (i32, i32) {
        let n = i32::try_from(self.n.unwrap_or(0)).unwrap_or(i32::MAX / 2);
        let date = epoch_day(today);
        // Sunday = 0.
        let week = today - i32::try_from(date.weekday().num_days_from_sunday()).unwrap_or(0);
        let month = (date.year(), date.month0() as i32);
        let quarter = (date.year(), (date.month0() as i32 / 3) * 3);
        let year = (date.year(), 0);
        let months = |(y, m): (i32, i32), from: i32, to: i32| {
            (month_start(y, m + from), month_start(y, m + to))
        };
        match self.name {
            "YESTERDAY" => (today - 1, today),
            "TODAY" => (today, today + 1),
            "TOMORROW" => (today + 1, today + 2),
            "LAST_WEEK" => (week - 7, week),
            "THIS_WEEK" => (week, week + 7),
            "NEXT_WEEK" => (week + 7, week + 14),
            "LAST_MONTH" => months(month, -1, 0),
            "THIS_MONTH" => months(month, 0, 1),
            "NEXT_MONTH" => months(month, 1, 2),
            "LAST_90_DAYS" => (today - 90, today + 1),
            "NEXT_90_DAYS" => (today + 1, today + 91),
            "LAST_QUARTER" => months(quarter, -3, 0),
            "THIS_QUARTER" => months(quarter, 0, 3),
            "NEXT_QUARTER" => months(quarter, 3, 6),
            "LAST_YEAR" => months(year, -12, 0),
            "THIS_YEAR" => months(year, 0, 12),
            "NEXT_YEAR" => months(year, 12, 24),
            "LAST_N_DAYS" => (today - n, today + 1),
            "NEXT_N_DAYS" => (today + 1, today + 1 + n),
            "N_DAYS_AGO" => (today - n, today - n + 1),
            "LAST_N_WEEKS" => (week - 7 * n, week),
            "NEXT_N_WEEKS" => (week + 7, week + 7 + 7 * n),
            "N_WEEKS_AGO" => (week - 7 * n, week - 7 * n + 7),
            "LAST_N_MONTHS" => months(month, -n, 0),
            "NEXT_N_MONTHS" => months(month, 1, 1 + n),
            "N_MONTHS_AGO" => months(month, -n, -n + 1),
            "LAST_N_QUARTERS" => months(quarter, -3 * n, 0),
            "NEXT_N_QUARTERS" => months(quarter, 3, 3 + 3 * n),
            "N_QUARTERS_AGO" => months(quarter, -3 * n, -3 * n + 3),
            "LAST_N_YEARS" => months(year, -12 * n, 0),
            "NEXT_N_YEARS" => months(year, 12, 12 + 12 * n),
            "N_YEARS_AGO" => months(year, -12 * n, -12 * n + 12),
            _ => (today, today),
        }
    }
}

fn epoch_day(days: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163).unwrap_or_default()
}

/// First day (days since the epoch) of month `m0` (0-based, may overflow
/// either way) of year `y`.
fn month_start(y: i32, m0: i32) -> i32 {
    let year = y + m0.div_euclid(12);
    let month = u32::try_from(m0.rem_euclid(12) + 1).unwrap_or(1);
    NaiveDate::from_ymd_opt(year, month, 1)
        .map(crate::time::date_to_days)
        .unwrap_or(i32::MIN / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> i32 {
        crate::time::parse_date(s).unwrap()
    }

    fn range(name: &str, n: Option<u32>, today: &str) -> (String, String) {
        let (name, _) = DateLiteral::lookup(name).unwrap();
        let (a, b) = DateLiteral { name, n }.days(d(today));
        (crate::time::fmt_date(a), crate::time::fmt_date(b))
    }

    fn r(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn ranges_on_a_wednesday_in_february() {
        // 2026-02-18 is a Wednesday; its week starts on Sunday 2026-02-15.
        let t = "2026-02-18";
        assert_eq!(range("today", None, t), r("2026-02-18", "2026-02-19"));
        assert_eq!(range("YESTERDAY", None, t), r("2026-02-17", "2026-02-18"));
        assert_eq!(range("TOMORROW", None, t), r("2026-02-19", "2026-02-20"));
        assert_eq!(range("THIS_WEEK", None, t), r("2026-02-15", "2026-02-22"));
        assert_eq!(range("LAST_WEEK", None, t), r("2026-02-08", "2026-02-15"));
        assert_eq!(range("NEXT_WEEK", None, t), r("2026-02-22", "2026-03-01"));
        assert_eq!(range("THIS_MONTH", None, t), r("2026-02-01", "2026-03-01"));
        assert_eq!(range("LAST_MONTH", None, t), r("2026-01-01", "2026-02-01"));
        assert_eq!(range("NEXT_MONTH", None, t), r("2026-03-01", "2026-04-01"));
        assert_eq!(
            range("LAST_N_DAYS", Some(1), t),
            r("2026-02-17", "2026-02-19")
        );
        assert_eq!(
            range("LAST_90_DAYS", None, t),
            r("2025-11-20", "2026-02-19")
        );
        assert_eq!(
            range("NEXT_N_DAYS", Some(3), t),
            r("2026-02-19", "2026-02-22")
        );
        assert_eq!(
            range("N_DAYS_AGO", Some(3), t),
            r("2026-02-15", "2026-02-16")
        );
        assert_eq!(
            range("LAST_N_MONTHS", Some(2), t),
            r("2025-12-01", "2026-02-01")
        );
        assert_eq!(
            range("NEXT_N_MONTHS", Some(11), t),
            r("2026-03-01", "2027-02-01")
        );
        assert_eq!(
            range("THIS_QUARTER", None, t),
            r("2026-01-01", "2026-04-01")
        );
        assert_eq!(
            range("LAST_QUARTER", None, t),
            r("2025-10-01", "2026-01-01")
        );
        assert_eq!(
            range("LAST_N_YEARS", Some(2), t),
            r("2024-01-01", "2026-01-01")
        );
        assert_eq!(
            range("N_WEEKS_AGO", Some(1), t),
            r("2026-02-08", "2026-02-15")
        );
    }

    #[test]
    fn a_sunday_starts_its_own_week() {
        assert_eq!(
            range("THIS_WEEK", None, "2026-02-15"),
            r("2026-02-15", "2026-02-22")
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            DateLiteral::lookup("last_n_days"),
            Some(("LAST_N_DAYS", Takes::Number))
        );
        assert_eq!(
            DateLiteral::lookup("Today"),
            Some(("TODAY", Takes::Nothing))
        );
        assert_eq!(DateLiteral::lookup("THIS_FISCAL_YEAR"), None);
        assert_eq!(DateLiteral::lookup("NOW"), None);
    }
}
