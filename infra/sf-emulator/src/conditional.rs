//! Conditional request headers on sObject rows and describes (REST API
//! Developer Guide, "Conditional Request Headers"; "Update Records Using
//! sObject Rows": "The format is EEE, dd MMM yyyy HH:mm:ss z. For example:
//! If-Unmodified-Since: Mon, 30 Nov 2020 08:34:54 MST").
//!
//! * `If-Unmodified-Since` (GET, PATCH): 412 when the record was modified
//!   after the date; an unreadable date on PATCH is a 400.
//! * `If-Modified-Since` (GET): 304, no body, when it was not.
//! * `If-Match` / `If-None-Match`: ETags, "only has an effect when used with
//!   Account objects": 412 when no tag matches / a tag matches (304 for a GET
//!   with `If-None-Match`).
//! * DELETE: "DELETE requests aren't supported" — the headers are ignored.

use crate::http::Resp;
use crate::time::Millis;
use base64::Engine;
use chrono::NaiveDateTime;
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// The conditional headers of one (sub)request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<String>,
}

impl Conditions {
    /// From request headers (names case-insensitive).
    pub fn from_headers(headers: &HeaderMap) -> Conditions {
        Conditions::from_pairs(
            headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
        )
    }

    /// From `(name, value)` pairs, e.g. a composite subrequest's `httpHeaders`.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Conditions {
        let mut c = Conditions::default();
        for (k, v) in pairs {
            let slot = match k.to_ascii_lowercase().as_str() {
                "if-match" => &mut c.if_match,
                "if-none-match" => &mut c.if_none_match,
                "if-modified-since" => &mut c.if_modified_since,
                "if-unmodified-since" => &mut c.if_unmodified_since,
                _ => continue,
            };
            *slot = Some(v.trim().to_string());
        }
        c
    }
}

/// What the preconditions say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the request.
    Proceed,
    /// 304 Not Modified (GET).
    NotModified,
    /// 412 Precondition Failed; the header that failed.
    Failed(&'static str),
    /// 400: an unreadable header value on a write.
    BadHeader(&'static str, String),
}

/// Reads `EEE, dd MMM yyyy HH:mm:ss z` (Salesforce's documented format: RFC
/// 1123 with a zone name, e.g. `GMT` or `MST`) or a numeric zone (`+0100`).
/// Zones: GMT, UT, UTC, Z and the North American abbreviations Java resolves
/// the same way everywhere (EST EDT CST CDT MST MDT PST PDT), `GMT+hh:mm`.
///
/// The day name must be one, but need not be the right one: Salesforce parses
/// leniently (as Java does), and its own example, "Tue, 10 Aug 2015", names a
/// Monday.
pub fn parse_http_date(text: &str) -> Option<Millis> {
    let text = text.trim();
    let (day, rest) = text.split_once(", ")?;
    if !["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&day) {
        return None;
    }
    let (stamp, zone) = rest.rsplit_once(' ')?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%d %b %Y %H:%M:%S").ok()?;
    let offset_minutes: i64 = match zone {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        "EST" => -300,
        "EDT" => -240,
        "CST" => -360,
        "CDT" => -300,
        "MST" => -420,
        "MDT" => -360,
        "PST" => -480,
        "PDT" => -420,
        z => numeric_zone(z.strip_prefix("GMT").unwrap_or(z))?,
    };
    Some(naive.and_utc().timestamp_millis() - offset_minutes * 60_000)
}

fn numeric_zone(z: &str) -> Option<i64> {
    let sign = match z.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    (h < 24 && m < 60).then_some(sign * (h * 60 + m))
}

/// An ETag for a record's content (Salesforce: "a hash of the content", shown
/// as `"ddpAdaTHz+GcV35e7NLJ9iKD3XXVqAzXT1Sl2ykkP7g=--gzip"`).
pub fn etag(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!(
        "\"{}--gzip\"",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The tags of an `If-Match` / `If-None-Match` value; None when malformed.
fn tags(value: &str) -> Option<Vec<&str>> {
    let v = value.trim();
    if v == "*" {
        return Some(vec!["*"]);
    }
    let list: Vec<&str> = v.split(',').map(str::trim).collect();
    list.iter()
        .all(|t| t.len() >= 2 && t.starts_with('"') && t.ends_with('"'))
        .then_some(list)
}

fn any_matches(value: &str, current: &str) -> Option<bool> {
    Some(tags(value)?.iter().any(|t| *t == "*" || *t == current))
}

/// Evaluates the conditions of a GET (`write` false) or PATCH (`write` true)
/// on a record last modified at `last_modified`, whose ETag is `etag` (Some
/// only for Accounts), in RFC 7232's order.
pub fn evaluate(c: &Conditions, write: bool, last_modified: Millis, etag: Option<&str>) -> Outcome {
    let bad = |name: &'static str, v: &str| {
        Outcome::BadHeader(name, format!("Invalid value for the {name} header: {v}"))
    };
    if let (Some(v), Some(current)) = (&c.if_match, etag) {
        match any_matches(v, current) {
            Some(true) => {}
            Some(false) => return Outcome::Failed("If-Match"),
            None if write => return bad("If-Match", v),
            None => {}
        }
    } else if let Some(v) = &c.if_unmodified_since {
        match parse_http_date(v) {
            Some(t) if last_modified > t => return Outcome::Failed("If-Unmodified-Since"),
            Some(_) => {}
            None if write => return bad("If-Unmodified-Since", v),
            None => {}
        }
    }
    if let (Some(v), Some(current)) = (&c.if_none_match, etag) {
        match any_matches(v, current) {
            Some(true) if write => return Outcome::Failed("If-None-Match"),
            Some(true) => return Outcome::NotModified,
            Some(false) => {}
            None if write => return bad("If-None-Match", v),
            None => {}
        }
    } else if !write
        && let Some(t) = c.if_modified_since.as_deref().and_then(parse_http_date)
        && last_modified <= t
    {
        return Outcome::NotModified;
    }
    Outcome::Proceed
}

/// The answer to a failed precondition: 412 with the error array (the code
/// Salesforce APIs use with 412, e.g. its Agent API; the message is the
/// emulator's: the REST API guide prints no 412 body).
pub fn precondition_failed(header: &str) -> Resp {
    Resp::error(
        412,
        "PRECONDITION_FAILED",
        &format!("The precondition of the {header} header failed: the record has changed."),
    )
}

/// 400 for an unreadable conditional header on a write.
pub fn bad_header(message: &str) -> Resp {
    Resp::error(400, "INVALID_HEADER_VALUE", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_dates() {
        let gmt = parse_http_date("Tue, 10 Aug 2015 00:00:00 GMT").unwrap();
        assert_eq!(
            crate::time::fmt_datetime(gmt),
            "2015-08-10T00:00:00.000+0000"
        );
        let mst = parse_http_date("Mon, 30 Nov 2020 08:34:54 MST").unwrap();
        assert_eq!(
            crate::time::fmt_datetime(mst),
            "2020-11-30T15:34:54.000+0000"
        );
        assert_eq!(
            parse_http_date("Mon, 30 Nov 2020 15:34:54 +0000"),
            Some(mst)
        );
        assert_eq!(
            parse_http_date("Mon, 30 Nov 2020 16:34:54 GMT+01:00"),
            Some(mst)
        );
        assert_eq!(parse_http_date("2020-11-30T15:34:54Z"), None);
        assert_eq!(parse_http_date("Mon, 30 Nov 2020 15:34:54 CEST"), None);
        assert_eq!(
            parse_http_date("Sun, 30 Nov 2020 15:34:54 GMT"),
            Some(mst),
            "a wrong day name is not checked"
        );
        assert_eq!(parse_http_date("Xyz, 30 Nov 2020 15:34:54 GMT"), None);
    }

    #[test]
    fn order_and_outcomes() {
        let t = parse_http_date("Tue, 10 Aug 2015 00:00:00 GMT").unwrap();
        let unmod = Conditions {
            if_unmodified_since: Some("Tue, 10 Aug 2015 00:00:00 GMT".into()),
            ..Default::default()
        };
        assert_eq!(evaluate(&unmod, true, t, None), Outcome::Proceed);
        assert_eq!(
            evaluate(&unmod, true, t + 1000, None),
            Outcome::Failed("If-Unmodified-Since")
        );
        let garbage = Conditions {
            if_unmodified_since: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(matches!(
            evaluate(&garbage, true, t, None),
            Outcome::BadHeader(..)
        ));
        assert_eq!(evaluate(&garbage, false, t, None), Outcome::Proceed);
        let since = Conditions {
            if_modified_since: Some("Tue, 10 Aug 2015 00:00:00 GMT".into()),
            ..Default::default()
        };
        assert_eq!(evaluate(&since, false, t, None), Outcome::NotModified);
        assert_eq!(evaluate(&since, false, t + 1000, None), Outcome::Proceed);
        assert_eq!(evaluate(&since, true, t, None), Outcome::Proceed);
        let tag = etag("x");
        let none = Conditions {
            if_none_match: Some(format!("\"other\", {tag}")),
            ..Default::default()
        };
        assert_eq!(evaluate(&none, false, t, Some(&tag)), Outcome::NotModified);
        assert_eq!(
            evaluate(&none, true, t, Some(&tag)),
            Outcome::Failed("If-None-Match")
        );
        assert_eq!(
            evaluate(&none, true, t, None),
            Outcome::Proceed,
            "not an Account"
        );
        let m = Conditions {
            if_match: Some("\"other\"".into()),
            ..Default::default()
        };
        assert_eq!(
            evaluate(&m, true, t, Some(&tag)),
            Outcome::Failed("If-Match")
        );
    }
}
