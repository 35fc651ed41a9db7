//! A recording proxy in front of the emulator: what the product sends, measured
//! as the server receives it (request URI and head sizes), never as the product
//! counts it. It refuses what Salesforce refuses for size (414/431), and runs
//! test hooks after an exchange, before its answer goes back (to make something
//! happen at an exact point of a conversation).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Salesforce's limit on a request's URI and headers together.
pub const MAX_REQUEST_HEAD_BYTES: usize = 16_384;

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// Path and query, as received on the request line.
    pub uri: String,
    /// The URI plus every header line (`name: value\r\n`), as received.
    pub head_bytes: usize,
    pub status: u16,
}

/// Runs after an exchange; returns true when it is done (then removed).
pub type Hook = Box<dyn FnMut(&Exchange) -> bool + Send>;

struct Shared {
    upstream: String,
    http: reqwest::Client,
    log: Mutex<Vec<Exchange>>,
    hooks: Mutex<Vec<Hook>>,
}

pub struct Proxy {
    base_url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

/// A bound port, so the upstream can be told the proxy's URL before it starts.
pub struct Bound {
    listener: TcpListener,
    pub base_url: String,
}

impl Proxy {
    pub async fn bind() -> Bound {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        Bound { listener, base_url }
    }

    /// Serves `bound`, forwarding to `upstream`.
    pub fn start(bound: Bound, upstream: SocketAddr) -> Self {
        let shared = Arc::new(Shared {
            upstream: format!("http://{upstream}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            log: Mutex::new(Vec::new()),
            hooks: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(bound.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            base_url: bound.base_url,
            shared,
            stop: Some(stop),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.log.lock().expect("log").clone()
    }

    pub fn clear(&self) {
        self.shared.log.lock().expect("log").clear();
    }

    /// Runs `hook` after each exchange until it returns true.
    pub fn after(&self, hook: impl FnMut(&Exchange) -> bool + Send + 'static) {
        self.shared
            .hooks
            .lock()
            .expect("hooks")
            .push(Box::new(hook));
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

const HOP_BY_HOP: &[&str] = &["connection", "transfer-encoding", "content-length", "host"];

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let uri = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let head_bytes = uri.len()
        + parts
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let mut exchange = Exchange {
        method: parts.method.to_string(),
        uri: uri.clone(),
        head_bytes,
        status: 0,
    };
    let response = if uri.len() > MAX_REQUEST_HEAD_BYTES {
        too_large(414, "URI Too Long")
    } else if head_bytes > MAX_REQUEST_HEAD_BYTES {
        too_large(431, "Request Header Fields Too Large")
    } else {
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let mut upstream = shared
            .http
            .request(parts.method.clone(), format!("{}{uri}", shared.upstream))
            .body(body);
        for (k, v) in &parts.headers {
            if !HOP_BY_HOP.contains(&k.as_str()) {
                upstream = upstream.header(k, v);
            }
        }
        match upstream.send().await {
            Ok(answer) => {
                let mut response = Response::builder().status(answer.status());
                for (k, v) in answer.headers() {
                    if !HOP_BY_HOP.contains(&k.as_str()) {
                        response = response.header(k, v);
                    }
                }
                let bytes = answer.bytes().await.unwrap_or_default();
                response.body(Body::from(bytes)).expect("response")
            }
            Err(e) => too_large(502, &format!("proxy: upstream failed: {e}")),
        }
    };
    exchange.status = response.status().as_u16();
    shared.log.lock().expect("log").push(exchange.clone());
    let mut hooks = shared.hooks.lock().expect("hooks");
    hooks.retain_mut(|hook| !hook(&exchange));
    response
}

fn too_large(status: u16, text: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "text/html")
        .body(Body::from(format!(
            "<html><head><title>{status}</title></head><body>{text}</body></html>"
        )))
        .expect("response")
}
