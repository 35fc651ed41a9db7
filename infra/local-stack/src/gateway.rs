//! The local HTTP API, in the place of API Gateway: it turns HTTP requests into
//! HTTP API (payload v2) events for integration-api and oauth-callback, checks
//! the JWT on admin routes the way the JWT authorizer does (and puts its claims
//! in the request context), and turns the functions' answers back into HTTP.
//! As in template.yaml, the callback and the settings page's static routes are
//! public; everything else needs a valid JWT.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::functions::FunctionProcess;
use crate::jwt::Authorizer;

pub const CALLBACK_PATH: &str = "/integrations/salesforce/callback";
/// The settings page: where an admin starts, and where the callback sends the
/// browser back.
pub const CONSOLE_PATH: &str = "/integrations/salesforce/console";

struct Gateway {
    api: Arc<FunctionProcess>,
    callback: Arc<FunctionProcess>,
    authorizer: Arc<Authorizer>,
}

pub struct GatewayServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GatewayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GatewayServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Binds `listener` and serves the integration routes.
pub fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<FunctionProcess>,
    callback: Arc<FunctionProcess>,
    authorizer: Arc<Authorizer>,
) -> std::io::Result<GatewayServer> {
    let addr = listener.local_addr()?;
    let state = Arc::new(Gateway {
        api,
        callback,
        authorizer,
    });
    let app = Router::new()
        .route(CALLBACK_PATH, get(callback_route))
        .route(CONSOLE_PATH, get(console_route))
        .route(&format!("{CONSOLE_PATH}/{{asset}}"), get(console_route))
        .route("/integrations/salesforce/{*proxy}", any(api_route))
        .with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(GatewayServer { addr, task })
}

async fn callback_route(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event = http_event(
        &method,
        &uri,
        &headers,
        &body,
        peer,
        "GET /integrations/salesforce/callback",
        None,
    );
    invoke(&gw.callback, event).await
}

/// The settings page and its files: integration-api without the authorizer
/// (template.yaml: `Auth: Authorizer: NONE`).
async fn console_route(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route_key = if uri.path() == CONSOLE_PATH {
        format!("GET {CONSOLE_PATH}")
    } else {
        format!("GET {CONSOLE_PATH}/{{asset}}")
    };
    let event = http_event(&method, &uri, &headers, &body, peer, &route_key, None);
    invoke(&gw.api, event).await
}

async fn api_route(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    // As API Gateway: without a valid token the function is never invoked.
    let Some(claims) = gw.authorizer.verify(authorization) else {
        return (
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            r#"{"message":"Unauthorized"}"#,
        )
            .into_response();
    };
    let event = http_event(
        &method,
        &uri,
        &headers,
        &body,
        peer,
        "ANY /integrations/salesforce/{proxy+}",
        Some(claims),
    );
    invoke(&gw.api, event).await
}

/// An API Gateway HTTP API (payload format 2.0) event for this request.
fn http_event(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    peer: SocketAddr,
    route_key: &str,
    claims: Option<HashMap<String, String>>,
) -> Value {
    let mut header_map = serde_json::Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = value.to_str().unwrap_or("").to_string();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_string()));
            continue;
        }
        let key = name.as_str().to_ascii_lowercase();
        let merged = match header_map.get(&key).and_then(Value::as_str) {
            Some(existing) => format!("{existing},{value}"),
            None => value,
        };
        header_map.insert(key, Value::String(merged));
    }
    let raw_query = uri.query().unwrap_or("");
    let mut query = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.as_bytes()) {
        let merged = match query.get(k.as_ref()).and_then(Value::as_str) {
            Some(existing) => format!("{existing},{v}"),
            None => v.into_owned(),
        };
        query.insert(k.into_owned(), Value::String(merged));
    }
    let now = chrono::Utc::now();
    let user_agent = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost"),
        "domainPrefix": "local",
        "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1", "sourceIp": peer.ip().to_string(), "userAgent": user_agent},
        "requestId": format!("local-{:016x}", rand::random::<u64>()),
        "routeKey": route_key,
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let (body_text, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(body), true)
        }
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": context,
        "isBase64Encoded": encoded,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if let Some(proxy) = uri.path().strip_prefix("/integrations/salesforce/") {
        event["pathParameters"] = json!({"proxy": proxy});
    }
    if !body.is_empty() {
        event["body"] = Value::String(body_text);
    }
    event
}

/// Invokes the function and maps its HTTP API response back to HTTP.
async fn invoke(function: &FunctionProcess, event: Value) -> Response {
    let answer = match function.invoke(event, Duration::from_secs(30)).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(function = function.name(), error = %e, "invocation failed");
            // What API Gateway answers when the integration fails.
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                r#"{"message":"Internal Server Error"}"#,
            )
                .into_response();
        }
    };
    let status = answer
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = answer.get("body").and_then(Value::as_str).unwrap_or("");
    let bytes = if answer.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_default()
    } else {
        body.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    if let Some(headers) = answer.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let (Ok(n), Some(Ok(v))) = (
                axum::http::HeaderName::from_bytes(name.as_bytes()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(n, v);
            }
        }
    }
    if let Some(cookies) = answer.get("cookies").and_then(Value::as_array) {
        for c in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(c) {
                response.headers_mut().append("set-cookie", v);
            }
        }
    }
    response
}
