//! The HTTP side (API Gateway HTTP API, payload v2, through `lambda_http`):
//! the admin and read routes of integration-api, and the public OAuth callback.

pub mod callback;
pub mod console;
pub mod erasure;
pub mod routes;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::connect::ConnectError;
use crate::domain::Actor;
use crate::domain::TenantId;
use crate::error::{Classify, ErrorClass};

/// JWT claims the API Gateway authorizer verified and placed in the request context.
pub const TENANT_CLAIM: &str = "tenant_id";
pub const ROLE_CLAIM: &str = "role";
pub const ADMIN_ROLE: &str = "admin";
/// Largest JSON body accepted.
const MAX_BODY: usize = 256 * 1024;

/// An error answered to the caller: a status, a stable code and a message that
/// never carries a secret or an internal detail; for a refused value, the field
/// and a stable reason (so that a page can say it next to the field, in the
/// admin's language).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<&'static str>,
    pub reason: Option<&'static str>,
    /// Seconds before asking again (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            reason: None,
            retry_after: (status == 503).then_some(30),
        }
    }

    pub fn response(&self) -> Response<Body> {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        if let Some(reason) = self.reason {
            body["reason"] = json!(reason);
        }
        let mut response = json_response(self.status, &body);
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = http::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match &e {
            ConnectError::Invalid { field, reason, .. } => ApiError {
                field: Some(field),
                reason: Some(reason),
                ..ApiError::new(400, "invalid_request", e.to_string())
            },
            ConnectError::Conflict(m) => ApiError::new(409, "conflict", m.clone()),
            ConnectError::NotFound(m) => ApiError::new(404, "not_found", m.clone()),
            ConnectError::TooSoon {
                message,
                retry_after,
            } => ApiError {
                retry_after: Some(*retry_after),
                ..ApiError::new(429, "too_many_requests", message.clone())
            },
            ConnectError::Salesforce(_) | ConnectError::Store(_) => {
                tracing::error!(error = %e, class = %e.class(), "request failed");
                match e.class() {
                    ErrorClass::NeedsReauth => ApiError::new(
                        409,
                        "needs_reauth",
                        "Salesforce refused the stored authorisation: reconnect the org",
                    ),
                    ErrorClass::Retryable => {
                        ApiError::new(503, "unavailable", "temporarily unavailable, retry later")
                    }
                    ErrorClass::Permanent => match e {
                        ConnectError::Salesforce(sf) => {
                            ApiError::new(502, "salesforce_error", sf.to_string())
                        }
                        _ => ApiError::new(500, "internal", "internal error"),
                    },
                }
            }
        }
    }
}

pub fn json_response<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    let mut response = Response::new(Body::from(text));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("cache-control", http::HeaderValue::from_static("no-store"));
    response
}

/// The caller, from the authorizer's claims. Missing or invalid claims: 401.
/// `admin`: the role claim must say so (403 otherwise).
pub fn actor(request: &Request, admin: bool) -> Result<Actor, ApiError> {
    let claims = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| &j.claims),
        _ => None,
    };
    let Some(claims) = claims else {
        return Err(ApiError::new(
            401,
            "unauthorized",
            "missing authorizer claims",
        ));
    };
    let tenant = claims
        .get(TENANT_CLAIM)
        .and_then(|t| TenantId::parse(t).ok())
        .ok_or_else(|| ApiError::new(401, "unauthorized", "missing or invalid tenant claim"))?;
    let user_id = claims
        .get("sub")
        .filter(|s| crate::domain::validate_external_id(s))
        .cloned()
        .ok_or_else(|| ApiError::new(401, "unauthorized", "missing or invalid subject claim"))?;
    if admin && claims.get(ROLE_CLAIM).map(String::as_str) != Some(ADMIN_ROLE) {
        return Err(ApiError::new(
            403,
            "forbidden",
            "this action needs the admin role",
        ));
    }
    Ok(Actor { tenant, user_id })
}

/// Whether the verified claims give the caller the admin role (the caller is
/// checked by [`actor`] first).
pub fn is_admin(request: &Request) -> bool {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get(ROLE_CLAIM))
            .is_some_and(|r| r == ADMIN_ROLE),
        _ => false,
    }
}

/// Parses a JSON body (at most 256 KiB).
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if bytes.len() > MAX_BODY {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            "the body exceeds 256 KiB",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::new(400, "invalid_json", format!("invalid JSON body: {e}")))
}

/// The path below `/integrations/salesforce/`, split into segments.
pub fn route_segments(request: &Request) -> Vec<String> {
    let raw = request.raw_http_path();
    let path = if raw.is_empty() {
        request.uri().path()
    } else {
        raw
    };
    path.trim_start_matches('/')
        .strip_prefix("integrations/salesforce")
        .unwrap_or("")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}
