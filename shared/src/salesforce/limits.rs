//! The customer's daily API allocation: read from `Sforce-Limit-Info` on every
//! response, and the budget policy that pauses the sync and defers call logging.

use crate::config::BudgetThresholds;

/// One `used/max` counter of the `Sforce-Limit-Info` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub used: u64,
    pub max: u64,
}

/// What `Sforce-Limit-Info` says. Salesforce separates its entries with `; `
/// (older answers and some proxies with `,`):
/// `api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)`,
/// `api-usage=110018/100000; api-bursts=1/750`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitInfo {
    /// `api-usage`: the org's rolling daily allocation, shared by every integration.
    pub api_usage: Option<Counter>,
    /// `per-app-api-usage`: the connected app's own cap, when the org set one, and
    /// the app it belongs to.
    pub per_app: Option<(Counter, Option<String>)>,
    /// `api-bursts`: the burst allowance.
    pub api_bursts: Option<Counter>,
}

/// Parses every documented form of the header. Unknown or malformed entries are
/// ignored: the header informs the budget, it never fails a request.
pub fn parse_limit_info(header: &str) -> LimitInfo {
    let mut info = LimitInfo::default();
    for entry in entries(header) {
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        let (counter, app) = match value.split_once('(') {
            Some((counter, rest)) => (counter, app_name(rest)),
            None => (value, None),
        };
        let Some(counter) = parse_counter(counter) else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "api-usage" => info.api_usage = Some(counter),
            "per-app-api-usage" => info.per_app = Some((counter, app)),
            "api-bursts" => info.api_bursts = Some(counter),
            _ => {}
        }
    }
    info
}

/// The entries of the header, split on `;` and `,` outside parentheses (an app
/// name stays whole).
fn entries(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in header.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ';' | ',' if depth == 0 => {
                out.push(header[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(header[start..].trim());
    out.retain(|e| !e.is_empty());
    out
}

fn parse_counter(value: &str) -> Option<Counter> {
    let (used, max) = value.trim().split_once('/')?;
    Some(Counter {
        used: used.trim().parse().ok()?,
        max: max.trim().parse().ok()?,
    })
}

/// `appName=sample-connected-app)` → `sample-connected-app`.
fn app_name(rest: &str) -> Option<String> {
    let inner = rest.trim().strip_suffix(')').unwrap_or(rest).trim();
    let (key, name) = inner.split_once('=')?;
    (key.trim().eq_ignore_ascii_case("appName") && !name.trim().is_empty())
        .then(|| name.trim().to_string())
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

    fn usage(header: &str) -> Option<(u64, u64)> {
        parse_limit_info(header).api_usage.map(|c| (c.used, c.max))
    }

    #[test]
    fn parses_every_separator_and_entry() {
        assert_eq!(usage("api-usage=18/5000"), Some((18, 5000)));
        let semicolon = parse_limit_info(
            "api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)",
        );
        assert_eq!(
            semicolon,
            LimitInfo {
                api_usage: Some(Counter {
                    used: 25,
                    max: 5000
                }),
                per_app: Some((
                    Counter { used: 17, max: 250 },
                    Some("sample-connected-app".into())
                )),
                api_bursts: None,
            }
        );
        let bursts = parse_limit_info("api-usage=110018/100000; api-bursts=1/750");
        assert_eq!(
            bursts.api_usage,
            Some(Counter {
                used: 110_018,
                max: 100_000
            })
        );
        assert_eq!(bursts.api_bursts, Some(Counter { used: 1, max: 750 }));
        assert_eq!(
            usage("api-usage=25/15000, per-app-api-usage=17/250(appName=Modjo)"),
            Some((25, 15000))
        );
        // Whatever the order, spacing and case.
        assert_eq!(
            usage(" per-app-api-usage=1/2(appName=a;b) ;API-Usage = 7 / 9 ;"),
            Some((7, 9))
        );
    }

    #[test]
    fn ignores_what_it_does_not_know_and_never_fails() {
        assert_eq!(usage("per-app-api-usage=17/250(appName=x)"), None);
        assert_eq!(usage("api-usage=abc/5000"), None);
        assert_eq!(usage("api-usage=-1/5000"), None);
        assert_eq!(usage("api-usage=99999999999999999999999/1"), None);
        assert_eq!(usage(""), None);
        assert_eq!(usage(";;,,"), None);
        assert_eq!(usage("future-thing=1/2; api-usage=3/4; x"), Some((3, 4)));
        assert_eq!(
            parse_limit_info("per-app-api-usage=17/250(").per_app,
            Some((Counter { used: 17, max: 250 }, None))
        );
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
