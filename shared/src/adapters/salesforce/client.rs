//! The one Salesforce REST client: the HTTP transport shared by every tenant
//! of a container, and a tenant's [`Session`] (one deadline) that sends each API
//! request with the tenant's token, retries what is transient with back-off,
//! and counts calls and API usage. The rest of a session is in its own files:
//! the token lifecycle (`tokens.rs`), reads (`queries.rs`), writes (`writes.rs`),
//! counters (`counters.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::counters::{ApiCounters, ApiKind};
use super::oauth::OAuthApp;
use super::pubsub::PubSubClient;
use super::tokens::{CachedToken, TenantTokens, Tokens};
use crate::backoff::Backoff;
use crate::config::SalesforceConfig;
use crate::domain::hosts::{HostPolicy, PubSubEndpoint, SalesforceOrigin};
use crate::domain::{TenantId, USAGE_FRESHNESS};
use crate::error::{Classify, ErrorClass};
use crate::ports::{
    AccessRefusal, AccessRefusals, LeaseStore, SalesforceApi, SalesforceSessions, SecretStore,
    TenantCredentials,
};
use crate::salesforce::Usage;
use crate::salesforce::error::SalesforceError;
use crate::salesforce::limits::parse_limit_info;
use crate::salesforce::pubsub::{PubSubAuth, PubSubError};

/// Salesforce refuses a request whose URI and headers together exceed 16,384
/// bytes (414 when the URI alone does, 431 otherwise).
pub const MAX_REQUEST_HEAD_BYTES: usize = 16_384;
/// Room kept for the headers (bearer token, host, user agent, options: about
/// 400 bytes in practice) when a statement is cut to fit: the rest is the URI's.
const HEADER_RESERVE: usize = 1_024;
/// The longest request URI (path and query, percent-encoded) the client builds.
pub const MAX_URI_BYTES: usize = MAX_REQUEST_HEAD_BYTES - HEADER_RESERVE;
const USER_AGENT: &str = concat!("modjo-salesforce/", env!("CARGO_PKG_VERSION"));
/// Largest query page Salesforce serves.
pub const MAX_BATCH_SIZE: u32 = 2000;
/// Attempts of a request Salesforce answers as busy.
const MAX_ATTEMPTS: u32 = 5;
/// Token refreshes one request may trigger: a session can die again after a
/// refresh (sessions expired during retries, a refresh by another container).
const MAX_REFRESHES: u32 = 3;
/// Per-request cap on top of the caller's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

struct Inner {
    http: reqwest::Client,
    api_version: String,
    client_name: String,
    hosts: HostPolicy,
    counters: ApiCounters,
    tokens: Mutex<HashMap<TenantId, Arc<TenantTokens>>>,
    usage: Mutex<HashMap<TenantId, Usage>>,
}

/// Shared by every tenant of a Lambda container; cheap to clone.
#[derive(Clone)]
pub struct SalesforceClient {
    inner: Arc<Inner>,
}

impl SalesforceClient {
    pub fn new(config: &SalesforceConfig) -> Result<Self, SalesforceError> {
        let http = reqwest::Client::builder()
            // Never follow redirects: a redirect could carry a token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| SalesforceError::Transport(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                api_version: config.api_version.clone(),
                client_name: config.client_name.clone(),
                hosts: HostPolicy::new(&config.extra_allowed_origins),
                counters: ApiCounters::default(),
                tokens: Mutex::new(HashMap::new()),
                usage: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub fn hosts(&self) -> &HostPolicy {
        &self.inner.hosts
    }

    pub fn counters(&self) -> &ApiCounters {
        &self.inner.counters
    }

    /// The last `Sforce-Limit-Info` usage seen for the tenant.
    pub fn usage(&self, tenant: &TenantId) -> Option<Usage> {
        self.inner.usage.lock().ok()?.get(tenant).copied()
    }

    /// The last usage seen for `tenant`, if seen within [`USAGE_FRESHNESS`].
    pub fn fresh_usage(&self, tenant: &TenantId) -> Option<Usage> {
        self.usage(tenant)
            .filter(|u| u.observed_at.elapsed() < USAGE_FRESHNESS)
    }

    /// The tenant's connected app, for the connect flow and for refreshes.
    pub fn oauth_app(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
    ) -> Result<OAuthApp, SalesforceError> {
        let login = self.inner.hosts.origin(&credentials.login_url)?;
        OAuthApp::new(
            &credentials.consumer_key,
            credentials.consumer_secret.clone(),
            &login,
            callback_url,
            self.inner.hosts.clone(),
        )
    }

    /// A session for one tenant's work, bounded by `deadline`.
    pub fn session<'a, S, D>(
        &'a self,
        tenant: &TenantId,
        secrets: &'a S,
        store: &'a D,
        deadline: Instant,
    ) -> Session<'a, S, D>
    where
        S: SecretStore,
        D: LeaseStore + AccessRefusals,
    {
        let cache = self
            .inner
            .tokens
            .lock()
            .map(|mut m| m.entry(tenant.clone()).or_default().clone())
            .unwrap_or_default();
        Session {
            client: self,
            tenant: tenant.clone(),
            tokens: Tokens::new(self, tenant.clone(), secrets, store, deadline, cache),
            refusals: store,
            deadline,
            answered: AtomicU64::new(0),
        }
    }

    /// Forgets the cached access token of a tenant (after disconnect).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut m) = self.inner.tokens.lock() {
            m.remove(tenant);
        }
    }

    fn record_usage(&self, tenant: &TenantId, headers: &reqwest::header::HeaderMap) {
        let Some(info) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .map(parse_limit_info)
        else {
            return;
        };
        if let (Some(api), Ok(mut usage)) = (info.api_usage, self.inner.usage.lock()) {
            usage.insert(
                tenant.clone(),
                Usage {
                    used: api.used,
                    max: api.max,
                    per_app: info.per_app.map(|(counter, _)| counter),
                    observed_at: Instant::now(),
                },
            );
        }
    }

    pub(super) fn data_path(&self, rest: &str) -> String {
        format!(
            "/services/data/v{}/{}",
            self.inner.api_version,
            rest.trim_start_matches('/')
        )
    }
}

/// The Salesforce port as a use case holds it: opens a tenant's sessions, with
/// what their token lifecycle needs (the tenant's secret, the refresh lease, the
/// refusals port).
pub struct Sessions<'a, S, D> {
    client: &'a SalesforceClient,
    secrets: &'a S,
    store: &'a D,
}

impl<S, D> Clone for Sessions<'_, S, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, D> Copy for Sessions<'_, S, D> {}

impl<'a, S, D> Sessions<'a, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    pub fn new(client: &'a SalesforceClient, secrets: &'a S, store: &'a D) -> Self {
        Self {
            client,
            secrets,
            store,
        }
    }

    /// The client shared by the container (API usage seen, calls counted).
    pub fn client(&self) -> &'a SalesforceClient {
        self.client
    }
}

impl<'a, S, D> SalesforceSessions for Sessions<'a, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    type Session = Session<'a, S, D>;

    fn open(&self, tenant: &TenantId, deadline: Instant) -> Session<'a, S, D> {
        self.client
            .session(tenant, self.secrets, self.store, deadline)
    }

    fn forget(&self, tenant: &TenantId) {
        self.client.forget(tenant);
    }

    fn fresh_usage(&self, tenant: &TenantId) -> Option<Usage> {
        self.client.fresh_usage(tenant)
    }

    fn calls_made(&self) -> u64 {
        self.client.counters().total()
    }
}

/// One tenant's requests, within one deadline.
pub struct Session<'a, S, D> {
    pub(super) client: &'a SalesforceClient,
    pub(super) tenant: TenantId,
    pub(super) tokens: Tokens<'a, S, D>,
    /// Told when Salesforce refuses the tenant's API access for good.
    refusals: &'a D,
    deadline: Instant,
    /// REST responses below 500 received in this session: Salesforce was there.
    answered: AtomicU64,
}

pub(super) struct Request<'r> {
    pub kind: ApiKind,
    pub method: Method,
    /// Path and query, absolute (`/services/data/...`).
    pub path: String,
    pub body: Option<&'r Value>,
    pub batch_size: Option<u32>,
}

impl<'a, S, D> Session<'a, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    /// The tenant's API origin (loads credentials if needed).
    pub async fn instance(&self) -> Result<SalesforceOrigin, SalesforceError> {
        Ok(self.tokens.current().await?.origin.clone())
    }

    pub(super) fn remaining(&self) -> Result<Duration, SalesforceError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(SalesforceError::Deadline("no time left".into()))
        } else {
            Ok(left.min(REQUEST_TIMEOUT))
        }
    }

    /// Sends one API request: token attached; on a refused session, a fresh token
    /// and again (a session refused after fresh tokens is retryable: only the token
    /// endpoint refusing the refresh token means re-authorising); transient
    /// failures retried with back-off and jitter within the deadline.
    pub(super) async fn send(&self, request: Request<'_>) -> Result<Bytes, SalesforceError> {
        let mut refreshes = 0u32;
        let mut attempt = 0u32;
        loop {
            let token = self.tokens.current().await?;
            let err = match self.send_once(&request, &token).await {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            if err.is_session_refused() {
                if refreshes >= MAX_REFRESHES {
                    tracing::warn!(tenant_id = %self.tenant, kind = request.kind.as_str(), refreshes, "Salesforce keeps refusing fresh sessions; retrying later");
                    return Err(err);
                }
                refreshes += 1;
                self.tokens.refresh(Some(&token)).await?;
                continue;
            }
            if err.class() == ErrorClass::NeedsReauth {
                // API access is off for the org or the connected user.
                let refusal = AccessRefusal::Api {
                    code: err.code().unwrap_or("error").to_string(),
                };
                self.refusals.access_refused(&self.tenant, &refusal).await?;
                return Err(err);
            }
            attempt += 1;
            if !err.is_transient() || attempt >= MAX_ATTEMPTS {
                return Err(err);
            }
            let pause = Backoff::SALESFORCE.delay(attempt);
            if Instant::now() + pause >= self.deadline {
                return Err(SalesforceError::Deadline(err.to_string()));
            }
            tracing::warn!(tenant_id = %self.tenant, kind = request.kind.as_str(), attempt, error = %err, "retrying Salesforce request");
            tokio::time::sleep(pause).await;
        }
    }

    async fn send_once(
        &self,
        request: &Request<'_>,
        token: &CachedToken,
    ) -> Result<Bytes, SalesforceError> {
        let url = token.origin.join(&request.path);
        let mut builder = self
            .client
            .http()
            .request(request.method.clone(), url)
            .bearer_auth(token.access.expose_secret())
            .header("accept", "application/json")
            .timeout(self.remaining()?);
        if let Some(n) = request.batch_size {
            builder = builder.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        if request.method != Method::GET {
            builder = builder.header(
                "Sforce-Call-Options",
                format!("client={}", self.client.inner.client_name),
            );
        }
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let built = builder.build().map_err(transport)?;
        let bytes = head_bytes(&built, token.origin.host());
        if bytes > MAX_REQUEST_HEAD_BYTES {
            return Err(SalesforceError::RequestTooLarge {
                bytes,
                limit: MAX_REQUEST_HEAD_BYTES,
            });
        }
        let response = self.client.http().execute(built).await.map_err(transport)?;
        self.client.inner.counters.add(request.kind);
        self.client.record_usage(&self.tenant, response.headers());
        let status = response.status();
        if !status.is_server_error() {
            self.answered.fetch_add(1, Ordering::Relaxed);
        }
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(SalesforceError::from_response(status.as_u16(), &body))
        }
    }
}

impl<S, D> SalesforceApi for Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Whether Salesforce answered any request of this session (a status below 500):
    /// if not, whatever failed was an outage, not this work's own fault.
    fn was_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed) > 0
    }

    /// The current access token and instance, for other Salesforce APIs (Pub/Sub).
    async fn bearer(&self) -> Result<(SecretString, SalesforceOrigin), SalesforceError> {
        let t = self.tokens.current().await?;
        Ok((t.access.clone(), t.origin.clone()))
    }

    /// Another API refused `expired`: refresh it (single-flight, as for REST).
    async fn renew(&self, expired: &SecretString) -> Result<(), SalesforceError> {
        let current = self.tokens.current().await?;
        if current.access.expose_secret() != expired.expose_secret() {
            return Ok(()); // already replaced
        }
        self.tokens.refresh(Some(&current)).await
    }

    type PubSub = PubSubClient;

    async fn pubsub(
        &self,
        endpoint: &PubSubEndpoint,
        auth: PubSubAuth,
    ) -> Result<PubSubClient, PubSubError> {
        PubSubClient::connect(endpoint, auth).await
    }
}

/// Parses a success body. Not JSON at all (a truncated or mangled body, a
/// proxy's page): [`SalesforceError::InvalidJson`], worth another try later. JSON
/// of another shape: [`SalesforceError::Decode`], which another try will not fix.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SalesforceError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => SalesforceError::Decode(e.to_string()),
        _ => SalesforceError::InvalidJson(e.to_string()),
    })
}

/// The bytes of a request's head as Salesforce counts them against its limit:
/// the request URI (path and query, as sent) and every header line, the ones the
/// HTTP client adds (host, user agent, content length) included.
fn head_bytes(request: &reqwest::Request, host: &str) -> usize {
    let url = request.url();
    let target = url.path().len() + url.query().map_or(0, |q| q.len() + 1);
    let line = |name: usize, value: usize| name + value + 4; // "name: value\r\n"
    let explicit: usize = request
        .headers()
        .iter()
        .map(|(k, v)| line(k.as_str().len(), v.len()))
        .sum();
    let host_port = host.len() + url.port().map_or(0, |p| p.to_string().len() + 1);
    let body = request
        .body()
        .and_then(reqwest::Body::as_bytes)
        .map_or(0, |b| {
            line("content-length".len(), b.len().to_string().len())
        });
    target
        + explicit
        + line("host".len(), host_port)
        + line("user-agent".len(), USER_AGENT.len())
        + body
}

pub(super) fn transport(e: reqwest::Error) -> SalesforceError {
    SalesforceError::Transport(e.to_string())
}

pub(super) fn checked_name(name: &str) -> Result<&str, SalesforceError> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(name)
    } else {
        Err(SalesforceError::Decode(format!(
            "invalid sObject name {name:?}"
        )))
    }
}

pub(super) fn checked_id(id: &str) -> Result<&str, SalesforceError> {
    if crate::salesforce::id::is_record_id(id) {
        Ok(id)
    } else {
        Err(SalesforceError::Decode(format!(
            "invalid Salesforce id {id:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    #[test]
    fn ids_and_names_are_checked_before_joining_paths() {
        assert!(checked_id("00T000000000001AAA").is_ok());
        assert!(checked_id("00T000000000001").is_ok());
        assert!(checked_id("../../limits").is_err());
        assert!(checked_id("00T00000000000/AAA").is_err());
        assert!(checked_name("Task").is_ok());
        assert!(checked_name("Task/../x").is_err());
    }

    #[test]
    fn a_request_head_counts_uri_and_every_header() {
        let http = reqwest::Client::new();
        let request = http
            .get("https://acme.my.salesforce.com/services/data/v64.0/query?q=SELECT+Id")
            .bearer_auth("t0ken")
            .build()
            .unwrap();
        let expected = "/services/data/v64.0/query?q=SELECT+Id".len()
            + "authorization: Bearer t0ken\r\n".len()
            + "host: acme.my.salesforce.com\r\n".len()
            + format!("user-agent: {USER_AGENT}\r\n").len();
        assert_eq!(head_bytes(&request, "acme.my.salesforce.com"), expected);
    }

    #[test]
    fn unparseable_answers_are_told_apart_from_unexpected_ones() {
        let truncated = decode::<Map<String, Value>>(br#"{"totalSize": 1, "records": ["#);
        assert!(matches!(truncated, Err(SalesforceError::InvalidJson(_))));
        let trailing_comma = decode::<Map<String, Value>>(br#"{"Id": "x",}"#);
        assert!(matches!(
            trailing_comma,
            Err(SalesforceError::InvalidJson(_))
        ));
        let html = decode::<Map<String, Value>>(b"<html>maintenance</html>");
        assert!(matches!(html, Err(SalesforceError::InvalidJson(_))));
        let shape = decode::<Vec<String>>(br#"{"records": []}"#);
        assert!(matches!(shape, Err(SalesforceError::Decode(_))));
    }
}
