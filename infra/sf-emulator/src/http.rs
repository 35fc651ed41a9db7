//! HTTP plumbing: one axum handler that routes by path, and the response type.

use crate::world::World;
use crate::{control, oauth, rest};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

/// Largest request body accepted (bytes).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// State shared by every request.
#[derive(Debug)]
pub struct Shared {
    /// The world, behind one lock (never held across an await).
    pub world: Mutex<World>,
    /// Bumped after every request and control operation: wakes the Pub/Sub
    /// subscriptions, which then look for new events.
    pub bus: tokio::sync::watch::Sender<u64>,
    /// Interval of the Pub/Sub keepalive responses (ms).
    pub keepalive_ms: AtomicU64,
}

impl Shared {
    /// Shared state around a world.
    pub fn new(world: World, keepalive_ms: u64) -> Shared {
        Shared {
            world: Mutex::new(world),
            bus: tokio::sync::watch::channel(0).0,
            keepalive_ms: AtomicU64::new(keepalive_ms),
        }
    }

    /// Wakes the subscriptions (something may have changed).
    pub fn changed(&self) {
        self.bus.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Locks the world (a poisoned lock is recovered: the state stays usable).
    pub fn lock(&self) -> MutexGuard<'_, World> {
        match self.world.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Body of a response.
#[derive(Debug, Clone)]
pub enum Body_ {
    /// JSON.
    Json(Value),
    /// HTML page.
    Html(String),
    /// Plain text.
    Text(String),
    /// Nothing.
    Empty,
}

/// A response under construction.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Body_,
}

impl Resp {
    /// JSON response.
    pub fn json(status: u16, body: Value) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Body_::Json(body),
        }
    }
    /// Empty response.
    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Body_::Empty,
        }
    }
    /// HTML response.
    pub fn html(status: u16, page: String) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Body_::Html(page),
        }
    }
    /// Plain text response.
    pub fn text(status: u16, text: &str) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Body_::Text(text.to_string()),
        }
    }
    /// 302 redirect.
    pub fn redirect(location: &str) -> Resp {
        Resp::empty(302).header("Location", location)
    }
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Resp {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// `[{"message","errorCode"}]` with a status.
    pub fn error(status: u16, code: &str, message: &str) -> Resp {
        Resp::json(status, json!([{ "message": message, "errorCode": code }]))
    }
    /// OAuth error `{"error","error_description"}`.
    pub fn oauth_error(status: u16, error: &str, description: &str) -> Resp {
        Resp::json(
            status,
            json!({ "error": error, "error_description": description }),
        )
    }
    /// 404 NOT_FOUND as Salesforce words it.
    pub fn not_found() -> Resp {
        Resp::error(404, "NOT_FOUND", "The requested resource does not exist")
    }

    fn into_response(self) -> Response {
        let (content_type, body) = match self.body {
            Body_::Json(j) => ("application/json;charset=UTF-8", j.to_string()),
            Body_::Html(h) if self.status == 414 || self.status == 431 => {
                ("text/html;charset=iso-8859-1", h)
            }
            Body_::Html(h) => ("text/html;charset=UTF-8", h),
            Body_::Text(t) => ("text/plain;charset=UTF-8", t),
            Body_::Empty => ("", String::new()),
        };
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let h = resp.headers_mut();
        if !content_type.is_empty() {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
        }
        for (k, v) in self.headers {
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                h.append(name, value);
            }
        }
        resp
    }
}

/// A request as the handlers see it.
#[derive(Debug, Clone)]
pub struct Req {
    /// Method.
    pub method: Method,
    /// Path (percent-decoding is left to the handlers).
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: bytes::Bytes,
}

impl Req {
    /// Decoded query parameters.
    pub fn query_params(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }
    /// One query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query_params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
    /// Decoded form body.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Longest request-target (path and query, as sent) Salesforce serves, and the
/// most the request line and header lines together may take: "In each REST
/// call, the maximum length for the combined URI and headers is 16,384 bytes
/// […] 431 Request Header Fields Too Large […] If the URI itself exceeds this
/// limit, the request returns a 414 URI Too Long error" (Salesforce Developer
/// Limits, API Request Limits). The emulator counts the whole request line and
/// every header line with its `: ` and CRLF, as Jetty (which answers with these
/// bodies) does: never more lenient than Salesforce.
pub const MAX_REQUEST_HEAD: usize = 16_384;

/// The refusal of an oversized request, as Salesforce's front end words it
/// (bodies quoted in jsforce#1134 and forcedotcom/cli#63), or None.
pub fn head_too_large(method: &Method, target: &str, headers: &HeaderMap) -> Option<Resp> {
    if target.len() > MAX_REQUEST_HEAD {
        return Some(bad_message(414, "URI Too Long"));
    }
    // "GET " + target + " HTTP/1.1\r\n", each "Name: value\r\n", the final CRLF.
    let line = method.as_str().len() + 1 + target.len() + " HTTP/1.1\r\n".len();
    let fields: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.as_bytes().len() + 2)
        .sum();
    (line + fields + 2 > MAX_REQUEST_HEAD)
        .then(|| bad_message(431, "Request Header Fields Too Large"))
}

fn bad_message(status: u16, reason: &str) -> Resp {
    Resp {
        status,
        headers: Vec::new(),
        body: Body_::Html(format!(
            "<h1>Bad Message {status}</h1><pre>reason: {reason}</pre>"
        )),
    }
}

/// The single axum handler.
pub async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    if !parts.uri.path().starts_with("/__emulator")
        && let Some(refused) = head_too_large(&parts.method, &target, &parts.headers)
    {
        return refused.into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Resp::error(413, "REQUEST_TOO_LARGE", "The request body is too large")
                .into_response();
        }
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    };
    let resp = route(&shared, req).await;
    shared.changed();
    resp.into_response()
}

async fn route(shared: &Arc<Shared>, req: Req) -> Resp {
    let path = req.path.clone();
    if path.starts_with("/__emulator") {
        return control::handle(shared, &req);
    }
    match path.as_str() {
        "/services/oauth2/authorize" => return oauth::authorize(shared, &req),
        "/services/oauth2/token" => return oauth::token(shared, &req).await,
        "/services/oauth2/revoke" => return oauth::revoke(shared, &req),
        "/services/data" | "/services/data/" => return versions(shared, &req),
        _ => {}
    }
    if path.starts_with("/id/") {
        return oauth::identity(shared, &req);
    }
    if let Some(rest_path) = path.strip_prefix("/services/data/") {
        return rest::handle(shared, &req, rest_path).await;
    }
    if path == "/" {
        return crate::ui::login(shared, &req);
    }
    if path.starts_with("/lightning/") {
        return crate::ui::record_page(shared, &req);
    }
    Resp::not_found()
}

fn versions(_shared: &Arc<Shared>, req: &Req) -> Resp {
    if req.method != Method::GET {
        return Resp::error(
            405,
            "METHOD_NOT_ALLOWED",
            &format!("HTTP Method '{}' not allowed. Allowed are GET", req.method),
        );
    }
    let list = crate::versions::served()
        .map(|v| {
            json!({
                "label": crate::versions::label(v),
                "url": format!("/services/data/v{v}.0"),
                "version": format!("{v}.0"),
            })
        })
        .collect();
    Resp::json(200, Value::Array(list))
}
