//! Salesforce errors: both body shapes parsed, every code classified once.

use serde::Deserialize;

use super::instance::InstanceUrlError;
use super::soql::SoqlError;
use crate::error::{Classify, ErrorClass};
use crate::ports::StoreError;

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
/// the same shape. Anything else (HTML from a proxy, …) gives an empty list.
pub fn parse_error_body(body: &[u8]) -> Vec<ApiError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Many(Vec<ApiError>),
        One(ApiError),
    }
    match serde_json::from_slice::<Shape>(body) {
        Ok(Shape::Many(v)) => v,
        Ok(Shape::One(e)) if !e.code.is_empty() => vec![e],
        _ => Vec::new(),
    }
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
/// Codes that need an admin: reconnect, or grant API access.
const ADMIN: &[&str] = &[
    "INVALID_SESSION_ID",
    "API_DISABLED_FOR_ORG",
    "API_CURRENTLY_DISABLED",
];
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
    /// A REST error response.
    #[error("Salesforce answered HTTP {status}: {}", summarize(errors))]
    Api { status: u16, errors: Vec<ApiError> },
    /// An OAuth endpoint error (`{"error": …, "error_description": …}`).
    #[error("Salesforce OAuth error {error}: {description}")]
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

fn summarize(errors: &[ApiError]) -> String {
    match errors {
        [] => "no error detail".to_string(),
        [one, ..] => format!("{}: {}", one.code, one.message),
    }
}

impl SalesforceError {
    /// The first error code (REST `errorCode` or OAuth `error`), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            SalesforceError::Api { errors, .. } => errors.first().map(|e| e.code.as_str()),
            SalesforceError::OAuth { error, .. } => Some(error.as_str()),
            _ => None,
        }
    }

    /// Worth retrying at once (with back-off, within the deadline): 5xx, lock
    /// contention, network failures. `REQUEST_LIMIT_EXCEEDED` is retryable but not
    /// now: the allocation stays spent for hours.
    pub fn is_transient(&self) -> bool {
        match self {
            SalesforceError::Api { status, errors } => {
                *status >= 500
                    || *status == 429
                    || errors.iter().any(|e| TRANSIENT.contains(&e.code.as_str()))
            }
            SalesforceError::OAuth { status, .. } => *status >= 500,
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

impl Classify for SalesforceError {
    fn class(&self) -> ErrorClass {
        match self {
            SalesforceError::Api { status, errors } => {
                let codes = || errors.iter().map(|e| e.code.as_str());
                if self.is_transient() || codes().any(|c| LATER.contains(&c)) {
                    ErrorClass::Retryable
                } else if codes().any(|c| ADMIN.contains(&c))
                    || (*status == 401 && errors.is_empty())
                {
                    ErrorClass::NeedsReauth
                } else {
                    ErrorClass::Permanent
                }
            }
            SalesforceError::OAuth { status, error, .. } => {
                if *status >= 500 {
                    ErrorClass::Retryable
                } else if OAUTH_REAUTH.contains(&error.as_str()) {
                    ErrorClass::NeedsReauth
                } else {
                    ErrorClass::Permanent
                }
            }
            SalesforceError::NeedsReauth(_) => ErrorClass::NeedsReauth,
            SalesforceError::Transport(_) | SalesforceError::Deadline(_) => ErrorClass::Retryable,
            SalesforceError::BadSignature
            | SalesforceError::Url(_)
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
    }

    #[test]
    fn classifies_every_known_code() {
        use ErrorClass::*;
        let cases = [
            (api(503, "SERVER_UNAVAILABLE"), Retryable, true),
            (api(500, "UNKNOWN_EXCEPTION"), Retryable, true),
            (api(400, "UNABLE_TO_LOCK_ROW"), Retryable, true),
            (api(403, "REQUEST_LIMIT_EXCEEDED"), Retryable, false),
            (api(401, "INVALID_SESSION_ID"), NeedsReauth, false),
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
        let oauth = |status, error: &str| SalesforceError::OAuth {
            status,
            error: error.into(),
            description: "d".into(),
        };
        assert_eq!(oauth(400, "invalid_grant").class(), NeedsReauth);
        assert_eq!(oauth(400, "invalid_client").class(), NeedsReauth);
        assert_eq!(oauth(400, "invalid_client_id").class(), NeedsReauth);
        assert_eq!(oauth(400, "redirect_uri_mismatch").class(), Permanent);
        assert_eq!(oauth(400, "unsupported_grant_type").class(), Permanent);
        assert_eq!(oauth(503, "server_error").class(), Retryable);
        assert_eq!(
            SalesforceError::Transport("reset".into()).class(),
            Retryable
        );
        assert_eq!(SalesforceError::Deadline("x".into()).class(), Retryable);
        assert_eq!(SalesforceError::BadSignature.class(), Permanent);
        assert_eq!(
            SalesforceError::Store(StoreError::Unavailable("x".into())).class(),
            Retryable
        );
    }
}
