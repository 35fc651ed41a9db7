//! Salesforce errors: every body shape parsed (JSON array or object, XML, HTML from
//! a proxy), every code classified once.

use serde::Deserialize;

use super::soql::SoqlError;
use crate::domain::hosts::InstanceUrlError;
use crate::error::StoreError;
use crate::error::{Classify, ErrorClass};

/// One entry of a REST error body (`errorCode`), or of a collection result (`statusCode`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "errorCode", alias = "statusCode", default)]
    pub code: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

impl ApiError {
    /// A per-record error of a collections write worth retrying later: the
    /// record was locked, or the server busy.
    pub fn is_transient_row_error(&self) -> bool {
        matches!(
            self.code.as_str(),
            "UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE"
        )
    }
}

/// Parses an error body: a JSON array of errors, or sometimes a single object of
/// the same shape, or Salesforce's XML form (`<Errors><Error><errorCode>…`).
/// Anything else (HTML from a proxy, …) gives an empty list: see [`body_excerpt`].
pub fn parse_error_body(body: &[u8]) -> Vec<ApiError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Many(Vec<ApiError>),
        One(ApiError),
    }
    match serde_json::from_slice::<Shape>(body) {
        Ok(Shape::Many(v)) => v.into_iter().filter(|e| !e.code.is_empty()).collect(),
        Ok(Shape::One(e)) if !e.code.is_empty() => vec![e],
        Ok(_) => Vec::new(),
        Err(_) => parse_xml_errors(body),
    }
}

/// `<Errors><Error><errorCode>NOT_FOUND</errorCode><message>…</message></Error></Errors>`:
/// the shape Salesforce answers when XML is asked for (the client asks for JSON,
/// but a misrouted request may still get it).
fn parse_xml_errors(body: &[u8]) -> Vec<ApiError> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    if !text.trim_start().starts_with('<') {
        return Vec::new();
    }
    text.split("<Error>")
        .skip(1)
        .filter_map(|block| {
            let code = xml_element(block, "errorCode")?;
            Some(ApiError {
                message: xml_element(block, "message").unwrap_or_default(),
                code,
                fields: Vec::new(),
            })
        })
        .collect()
}

fn xml_element(block: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = block.find(&open)? + open.len();
    let len = block[start..].find(&close)?;
    let raw = block[start..start + len].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// A short, single-line, tag-free excerpt of a body that is not a Salesforce error
/// (an HTML page from a CDN or proxy), to say in an error message what came back.
pub fn body_excerpt(body: &[u8]) -> Option<String> {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    // The head (title, styles, scripts) repeats or hides what the page says.
    let lower = text.to_ascii_lowercase();
    let visible = match (lower.find("<head"), lower.find("</head>")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &text[..a], &text[b + 7..]),
        _ => text.to_string(),
    };
    let mut out = String::new();
    let mut in_tag = false;
    for c in visible.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(if c.is_control() { ' ' } else { c }),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let joined = words.join(" ");
    Some(if joined.chars().count() > MAX_CHARS {
        let cut: String = joined.chars().take(MAX_CHARS).collect();
        format!("{cut}…")
    } else {
        joined
    })
}

/// Codes worth retrying right away, within the caller's deadline.
const TRANSIENT: &[&str] = &[
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "QUERY_TIMEOUT",
    "REQUEST_RUNNING_TOO_LONG",
];
/// Codes that are retryable later, but not now (the org's allocation is spent).
const LATER: &[&str] = &[
    "REQUEST_LIMIT_EXCEEDED",
    "CONCURRENT_REQUESTS_LIMIT_EXCEEDED",
];
/// A session Salesforce refused. The client refreshes the token and sends again;
/// when it still comes back after a successful refresh (a token race, sessions
/// expired during retries), it is retryable: only the token endpoint refusing the
/// refresh token means the tenant must reconnect.
pub(crate) const SESSION: &str = "INVALID_SESSION_ID";
/// Codes that need an admin: API access is off for the org or the user.
const ADMIN: &[&str] = &["API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED"];
/// OAuth errors that mean the stored authorisation or app settings no longer work.
const OAUTH_REAUTH: &[&str] = &[
    "invalid_grant",
    "invalid_client",
    "invalid_client_id",
    "inactive_user",
    "inactive_org",
];

#[derive(Debug, thiserror::Error)]
pub enum SalesforceError {
    /// A REST error response. `excerpt` says what came back when the body was not a
    /// Salesforce error (an HTML page from a CDN, …).
    #[error("Salesforce answered HTTP {status}: {}", summarize(errors, excerpt.as_deref()))]
    Api {
        status: u16,
        errors: Vec<ApiError>,
        excerpt: Option<String>,
    },
    /// `300 Multiple Choices`: the request named several records (an external id
    /// shared by records); the body lists them.
    #[error(
        "Salesforce found {} records where one was expected (HTTP 300 Multiple Choices): {}",
        urls.len(),
        urls.join(", ")
    )]
    MultipleChoices { urls: Vec<String> },
    /// An error from the token endpoint, with its real HTTP status. `error` is the
    /// OAuth code (`invalid_grant`, …), or `http_<status>` when the body was not
    /// an OAuth error (an HTML page).
    #[error("Salesforce's token endpoint answered HTTP {status}: {error}: {description}")]
    OAuth {
        status: u16,
        error: String,
        description: String,
    },
    /// The tenant has no usable authorisation: the admin must reconnect.
    #[error("the Salesforce connection needs to be re-authorised: {0}")]
    NeedsReauth(String),
    /// The token response's signature did not verify.
    #[error("the token response signature is invalid")]
    BadSignature,
    /// Connection refused or reset, timeout, TLS failure.
    #[error("network error talking to Salesforce: {0}")]
    Transport(String),
    #[error("refused Salesforce URL: {0}")]
    Url(#[from] InstanceUrlError),
    /// A request Salesforce would refuse for its size (414/431): never sent.
    #[error(
        "request of {bytes} bytes (URI and headers) exceeds Salesforce's limit of {limit} bytes"
    )]
    RequestTooLarge { bytes: usize, limit: usize },
    /// A success answer that is not JSON (a truncated or mangled body, a proxy's
    /// page): nothing about the request was wrong, so it is worth sending again
    /// later, but not in a loop (a write may have been applied).
    #[error("Salesforce's answer is not valid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON of an unexpected shape, or a value the client refuses.
    #[error("unexpected answer from Salesforce: {0}")]
    Decode(String),
    #[error(transparent)]
    Query(#[from] SoqlError),
    /// The caller's deadline passed before the request could succeed.
    #[error("deadline reached before Salesforce answered ({0})")]
    Deadline(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn summarize(errors: &[ApiError], excerpt: Option<&str>) -> String {
    match (errors, excerpt) {
        ([], Some(text)) => format!("no Salesforce error in the body ({text})"),
        ([], None) => "no error detail".to_string(),
        ([one], _) => format!("{}: {}", one.code, one.message),
        ([one, rest @ ..], _) => {
            format!("{}: {} (and {} more)", one.code, one.message, rest.len())
        }
    }
}

impl SalesforceError {
    /// The error of a non-success REST answer, from its status and body.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        if status == 300 {
            if let Ok(urls) = serde_json::from_slice::<Vec<String>>(body) {
                return SalesforceError::MultipleChoices { urls };
            }
        }
        let errors = parse_error_body(body);
        let excerpt = if errors.is_empty() {
            body_excerpt(body)
        } else {
            None
        };
        SalesforceError::Api {
            status,
            errors,
            excerpt,
        }
    }

    /// The first error code (REST `errorCode` or OAuth `error`), if any.
    /// API access is off for the org or the connected user (*API Enabled*).
    pub fn is_api_access_off(&self) -> bool {
        matches!(self, SalesforceError::Api { errors, .. } if errors.iter().any(|e| ADMIN.contains(&e.code.as_str())))
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { errors, .. } => errors.first().map(|e| e.code.as_str()),
            SalesforceError::OAuth { error, .. } => Some(error.as_str()),
            _ => None,
        }
    }

    /// Salesforce refused the session (401, `INVALID_SESSION_ID`): refresh the
    /// token and send again.
    pub fn is_session_refused(&self) -> bool {
        match self {
            SalesforceError::Api { status, errors, .. } => {
                errors.iter().any(|e| e.code == SESSION) || (*status == 401 && errors.is_empty())
            }
            _ => false,
        }
    }

    /// Worth retrying at once (with back-off, within the deadline): 5xx, lock
    /// contention, network failures, a token endpoint busy with the same refresh.
    /// `REQUEST_LIMIT_EXCEEDED` is retryable but not now: the allocation stays
    /// spent for hours.
    pub fn is_transient(&self) -> bool {
        match self {
            SalesforceError::Api { status, errors, .. } => {
                *status >= 500
                    || *status == 429
                    || errors.iter().any(|e| TRANSIENT.contains(&e.code.as_str()))
            }
            SalesforceError::OAuth {
                status,
                error,
                description,
            } => oauth_transient(*status, error, description),
            SalesforceError::Transport(_) => true,
            _ => false,
        }
    }
}

impl SalesforceError {
    /// Salesforce itself is down or out of reach (5xx, network, no answer in time),
    /// as opposed to refusing this particular work.
    pub fn is_unavailability(&self) -> bool {
        match self {
            SalesforceError::Api { status, .. } | SalesforceError::OAuth { status, .. } => {
                *status >= 500
            }
            SalesforceError::Transport(_) | SalesforceError::Deadline(_) => true,
            _ => false,
        }
    }

    /// The org's daily API allocation is spent: nothing will pass for hours.
    pub fn is_allocation_spent(&self) -> bool {
        matches!(self, SalesforceError::Api { errors, .. }
            if errors.iter().any(|e| e.code == "REQUEST_LIMIT_EXCEEDED"))
    }
}

/// Token endpoint errors that go away by themselves: 5xx and 429 (whatever the
/// body), `unknown_error` ("retry your request"), and `invalid_grant` "token
/// request is already being processed" (the same refresh token used twice at once,
/// Winter '25 release notes): the first request's answer is valid, the second is
/// refused until it completes.
fn oauth_transient(status: u16, error: &str, description: &str) -> bool {
    status >= 500
        || status == 429
        || error == "unknown_error"
        || (error == "invalid_grant"
            && description
                .to_ascii_lowercase()
                .contains("already being processed"))
}

impl Classify for SalesforceError {
    fn class(&self) -> ErrorClass {
        match self {
            SalesforceError::Api { errors, .. } => {
                let codes = || errors.iter().map(|e| e.code.as_str());
                if self.is_transient()
                    || self.is_session_refused()
                    || codes().any(|c| LATER.contains(&c))
                {
                    ErrorClass::Retryable
                } else if codes().any(|c| ADMIN.contains(&c)) {
                    ErrorClass::NeedsReauth
                } else {
                    ErrorClass::Permanent
                }
            }
            SalesforceError::OAuth { error, .. } => {
                if self.is_transient() {
                    ErrorClass::Retryable
                } else if OAUTH_REAUTH.contains(&error.as_str()) {
                    ErrorClass::NeedsReauth
                } else {
                    ErrorClass::Permanent
                }
            }
            SalesforceError::NeedsReauth(_) => ErrorClass::NeedsReauth,
            SalesforceError::Transport(_)
            | SalesforceError::Deadline(_)
            | SalesforceError::InvalidJson(_) => ErrorClass::Retryable,
            SalesforceError::BadSignature
            | SalesforceError::Url(_)
            | SalesforceError::MultipleChoices { .. }
            | SalesforceError::RequestTooLarge { .. }
            | SalesforceError::Decode(_)
            | SalesforceError::Query(_) => ErrorClass::Permanent,
            SalesforceError::Store(e) => e.class(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> SalesforceError {
        SalesforceError::Api {
            status,
            errors: vec![ApiError {
                message: "m".into(),
                code: code.into(),
                fields: vec![],
            }],
            excerpt: None,
        }
    }

    #[test]
    fn parses_both_body_shapes() {
        let many =
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(parse_error_body(many)[0].code, "INVALID_SESSION_ID");
        let one = br#"{"message":"bad","errorCode":"MALFORMED_QUERY","fields":[]}"#;
        assert_eq!(parse_error_body(one)[0].code, "MALFORMED_QUERY");
        let collection = br#"[{"statusCode":"REQUIRED_FIELD_MISSING","message":"Required fields are missing: [Subject]","fields":["Subject"]}]"#;
        let parsed = parse_error_body(collection);
        assert_eq!(parsed[0].code, "REQUIRED_FIELD_MISSING");
        assert_eq!(parsed[0].fields, ["Subject"]);
        assert!(parse_error_body(b"<html>503</html>").is_empty());
        assert!(parse_error_body(b"{}").is_empty());
        assert!(parse_error_body(b"").is_empty());
        assert!(parse_error_body(br#"["/services/data/v23.0/sobjects/A/x"]"#).is_empty());
    }

    #[test]
    fn parses_the_xml_form() {
        let xml = b"<?xml version=\"1.0\"?><Errors><Error><errorCode>NOT_FOUND</errorCode>\
                    <message>The &quot;x&quot; &amp; y</message></Error></Errors>";
        assert_eq!(
            parse_error_body(xml),
            [ApiError {
                message: "The \"x\" & y".into(),
                code: "NOT_FOUND".into(),
                fields: vec![],
            }]
        );
    }

    #[test]
    fn excerpts_say_what_a_page_says() {
        let page = b"<html><head><title>T</title><style>p{}</style></head><body><h1>Service\n Not Available</h1><p>From the CDN</p></body></html>";
        assert_eq!(
            body_excerpt(page).as_deref(),
            Some("Service Not Available From the CDN")
        );
        assert_eq!(body_excerpt(b"   "), None);
        let long = "x ".repeat(300);
        assert_eq!(
            body_excerpt(long.as_bytes()).unwrap().chars().count(),
            201,
            "200 characters and an ellipsis"
        );
    }

    #[test]
    fn a_300_names_every_candidate() {
        let e = SalesforceError::from_response(300, br#"["/services/data/v23.0/sobjects/Whizbang/foo","/services/data/v23.0/sobjects/Whizbang/bar"]"#);
        assert!(matches!(&e, SalesforceError::MultipleChoices { urls } if urls.len() == 2));
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(e.code(), None, "no URL passes for an error code");
        let text = e.to_string();
        assert!(text.contains("2 records"), "{text}");
        assert!(text.contains("/sobjects/Whizbang/foo"), "{text}");
    }

    #[test]
    fn classifies_every_known_code() {
        use ErrorClass::*;
        let cases = [
            (api(503, "SERVER_UNAVAILABLE"), Retryable, true),
            (api(500, "UNKNOWN_EXCEPTION"), Retryable, true),
            (api(400, "UNABLE_TO_LOCK_ROW"), Retryable, true),
            (api(429, "INTERNAL_SERVER_ERROR"), Retryable, true),
            (api(403, "REQUEST_LIMIT_EXCEEDED"), Retryable, false),
            (api(401, "INVALID_SESSION_ID"), Retryable, false),
            (api(403, "API_DISABLED_FOR_ORG"), NeedsReauth, false),
            (api(400, "MALFORMED_QUERY"), Permanent, false),
            (api(400, "INVALID_FIELD"), Permanent, false),
            (api(400, "INVALID_TYPE"), Permanent, false),
            (api(400, "INVALID_CROSS_REFERENCE_KEY"), Permanent, false),
            (api(400, "REQUIRED_FIELD_MISSING"), Permanent, false),
            (
                api(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                Permanent,
                false,
            ),
            (api(400, "DUPLICATES_DETECTED"), Permanent, false),
            (
                api(403, "INSUFFICIENT_ACCESS_OR_READONLY"),
                Permanent,
                false,
            ),
            (api(404, "ENTITY_IS_DELETED"), Permanent, false),
            (api(404, "NOT_FOUND"), Permanent, false),
            (api(400, "STRING_TOO_LONG"), Permanent, false),
        ];
        for (err, class, transient) in cases {
            assert_eq!(err.class(), class, "{err}");
            assert_eq!(err.is_transient(), transient, "{err}");
        }
        let oauth = |status, error: &str, description: &str| SalesforceError::OAuth {
            status,
            error: error.into(),
            description: description.into(),
        };
        let oauth_cases = [
            (
                oauth(400, "invalid_grant", "expired access/refresh token"),
                NeedsReauth,
            ),
            (
                oauth(400, "invalid_grant", "authentication failure"),
                NeedsReauth,
            ),
            (
                oauth(
                    400,
                    "invalid_grant",
                    "token request is already being processed",
                ),
                Retryable,
            ),
            (oauth(400, "unknown_error", "retry your request"), Retryable),
            (oauth(503, "unknown_error", "retry your request"), Retryable),
            (oauth(503, "http_503", "Service Not Available"), Retryable),
            (oauth(429, "http_429", ""), Retryable),
            (oauth(400, "invalid_client", ""), NeedsReauth),
            (oauth(400, "invalid_client_id", ""), NeedsReauth),
            (oauth(400, "redirect_uri_mismatch", ""), Permanent),
            (oauth(400, "unsupported_grant_type", ""), Permanent),
        ];
        for (err, class) in oauth_cases {
            assert_eq!(err.class(), class, "{err}");
        }
        assert_eq!(
            SalesforceError::Transport("reset".into()).class(),
            Retryable
        );
        assert_eq!(SalesforceError::Deadline("x".into()).class(), Retryable);
        assert_eq!(SalesforceError::InvalidJson("x".into()).class(), Retryable);
        assert!(!SalesforceError::InvalidJson("x".into()).is_transient());
        assert_eq!(SalesforceError::Decode("x".into()).class(), Permanent);
        assert_eq!(SalesforceError::BadSignature.class(), Permanent);
        assert_eq!(
            SalesforceError::RequestTooLarge {
                bytes: 20_000,
                limit: 16_384
            }
            .class(),
            Permanent
        );
        assert_eq!(
            SalesforceError::Store(StoreError::Unavailable("x".into())).class(),
            Retryable
        );
    }

    #[test]
    fn the_status_is_named_in_every_message() {
        let e =
            SalesforceError::from_response(503, b"<html><body>Service Not Available</body></html>");
        assert_eq!(e.class(), ErrorClass::Retryable);
        assert_eq!(
            e.to_string(),
            "Salesforce answered HTTP 503: no Salesforce error in the body (Service Not Available)"
        );
        let e = SalesforceError::OAuth {
            status: 503,
            error: "http_503".into(),
            description: "Service Not Available".into(),
        };
        assert!(e.to_string().contains("HTTP 503"), "{e}");
    }
}
