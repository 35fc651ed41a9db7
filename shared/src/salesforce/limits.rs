//! The customer's daily API allocation: read from `Sforce-Limit-Info` on every
//! response, and the budget policy that pauses the sync and defers call logging.

use std::time::Duration;

use crate::config::BudgetThresholds;

/// How long a usage reading is trusted to pause a sync or defer a call without
/// another call: the daily allocation is a rolling window, so the next call
/// tells the current figure.
pub const USAGE_FRESHNESS: Duration = Duration::from_secs(15 * 60);

/// Parses `api-usage=18/5000` (optionally followed by `, per-app-api-usage=…`).
pub fn parse_limit_info(header: &str) -> Option<(u64, u64)> {
    header.split(',').map(str::trim).find_map(|part| {
        let value = part.strip_prefix("api-usage=")?;
        let (used, max) = value.split_once('/')?;
        let used = used.trim().parse().ok()?;
        let max = max.trim().parse().ok()?;
        Some((used, max))
    })
}

/// What a piece of work may do given the current usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetDecision {
    Proceed,
    /// Usage is at or above the threshold for this kind of work.
    Wait {
        used_percent: u8,
        threshold: u8,
    },
}

/// The kinds of work the budget tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    Sync,
    CallLogging,
}

pub fn decide(thresholds: &BudgetThresholds, work: Work, used: u64, max: u64) -> BudgetDecision {
    let threshold = match work {
        Work::Sync => thresholds.sync_pause_at_percent,
        Work::CallLogging => thresholds.call_logging_defer_at_percent,
    };
    // Integer arithmetic: 79.99 % is below 80 %, 80.0 % is not.
    let at_or_above =
        max == 0 || used.saturating_mul(100) >= max.saturating_mul(u64::from(threshold));
    if at_or_above {
        let used_percent = used
            .saturating_mul(100)
            .checked_div(max)
            .map_or(100, |p| p.min(255) as u8);
        BudgetDecision::Wait {
            used_percent,
            threshold,
        }
    } else {
        BudgetDecision::Proceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header() {
        assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
        assert_eq!(
            parse_limit_info("api-usage=25/15000, per-app-api-usage=17/250(appName=Modjo)"),
            Some((25, 15000))
        );
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(appName=x)"),
            None
        );
        assert_eq!(parse_limit_info("api-usage=abc/5000"), None);
        assert_eq!(parse_limit_info(""), None);
    }

    #[test]
    fn thresholds() {
        let t = BudgetThresholds::default();
        assert_eq!(
            decide(&t, Work::Sync, 7_999, 10_000),
            BudgetDecision::Proceed
        );
        assert_eq!(
            decide(&t, Work::Sync, 8_000, 10_000),
            BudgetDecision::Wait {
                used_percent: 80,
                threshold: 80
            }
        );
        assert_eq!(
            decide(&t, Work::CallLogging, 9_000, 10_000),
            BudgetDecision::Proceed
        );
        assert_eq!(
            decide(&t, Work::CallLogging, 9_500, 10_000),
            BudgetDecision::Wait {
                used_percent: 95,
                threshold: 95
            }
        );
        assert!(matches!(
            decide(&t, Work::Sync, 20_000, 10_000),
            BudgetDecision::Wait { .. }
        ));
        assert!(matches!(
            decide(&t, Work::Sync, 0, 0),
            BudgetDecision::Wait { .. }
        ));
    }
}
