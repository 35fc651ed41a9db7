//! A proxy in front of moto: it adds a fixed latency to every DynamoDB request,
//! as a real table's network round trip would (moto answers in well under a
//! millisecond for small requests, which hides a design that waits on one request
//! after another), and counts DynamoDB requests by operation, on the side that
//! receives them. Other AWS requests pass through untouched.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

/// Largest request or response body relayed (DynamoDB's own limit is 16 MB).
const MAX_BODY: usize = 32 * 1024 * 1024;

struct Shared {
    upstream: String,
    latency: Duration,
    http: reqwest::Client,
    counts: Mutex<BTreeMap<String, u64>>,
    /// Time the upstream took to answer, by operation.
    upstream_time: Mutex<BTreeMap<String, Duration>>,
}

pub struct LatencyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl LatencyProxy {
    /// Relays to `upstream` (e.g. moto's endpoint), adding `dynamodb_latency` to
    /// each DynamoDB request.
    pub async fn start(upstream: &str, dynamodb_latency: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            latency: dynamodb_latency,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .map_err(std::io::Error::other)?,
            counts: Mutex::new(BTreeMap::new()),
            upstream_time: Mutex::new(BTreeMap::new()),
        });
        let app = Router::new().fallback(relay).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// DynamoDB requests received, by operation (`Query`, `TransactWriteItems`, …).
    pub fn dynamodb_requests(&self) -> BTreeMap<String, u64> {
        self.shared
            .counts
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// How long the upstream (moto) took to answer DynamoDB requests, summed by
    /// operation: the part of a run's time that is the emulator's, not the
    /// product's.
    pub fn upstream_time(&self) -> BTreeMap<String, Duration> {
        self.shared
            .upstream_time
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn reset_counts(&self) {
        if let Ok(mut c) = self.shared.counts.lock() {
            c.clear();
        }
        if let Ok(mut t) = self.shared.upstream_time.lock() {
            t.clear();
        }
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn relay(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.strip_prefix("DynamoDB_"))
        .and_then(|t| t.split('.').nth(1))
        .map(str::to_string);
    if let Some(op) = &operation {
        if let Ok(mut c) = shared.counts.lock() {
            *c.entry(op.clone()).or_default() += 1;
        }
        tokio::time::sleep(shared.latency).await;
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut forward = shared
        .http
        .request(parts.method, format!("{}{path}", shared.upstream))
        .body(bytes);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            forward = forward.header(name, value);
        }
    }
    let sent = std::time::Instant::now();
    let answer = match forward.send().await {
        Ok(a) => a,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    if let Some(op) = operation {
        if let Ok(mut t) = shared.upstream_time.lock() {
            *t.entry(op).or_default() += sent.elapsed();
        }
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}
