//! integration-api: the admin and read routes under `/integrations/salesforce/`.
//! The tenant always comes from the verified claims, never from the path or body.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use super::{ApiError, actor, json_body, json_response, route_segments};
use crate::app::{App, Store};
use crate::connect::ConnectError;
use crate::connect::{ModjoUser, SettingsInput};
use crate::ports::SecretStore;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AutoMatchBody {
    users: Vec<ModjoUser>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MappingBody {
    sf_user_id: String,
}

/// Serves one request. Errors are answered as JSON with a stable code.
pub async fn handle<S: Store, K: SecretStore>(app: &App<S, K>, request: Request) -> Response<Body> {
    let method = request.method().as_str().to_string();
    let segments = route_segments(&request);
    let span = tracing::info_span!("request", method = %method, path = %segments.join("/"), tenant_id = tracing::field::Empty);
    async {
        let response = route(app, &method, &segments, &request)
            .await
            .unwrap_or_else(|e| e.response());
        tracing::info!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

async fn route<S: Store, K: SecretStore>(
    app: &App<S, K>,
    method: &str,
    segments: &[String],
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let path: Vec<&str> = segments.iter().map(String::as_str).collect();
    let admin = |request: &Request| {
        let a = actor(request, true)?;
        tracing::Span::current().record("tenant_id", a.tenant.as_str());
        Ok::<_, ApiError>(a)
    };
    let member = |request: &Request| {
        let a = actor(request, false)?;
        tracing::Span::current().record("tenant_id", a.tenant.as_str());
        Ok::<_, ApiError>(a)
    };
    match (method, path.as_slice()) {
        ("GET", ["settings"]) => {
            let a = admin(request)?;
            Ok(json_response(200, &app.settings(&a.tenant).await?))
        }
        ("PUT", ["settings"]) => {
            let a = admin(request)?;
            let input: SettingsInput = json_body(request)?;
            Ok(json_response(200, &app.save_settings(&a, input).await?))
        }
        ("POST", ["connect"]) => {
            let a = admin(request)?;
            let force = request.query_string_parameters().first("force") == Some("true");
            let url = app.start_connect(&a, force).await?;
            Ok(json_response(200, &json!({ "authorizeUrl": url.as_str() })))
        }
        ("GET", ["status"]) => {
            let a = member(request)?;
            Ok(json_response(200, &app.status(&a.tenant).await?))
        }
        ("GET", ["users"]) => {
            let a = admin(request)?;
            Ok(json_response(
                200,
                &json!({ "users": app.salesforce_users(&a.tenant).await? }),
            ))
        }
        ("POST", ["users", "auto-match"]) => {
            let a = admin(request)?;
            let body: AutoMatchBody = json_body(request)?;
            Ok(json_response(200, &app.auto_match(&a, body.users).await?))
        }
        ("GET", ["mappings"]) => {
            let a = admin(request)?;
            Ok(json_response(
                200,
                &json!({ "mappings": app.mappings(&a.tenant).await? }),
            ))
        }
        ("PUT", ["mappings", modjo_user_id]) => {
            let a = admin(request)?;
            let body: MappingBody = json_body(request)?;
            Ok(json_response(
                200,
                &app.set_mapping(&a, modjo_user_id, &body.sf_user_id).await?,
            ))
        }
        ("DELETE", ["mappings", modjo_user_id]) => {
            let a = admin(request)?;
            app.delete_mapping(&a, modjo_user_id).await?;
            Ok(json_response(200, &json!({ "deleted": true })))
        }
        ("DELETE", ["connection"]) => {
            let a = admin(request)?;
            app.disconnect(&a).await?;
            Ok(json_response(200, &json!({ "status": "disconnected" })))
        }
        ("GET", ["sync"]) => {
            let a = member(request)?;
            let view = crate::read::sync_view(&app.store, &a.tenant)
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
        ("GET", ["calls", call_id]) => {
            let a = member(request)?;
            let view = crate::read::call_view(&app.store, &a.tenant, call_id)
                .await
                .map_err(store_error)?
                .ok_or_else(|| ApiError::new(404, "not_found", "no such call"))?;
            Ok(json_response(200, &view))
        }
        ("GET", ["records", id]) => {
            let a = member(request)?;
            let limit = request
                .query_string_parameters()
                .first("timelineLimit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(50)
                .clamp(1, 500);
            let view = crate::read::record_view(&app.store, &a.tenant, id, limit)
                .await
                .map_err(store_error)?
                .ok_or_else(|| ApiError::new(404, "not_found", "no such record"))?;
            Ok(json_response(200, &view))
        }
        _ => Err(ApiError::new(404, "not_found", "no such route")),
    }
}

fn store_error(e: crate::ports::StoreError) -> ApiError {
    ApiError::from(ConnectError::Store(e))
}
