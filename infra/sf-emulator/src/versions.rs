//! REST API versions: which are served, their release labels, and which are
//! retired.
//!
//! Salesforce ships three releases a year, each one API version higher:
//! 20.0 was Winter '11, 21.0 Spring '11, 22.0 Summer '11, 23.0 Winter '12, …
//! so 31.0 is Summer '14, 62.0 Winter '25 and 68.0 Winter '27. Versions 7.0 to
//! 20.0 were retired in Summer '22 and 21.0 to 30.0 in Summer '25: "REST API
//! returns 410: GONE" (Salesforce knowledge article 000354473, "Salesforce
//! Platform API Versions 21.0 through 30.0 Retirement").

use std::ops::RangeInclusive;

/// Oldest version served.
pub const MIN_VERSION: u32 = 31;
/// Newest version served (Winter '27).
pub const MAX_VERSION: u32 = 68;
/// REST versions that existed (REST started with 20.0) and are retired.
pub const RETIRED: RangeInclusive<u32> = 20..=30;

/// The served versions, oldest first.
pub fn served() -> RangeInclusive<u32> {
    MIN_VERSION..=MAX_VERSION
}

/// The release label of a version: `Summer '14` for 31, `Winter '27` for 68.
pub fn label(major: u32) -> String {
    let since = major.saturating_sub(20);
    let season = match since % 3 {
        0 => "Winter",
        1 => "Spring",
        _ => "Summer",
    };
    format!("{season} '{:02}", (11 + since / 3) % 100)
}

/// What a `vXX.X` path segment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A served version (`62.0`).
    Served(String),
    /// A retired one: 410 GONE.
    Retired(String),
    /// Anything else: 404 NOT_FOUND.
    Unknown,
}

/// Reads a `vXX.X` path segment.
pub fn parse(segment: &str) -> Version {
    let Some((major, minor)) = segment.strip_prefix('v').and_then(|v| v.split_once('.')) else {
        return Version::Unknown;
    };
    let Ok(m) = major.parse::<u32>() else {
        return Version::Unknown;
    };
    if minor != "0" || major.starts_with('0') || major.starts_with('+') {
        return Version::Unknown;
    }
    if served().contains(&m) {
        Version::Served(format!("{m}.0"))
    } else if RETIRED.contains(&m) {
        Version::Retired(format!("{m}.0"))
    } else {
        Version::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_three_releases_a_year() {
        assert_eq!(label(20), "Winter '11");
        assert_eq!(label(30), "Spring '14");
        assert_eq!(label(31), "Summer '14");
        assert_eq!(label(62), "Winter '25");
        assert_eq!(label(66), "Spring '26");
        assert_eq!(label(68), "Winter '27");
    }

    #[test]
    fn segments() {
        assert_eq!(parse("v62.0"), Version::Served("62.0".into()));
        assert_eq!(parse("v68.0"), Version::Served("68.0".into()));
        assert_eq!(parse("v30.0"), Version::Retired("30.0".into()));
        assert_eq!(parse("v20.0"), Version::Retired("20.0".into()));
        assert_eq!(parse("v19.0"), Version::Unknown);
        assert_eq!(parse("v69.0"), Version::Unknown);
        assert_eq!(parse("v62.1"), Version::Unknown);
        assert_eq!(parse("v062.0"), Version::Unknown);
        assert_eq!(parse("62.0"), Version::Unknown);
    }
}
