//! integration-api: the admin and read routes under `/integrations/salesforce/`,
//! and the settings page (public, static). The tenant always comes from the
//! verified claims, never from the path or body.
//!
//! [`ROUTES`] lists every route: the router dispatches on it, and the contract
//! test holds `docs/openapi.yaml` to it.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::{ApiError, actor, console, is_admin, json_body, json_response, route_segments};
use crate::app::{App, Store};
use crate::connect::{ConnectError, SettingsInput};
use crate::domain::{CallState, ModjoUser};
use crate::ports::{JobQueue, SecretStore};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Console,
    ConsoleAsset,
    GetSettings,
    PutSettings,
    Connect,
    GetStatus,
    GetUsers,
    AutoMatch,
    GetModjoUsers,
    PutModjoUsers,
    GetMappings,
    PutMapping,
    DeleteMapping,
    DeleteConnection,
    GetSync,
    RequestSync,
    ListCalls,
    GetCall,
    LinkCall,
    CallsNeedingAttention,
    GetRecord,
    CheckPermissions,
    Erase,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (API Gateway routes it without the authorizer): static files only.
    Public,
    /// Any user of the workspace (the authorizer's claims).
    Member,
    /// A workspace admin (`role: admin`).
    Admin,
}

/// A route: method and path below `/integrations/salesforce/`, where `{name}`
/// stands for one path segment.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub op: Op,
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, op: Op, access: Access) -> Route {
    Route {
        method,
        path,
        op,
        access,
    }
}

use Access::{Admin, Member, Public};

/// Every route integration-api serves.
pub const ROUTES: &[Route] = &[
    r("GET", "console", Op::Console, Public),
    r("GET", "console/{asset}", Op::ConsoleAsset, Public),
    r("GET", "settings", Op::GetSettings, Admin),
    r("PUT", "settings", Op::PutSettings, Admin),
    r("POST", "connect", Op::Connect, Admin),
    r("GET", "status", Op::GetStatus, Member),
    r("POST", "permissions/check", Op::CheckPermissions, Admin),
    r("GET", "users", Op::GetUsers, Admin),
    r("POST", "users/auto-match", Op::AutoMatch, Admin),
    r("GET", "modjo-users", Op::GetModjoUsers, Admin),
    r("PUT", "modjo-users", Op::PutModjoUsers, Admin),
    r("GET", "mappings", Op::GetMappings, Admin),
    r("PUT", "mappings/{modjoUserId}", Op::PutMapping, Admin),
    r("DELETE", "mappings/{modjoUserId}", Op::DeleteMapping, Admin),
    r("DELETE", "connection", Op::DeleteConnection, Admin),
    r("GET", "sync", Op::GetSync, Member),
    r("POST", "sync", Op::RequestSync, Admin),
    r("GET", "calls", Op::ListCalls, Member),
    r("GET", "calls/{callId}", Op::GetCall, Member),
    r("PUT", "calls/{callId}/link", Op::LinkCall, Member),
    r("GET", "attention", Op::CallsNeedingAttention, Member),
    r("GET", "records/{recordId}", Op::GetRecord, Member),
    r("POST", "erasures", Op::Erase, Admin),
];

/// The route `method` and `segments` name, with the values of its `{…}` segments.
pub fn find<'a>(method: &str, segments: &'a [String]) -> Option<(Route, Vec<&'a str>)> {
    ROUTES.iter().find_map(|route| {
        if route.method != method {
            return None;
        }
        let pattern: Vec<&str> = route.path.split('/').collect();
        if pattern.len() != segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, s) in pattern.iter().zip(segments) {
            if p.starts_with('{') {
                params.push(s.as_str());
            } else if p != s {
                return None;
            }
        }
        Some((*route, params))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsersBody {
    users: Vec<ModjoUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MappingBody {
    sf_user_id: String,
}

/// Serves one request. Errors are answered as JSON with a stable code.
/// `sync_jobs` receives the syncs an admin asks for.
pub async fn handle<S: Store, K: SecretStore, Q: JobQueue>(
    app: &App<S, K>,
    sync_jobs: &Q,
    request: Request,
) -> Response<Body> {
    let method = request.method().as_str().to_string();
    let segments = route_segments(&request);
    let span = tracing::info_span!("request", method = %method, path = %segments.join("/"), tenant_id = tracing::field::Empty);
    async {
        // Boxed: the routes' futures together are large; callers keep a pointer.
        let response = Box::pin(route(app, sync_jobs, &method, &segments, &request))
            .await
            .unwrap_or_else(|e| e.response());
        tracing::info!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

async fn route<S: Store, K: SecretStore, Q: JobQueue>(
    app: &App<S, K>,
    sync_jobs: &Q,
    method: &str,
    segments: &[String],
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let Some((route, params)) = find(method, segments) else {
        return Err(ApiError::new(404, "not_found", "no such route"));
    };
    let param = |i: usize| params.get(i).copied().unwrap_or_default();
    // The caller is checked before anything else the route does.
    let caller = match route.access {
        Access::Public => None,
        access => {
            let a = actor(request, access == Access::Admin)?;
            tracing::Span::current().record("tenant_id", a.tenant.as_str());
            Some(a)
        }
    };
    let who = || {
        caller
            .clone()
            .ok_or_else(|| ApiError::new(500, "internal", "internal error"))
    };
    let query = request.query_string_parameters();
    match route.op {
        Op::Console => Ok(console::page(request)),
        Op::ConsoleAsset => console::asset(param(0), request),
        Op::GetSettings => {
            let a = who()?;
            Ok(json_response(
                200,
                &app.connect().settings(&a.tenant).await?,
            ))
        }
        Op::PutSettings => {
            let a = who()?;
            let input: SettingsInput = json_body(request)?;
            Ok(json_response(
                200,
                &app.connect().save_settings(&a, input).await?,
            ))
        }
        Op::Connect => {
            let a = who()?;
            let force = query.first("force") == Some("true");
            let url = app.connect().start_connect(&a, force).await?;
            Ok(json_response(200, &json!({ "authorizeUrl": url.as_str() })))
        }
        Op::GetStatus => {
            let a = who()?;
            Ok(json_response(200, &app.connect().status(&a.tenant).await?))
        }
        Op::CheckPermissions => {
            let a = who()?;
            Ok(json_response(
                200,
                &app.connect().check_permissions(&a).await?,
            ))
        }
        Op::GetUsers => {
            let a = who()?;
            Ok(json_response(
                200,
                &json!({ "users": app.connect().salesforce_users(&a.tenant).await? }),
            ))
        }
        Op::AutoMatch => {
            let a = who()?;
            let body: UsersBody = json_body(request)?;
            Ok(json_response(
                200,
                &app.connect().auto_match(&a, body.users).await?,
            ))
        }
        Op::GetModjoUsers => {
            let a = who()?;
            Ok(json_response(
                200,
                &json!({ "users": app.connect().modjo_users(&a.tenant).await? }),
            ))
        }
        Op::PutModjoUsers => {
            let a = who()?;
            let body: UsersBody = json_body(request)?;
            Ok(json_response(
                200,
                &json!({ "users": app.connect().replace_modjo_users(&a, body.users).await? }),
            ))
        }
        Op::GetMappings => {
            let a = who()?;
            Ok(json_response(
                200,
                &json!({ "mappings": app.connect().mappings(&a.tenant).await? }),
            ))
        }
        Op::PutMapping => {
            let a = who()?;
            let body: MappingBody = json_body(request)?;
            Ok(json_response(
                200,
                &app.connect()
                    .set_mapping(&a, param(0), &body.sf_user_id)
                    .await?,
            ))
        }
        Op::DeleteMapping => {
            let a = who()?;
            app.connect().delete_mapping(&a, param(0)).await?;
            Ok(json_response(200, &json!({ "deleted": true })))
        }
        Op::DeleteConnection => {
            let a = who()?;
            let purge = query.first("purge") == Some("true");
            super::erasure::disconnect(app, &a, purge).await
        }
        Op::GetSync => {
            let a = who()?;
            let view = crate::read::sync_view(&app.store, &a.tenant, &app.config.budget)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "not_found",
                        "this workspace has no Salesforce connection",
                    )
                })?;
            Ok(json_response(200, &view))
        }
        Op::RequestSync => {
            let a = who()?;
            let at = app.connect().request_sync(&a, sync_jobs).await?;
            Ok(json_response(202, &json!({ "requestedAt": at })))
        }
        Op::ListCalls => {
            let a = who()?;
            let state = match query.first("state").filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(CallState::parse(s).ok_or_else(|| ApiError {
                    field: Some("state"),
                    reason: Some("format"),
                    ..ApiError::new(400, "invalid_request", format!("unknown call state {s:?}"))
                })?),
            };
            let limit = page_limit(query.first("limit"))?;
            let cursor = query
                .first("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            let view = crate::read::calls_view(&app.store, &a.tenant, state, limit, cursor)
                .await
                .map_err(cursor_error)?;
            Ok(json_response(200, &view))
        }
        Op::GetCall => {
            let a = who()?;
            let view = crate::read::call_view(&app.store, &a.tenant, param(0))
                .await
                .map_err(store_error)?
                .ok_or_else(|| ApiError::new(404, "not_found", "no such call"))?;
            Ok(json_response(200, &view))
        }
        Op::LinkCall => {
            let a = who()?;
            let input: crate::calls::link::LinkInput = json_body(request)?;
            // Boxed: the link's Salesforce writes make a large future, kept off
            // the stack of every other route.
            let outcome = Box::pin(crate::calls::link::link(
                &app.store,
                app.sessions(),
                &a,
                is_admin(request),
                param(0),
                input,
            ))
            .await?;
            let view = crate::read::call_view(&app.store, &a.tenant, &outcome.call_id)
                .await
                .map_err(store_error)?
                .ok_or_else(|| ApiError::new(404, "not_found", "no such call"))?;
            Ok(json_response(200, &view))
        }
        Op::CallsNeedingAttention => {
            let a = who()?;
            let limit = page_limit(query.first("limit"))?;
            let cursor = query
                .first("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            let view =
                crate::read::calls_needing_attention_view(&app.store, &a.tenant, limit, cursor)
                    .await
                    .map_err(cursor_error)?;
            Ok(json_response(200, &view))
        }
        Op::Erase => {
            let a = who()?;
            super::erasure::erase(app, &a, request).await
        }
        Op::GetRecord => {
            let a = who()?;
            let limit = query
                .first("timelineLimit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(50)
                .clamp(1, 500);
            let view = crate::read::record_view(&app.store, &a.tenant, param(0), limit)
                .await
                .map_err(store_error)?
                .ok_or_else(|| ApiError::new(404, "not_found", "no such record"))?;
            Ok(json_response(200, &view))
        }
    }
}

fn store_error(e: crate::ports::StoreError) -> ApiError {
    ApiError::from(ConnectError::Store(e))
}

/// A listing's store error: a forged or stale cursor is the caller's.
fn cursor_error(e: crate::ports::StoreError) -> ApiError {
    match e {
        crate::ports::StoreError::Rejected(m) if m == "invalid page token" => ApiError {
            field: Some("cursor"),
            reason: Some("format"),
            ..ApiError::new(400, "invalid_request", "invalid cursor")
        },
        other => store_error(other),
    }
}

/// A listing's `limit`: 25 by default, 1 to [`crate::ports::MAX_CALLS_PAGE`].
fn page_limit(given: Option<&str>) -> Result<usize, ApiError> {
    match given {
        None => Ok(25),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=crate::ports::MAX_CALLS_PAGE).contains(l))
            .ok_or_else(|| ApiError {
                field: Some("limit"),
                reason: Some("format"),
                ..ApiError::new(
                    400,
                    "invalid_request",
                    format!("limit is 1 to {}", crate::ports::MAX_CALLS_PAGE),
                )
            }),
    }
}

impl From<crate::calls::link::LinkError> for ApiError {
    fn from(e: crate::calls::link::LinkError) -> Self {
        use crate::calls::link::LinkError;
        match e {
            LinkError::Invalid {
                field,
                reason,
                message,
            } => ApiError {
                field: Some(field),
                reason: Some(reason),
                ..ApiError::new(400, "invalid_request", format!("{field}: {message}"))
            },
            LinkError::Forbidden => ApiError::new(403, "forbidden", e.to_string()),
            LinkError::NotFound => ApiError::new(404, "not_found", e.to_string()),
            LinkError::Conflict(m) => ApiError::new(409, "conflict", m),
            LinkError::Refused(_) => ApiError::new(400, "invalid_request", e.to_string()),
            LinkError::Work(crate::work::WorkError::Salesforce(sf)) => {
                ApiError::from(ConnectError::Salesforce(sf))
            }
            LinkError::Work(crate::work::WorkError::Store(st)) => store_error(st),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn routes_match_exactly_one_way() {
        let op = |method: &str, path: &str| {
            let segments = segs(path);
            find(method, &segments)
                .map(|(r, p)| (r.op, p.into_iter().map(str::to_string).collect::<Vec<_>>()))
        };
        let s = "mappings/usr_1";
        assert_eq!(op("PUT", s), Some((Op::PutMapping, vec!["usr_1".into()])));
        assert_eq!(
            op("DELETE", s),
            Some((Op::DeleteMapping, vec!["usr_1".into()]))
        );
        assert_eq!(op("GET", s), None);
        assert_eq!(op("GET", "calls").map(|f| f.0), Some(Op::ListCalls));
        assert_eq!(op("GET", "calls/c1").map(|f| f.0), Some(Op::GetCall));
        assert_eq!(op("GET", "calls/c1/x"), None);
        assert_eq!(op("GET", "console").map(|f| f.0), Some(Op::Console));
        assert_eq!(op("POST", "console"), None);
        assert_eq!(op("GET", ""), None);
    }

    #[test]
    fn only_the_page_is_public() {
        for route in ROUTES {
            assert_eq!(
                route.access == Access::Public,
                route.path == "console" || route.path.starts_with("console/"),
                "{} {}",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn no_two_routes_overlap() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                let same = a.method == b.method
                    && a.path.split('/').count() == b.path.split('/').count()
                    && a.path
                        .split('/')
                        .zip(b.path.split('/'))
                        .all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'));
                assert!(!same, "{} {} overlaps {}", a.method, a.path, b.path);
            }
        }
    }
}
