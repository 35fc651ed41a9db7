//! A scripted Salesforce on an ephemeral port: each request gets the next reply
//! scripted for its method and path (recorded bodies from the fixtures, with their
//! real statuses and headers), and every request is recorded as received. For
//! what the emulator does not serve: recorded bodies verbatim, token endpoint
//! failures, answers of other Salesforce versions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::adapters::salesforce::SalesforceClient;
use shared::config::{DEFAULT_API_VERSION, SalesforceConfig};
use shared::domain::{Connection, ConnectionStatus, TenantId};
use shared::ports::{ConnectionStore, SecretStore, TenantCredentials};
use tokio::sync::oneshot;
use url::Url;

use crate::moto::AwsEnv;
use crate::unique;

/// The consumer secret of the scripted org's connected app.
pub const CONSUMER_SECRET: &str = "replay-consumer-secret";

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json;charset=UTF-8".into(),
            )],
            body: body.into(),
        }
    }

    pub fn html(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.into(),
        }
    }

    pub fn xml(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/xml".into())],
            body: body.into(),
        }
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent on the request line.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }
}

/// Builds an answer from the request (for answers that echo what was sent).
pub type Responder = Box<dyn Fn(&Received) -> Reply + Send>;

#[derive(Default)]
struct Script {
    replies: Vec<(String, String, VecDeque<Reply>)>,
    responders: Vec<(String, String, Responder)>,
    received: Vec<Received>,
}

pub struct ReplayServer {
    base_url: String,
    script: Arc<Mutex<Script>>,
    stop: Option<oneshot::Sender<()>>,
}

impl ReplayServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the replay server");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            base_url,
            script,
            stop: Some(stop),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Queues `reply` for the next `method` request whose path starts with `path`.
    pub fn on(&self, method: &str, path: &str, reply: Reply) -> &Self {
        let mut script = self.script.lock().expect("script");
        match script
            .replies
            .iter_mut()
            .find(|(m, p, _)| m == method && p == path)
        {
            Some((_, _, queue)) => queue.push_back(reply),
            None => script.replies.push((
                method.to_string(),
                path.to_string(),
                VecDeque::from([reply]),
            )),
        }
        self
    }

    /// Answers every `method` request whose path starts with `path` (and has no
    /// queued reply) with what `responder` builds from it.
    pub fn respond(
        &self,
        method: &str,
        path: &str,
        responder: impl Fn(&Received) -> Reply + Send + 'static,
    ) -> &Self {
        self.script.lock().expect("script").responders.push((
            method.to_string(),
            path.to_string(),
            Box::new(responder),
        ));
        self
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().expect("script").received.clone()
    }

    /// The requests received on paths starting with `path`.
    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.uri.starts_with(path))
            .collect()
    }

    /// `/services/data/v<default>/<rest>`.
    pub fn data(rest: &str) -> String {
        format!("/services/data/v{DEFAULT_API_VERSION}/{rest}")
    }

    /// A token endpoint answer: the recorded `body` re-signed with the replay app's
    /// secret (the recorded signatures were made with secrets nobody knows), its
    /// `instance_url` pointed at `instance` when given.
    pub fn token_reply(mut body: Value, instance: Option<&str>) -> Reply {
        if let Some(instance) = instance {
            body["instance_url"] = json!(instance);
        }
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let issued_at = body["issued_at"].as_str().unwrap_or_default().to_string();
        let signature = shared::adapters::salesforce::oauth::sign(
            &SecretString::from(CONSUMER_SECRET),
            &id,
            &issued_at,
        )
        .expect("signature");
        body["signature"] = json!(signature);
        Reply::json(200, body.to_string())
    }

    /// A client allowed to talk to these servers only.
    pub fn client(servers: &[&ReplayServer]) -> SalesforceClient {
        SalesforceClient::new(&SalesforceConfig {
            api_version: DEFAULT_API_VERSION.into(),
            client_name: "modjo".into(),
            extra_allowed_origins: servers
                .iter()
                .map(|s| Url::parse(s.base_url()).expect("replay URL"))
                .collect(),
            pubsub_endpoint: None,
        })
        .expect("client")
    }

    /// A `connected` tenant of this org, with a refresh token and, when given, a
    /// current access token.
    pub async fn connect_tenant(&self, aws: &AwsEnv, access: Option<&str>) -> TenantId {
        let tenant = TenantId::parse(&unique("replay")).expect("tenant id");
        aws.secrets()
            .put_credentials(
                &tenant,
                &TenantCredentials {
                    consumer_key: "3MVG9replay".into(),
                    consumer_secret: SecretString::from(CONSUMER_SECRET),
                    instance_url: self.base_url.clone(),
                    login_url: self.base_url.clone(),
                    refresh_token: Some(SecretString::from("5Aep861replay")),
                    access_token: access.map(SecretString::from),
                },
            )
            .await
            .expect("store credentials");
        let mut connection = Connection::new(tenant.clone(), Utc::now());
        connection.status = ConnectionStatus::Connected;
        connection.instance_url = Some(self.base_url.clone());
        aws.store()
            .save_connection(&connection)
            .await
            .expect("save connection");
        tenant
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(State(script): State<Arc<Mutex<Script>>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let uri = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let received = Received {
        method: parts.method.to_string(),
        uri: uri.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    let reply = {
        let mut script = script.lock().expect("script");
        let method = parts.method.as_str();
        let queued = script
            .replies
            .iter_mut()
            .filter(|(m, p, q)| m == method && uri.starts_with(p.as_str()) && !q.is_empty())
            .max_by_key(|(_, p, _)| p.len())
            .and_then(|(_, _, q)| q.pop_front());
        let built = match queued {
            Some(reply) => Some(reply),
            None => script
                .responders
                .iter()
                .filter(|(m, p, _)| m == method && uri.starts_with(p.as_str()))
                .max_by_key(|(_, p, _)| p.len())
                .map(|(_, _, responder)| responder(&received)),
        };
        script.received.push(received);
        built
    };
    // Unscripted: an answer no client retries, so a test fails at once.
    let reply = reply
        .unwrap_or_else(|| Reply::html(418, format!("unscripted request {} {uri}", parts.method)));
    let mut response = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    response
        .body(Body::from(reply.body))
        .expect("scripted response")
}
