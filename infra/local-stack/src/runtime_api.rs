//! A local implementation of the AWS Lambda Runtime API (2018-06-01), so that the
//! real function binaries run here exactly as in Lambda: the `lambda_runtime`
//! crate inside each binary polls `/runtime/invocation/next` and posts the
//! response or error back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How an invocation ended.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error (the Lambda "function error").
    #[error("function error: {0}")]
    Function(Value),
    /// The function failed during init (configuration, …).
    #[error("init error: {0}")]
    Init(Value),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The process died during the invocation (Lambda's `Runtime.ExitError`).
    #[error("the function process died: {0}")]
    Crashed(String),
    #[error("the function process is gone")]
    Gone,
}

enum Outcome {
    Response(Value),
    Error(Value),
}

struct Pending {
    id: String,
    payload: Value,
    deadline_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

struct Shared {
    function_arn: String,
    queue: Mutex<mpsc::Receiver<Pending>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<Value>>,
    /// Why the last process died, for the invocations it took down.
    exit: Mutex<Option<String>>,
    /// Raised when a process dies: its pending `next` long-poll (whose socket is
    /// gone) must not take the next invocation.
    generation: watch::Sender<u64>,
    /// `next` long-polls waiting for work: the process is idle and ready.
    waiting: AtomicU64,
    /// When the function first asked for an invocation: the end of its init.
    first_poll: watch::Sender<Option<Instant>>,
}

/// One function's Runtime API endpoint.
pub struct RuntimeApi {
    addr: SocketAddr,
    sender: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start(function: &str) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:eu-west-1:000000000000:function:{function}"),
            queue: Mutex::new(receiver),
            inflight: Mutex::new(HashMap::new()),
            init_error: Mutex::new(None),
            exit: Mutex::new(None),
            generation: watch::Sender::new(0),
            waiting: AtomicU64::new(0),
            first_poll: watch::Sender::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            sender,
            shared,
            next_id: AtomicU64::new(1),
            server,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API` for the function process.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// When the function first polled for an invocation (Lambda's end of init),
    /// or its init error.
    pub async fn first_poll(&self) -> Result<Instant, InvokeError> {
        let mut polled = self.shared.first_poll.subscribe();
        loop {
            if let Some(at) = *polled.borrow_and_update() {
                return Ok(at);
            }
            if let Some(err) = self.shared.init_error.lock().await.clone() {
                return Err(InvokeError::Init(err));
            }
            if polled.changed().await.is_err() {
                return Err(InvokeError::Gone);
            }
        }
    }

    /// Invokes the function with `payload` and waits for its answer.
    pub async fn invoke(&self, payload: Value, timeout: Duration) -> Result<Value, InvokeError> {
        if let Some(err) = self.shared.init_error.lock().await.clone() {
            return Err(InvokeError::Init(err));
        }
        let (reply, answer) = oneshot::channel();
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline_ms = SystemTime::now()
            .checked_add(timeout)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(u64::MAX);
        let pending = Pending {
            id: format!("local-{n:08}-{:08x}", rand::random::<u32>()),
            payload,
            deadline_ms,
            reply,
        };
        self.sender
            .send(pending)
            .await
            .map_err(|_| InvokeError::Gone)?;
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(InvokeError::Timeout(timeout)),
            Ok(Err(_)) => match self.shared.init_error.lock().await.clone() {
                Some(err) => Err(InvokeError::Init(err)),
                None => match self.shared.exit.lock().await.clone() {
                    Some(why) => Err(InvokeError::Crashed(why)),
                    None => Err(InvokeError::Gone),
                },
            },
            Ok(Ok(Outcome::Response(v))) => Ok(v),
            Ok(Ok(Outcome::Error(v))) => Err(InvokeError::Function(v)),
        }
    }
}

impl RuntimeApi {
    /// Waits until the process is idle and asking for work (at most `timeout`).
    pub async fn ready(&self, timeout: Duration) -> bool {
        let until = tokio::time::Instant::now() + timeout;
        while self.shared.waiting.load(Ordering::SeqCst) == 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The serving process died: the invocations it held fail now, as Lambda
    /// fails them, instead of waiting for their timeout.
    pub async fn fail_inflight(&self, why: &str) {
        *self.shared.exit.lock().await = Some(why.to_string());
        self.shared.generation.send_modify(|g| *g += 1);
        self.shared.inflight.lock().await.clear();
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // A process asking for work has initialised: an earlier one's init error is over.
    *shared.init_error.lock().await = None;
    let mut generation = shared.generation.subscribe();
    generation.mark_unchanged();
    shared.waiting.fetch_add(1, Ordering::SeqCst);
    let now = Instant::now();
    shared
        .first_poll
        .send_if_modified(|at| at.is_none() && at.replace(now).is_none());
    let pending = {
        let mut queue = shared.queue.lock().await;
        tokio::select! {
            p = queue.recv() => p,
            // The process that asked died meanwhile.
            _ = generation.changed() => None,
        }
    };
    shared.waiting.fetch_sub(1, Ordering::SeqCst);
    let Some(p) = pending else {
        return StatusCode::GONE.into_response();
    };
    shared.inflight.lock().await.insert(p.id.clone(), p.reply);
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", p.id.clone());
    set("lambda-runtime-deadline-ms", p.deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        shared.function_arn.clone(),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{}", p.id),
    );
    (StatusCode::OK, headers, Json(p.payload)).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Outcome::Response(parse(&body))).await
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Outcome::Error(parse(&body))).await
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    *shared.init_error.lock().await = Some(parse(&body));
    // Wake whoever waits for the end of init.
    shared.first_poll.send_modify(|_| {});
    // Fail whatever is in flight: the process is about to exit.
    shared.inflight.lock().await.clear();
    StatusCode::ACCEPTED
}

async fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.inflight.lock().await.remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}
