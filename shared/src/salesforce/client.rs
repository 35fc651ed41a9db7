//! The one Salesforce REST client: per-tenant tokens (cached, persisted,
//! refreshed single-flight under a lease), streamed queries and searches,
//! retries within a deadline, API budget tracking and call counting. A
//! [`Session`]'s writes are in `writes.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::Stream;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::time::Instant;
use url::Url;

use super::error::SalesforceError;
use super::instance::{HostPolicy, SalesforceOrigin};
use super::keyset::{KeysetQuery, Position};
use super::limits::{Counter, parse_limit_info};
use super::oauth::{Identity, OAuthApp};
use super::soql::Select;
use super::sosl::PhoneSearch;
use crate::backoff::Backoff;
use crate::config::SalesforceConfig;
use crate::domain::{ApiUsage, ConnectionStatus, TenantId, USAGE_FRESHNESS};
use crate::error::{Classify, ErrorClass};
use crate::ports::{ConnectionStore, LeaseStore, SecretStore, StoreError, TenantCredentials};

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
/// Lease that serialises token refreshes of one tenant across Lambda containers.
const REFRESH_LEASE: &str = "token-refresh";
const REFRESH_LEASE_TTL: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 5;
/// Token refreshes one request may trigger: a session can die again after a
/// refresh (sessions expired during retries, a refresh by another container).
const MAX_REFRESHES: u32 = 3;
/// Per-request cap on top of the caller's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The kinds of API call, counted separately (DESIGN §6: frugality is measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiKind {
    Query,
    QueryAll,
    QueryMore,
    Search,
    Create,
    Read,
    Update,
    Delete,
    CollectionsCreate,
    CollectionsUpdate,
    CollectionsRetrieve,
    Composite,
    Limits,
    Describe,
}

impl ApiKind {
    const ALL: [ApiKind; 14] = [
        ApiKind::Query,
        ApiKind::QueryAll,
        ApiKind::QueryMore,
        ApiKind::Search,
        ApiKind::Create,
        ApiKind::Read,
        ApiKind::Update,
        ApiKind::Delete,
        ApiKind::CollectionsCreate,
        ApiKind::CollectionsUpdate,
        ApiKind::CollectionsRetrieve,
        ApiKind::Composite,
        ApiKind::Limits,
        ApiKind::Describe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::Query => "query",
            ApiKind::QueryAll => "queryAll",
            ApiKind::QueryMore => "queryMore",
            ApiKind::Search => "search",
            ApiKind::Create => "create",
            ApiKind::Read => "read",
            ApiKind::Update => "update",
            ApiKind::Delete => "delete",
            ApiKind::CollectionsCreate => "collectionsCreate",
            ApiKind::CollectionsUpdate => "collectionsUpdate",
            ApiKind::CollectionsRetrieve => "collectionsRetrieve",
            ApiKind::Composite => "composite",
            ApiKind::Limits => "limits",
            ApiKind::Describe => "describe",
        }
    }
}

/// API calls made, by kind. Every request that reached Salesforce's REST API counts,
/// whatever its answer (token and identity calls are not API calls).
#[derive(Debug, Default)]
pub struct ApiCounters {
    counts: [AtomicU64; 14],
}

impl ApiCounters {
    fn add(&self, kind: ApiKind) {
        if let Some(i) = ApiKind::ALL.iter().position(|k| *k == kind) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, kind: ApiKind) -> u64 {
        ApiKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map(|i| self.counts[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Non-zero counts by kind name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        ApiKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.get(*k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// One page of a keyset read, and the position after its last record.
#[derive(Debug, Clone)]
pub struct KeysetPage {
    pub records: Vec<Map<String, Value>>,
    /// Where the next read starts: the last record's `(SystemModstamp, Id)`.
    pub position: Option<Position>,
    pub done: bool,
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct QueryPage<T> {
    pub total_size: u64,
    pub done: bool,
    pub records: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPage<T> {
    total_size: u64,
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
    records: Vec<T>,
}

/// The last API usage seen for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The org's daily allocation (`api-usage`).
    pub used: u64,
    pub max: u64,
    /// The connected app's own cap (`per-app-api-usage`), when the org set one.
    pub per_app: Option<Counter>,
    /// When the response carrying it arrived.
    pub observed_at: Instant,
}

impl Usage {
    /// As stored and shown: observed at a wall-clock time.
    pub fn to_api_usage(self) -> ApiUsage {
        let age = chrono::Duration::from_std(self.observed_at.elapsed()).unwrap_or_default();
        ApiUsage {
            used: self.used,
            max: self.max,
            observed_at: Utc::now() - age,
        }
    }
}

struct CachedToken {
    access: SecretString,
    origin: SalesforceOrigin,
}

impl CachedToken {
    fn same_as(&self, other: &CachedToken) -> bool {
        self.access.expose_secret() == other.access.expose_secret()
    }
}

#[derive(Default)]
struct TenantTokens {
    refresh: tokio::sync::Mutex<()>,
    current: RwLock<Option<Arc<CachedToken>>>,
}

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
        D: LeaseStore + ConnectionStore,
    {
        let tokens = self
            .inner
            .tokens
            .lock()
            .map(|mut m| m.entry(tenant.clone()).or_default().clone())
            .unwrap_or_default();
        Session {
            client: self,
            tenant: tenant.clone(),
            secrets,
            store,
            deadline,
            tokens,
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

/// One tenant's requests, within one deadline.
pub struct Session<'a, S, D> {
    pub(super) client: &'a SalesforceClient,
    tenant: TenantId,
    secrets: &'a S,
    store: &'a D,
    deadline: Instant,
    tokens: Arc<TenantTokens>,
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
    D: LeaseStore + ConnectionStore,
{
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether Salesforce answered any request of this session (a status below 500):
    /// if not, whatever failed was an outage, not this work's own fault.
    pub fn was_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed) > 0
    }

    /// The current access token and instance, for other Salesforce APIs (Pub/Sub).
    pub async fn bearer(&self) -> Result<(SecretString, SalesforceOrigin), SalesforceError> {
        let t = self.token().await?;
        Ok((t.access.clone(), t.origin.clone()))
    }

    /// Another API refused `expired`: refresh it (single-flight, as for REST).
    pub async fn renew(&self, expired: &SecretString) -> Result<(), SalesforceError> {
        let current = self.token().await?;
        if current.access.expose_secret() != expired.expose_secret() {
            return Ok(()); // already replaced
        }
        self.refresh(Some(&current)).await
    }

    /// The tenant's API origin (loads credentials if needed).
    pub async fn instance(&self) -> Result<SalesforceOrigin, SalesforceError> {
        Ok(self.token().await?.origin.clone())
    }

    /// `GET …/query` (or `queryAll`, which includes deleted rows), one page at a time,
    /// following `nextRecordsUrl`. Memory holds one page whatever the result size.
    /// For large reads prefer [`Self::keyset_pages`], which survives a dead locator.
    pub fn query_pages<'s, T>(
        &'s self,
        soql: &str,
        all: bool,
    ) -> impl Stream<Item = Result<QueryPage<T>, SalesforceError>> + 's
    where
        T: DeserializeOwned + Send + 's,
    {
        let first = self.query_path(soql, all);
        futures::stream::try_unfold(Some(first), move |next| async move {
            let Some((path, kind)) = next else {
                return Ok(None);
            };
            let (page, next_url) = self.fetch_page::<T>(path, kind).await?;
            Ok(Some((page, next_url.map(|url| (url, ApiKind::QueryMore)))))
        })
    }

    /// Reads `query` in `(SystemModstamp, Id)` order from just after `after`, one page
    /// at a time. When Salesforce drops the query locator (it belongs to the session,
    /// so a token refresh kills it; it also expires), the query is issued again from
    /// just after the last record returned: nothing is lost or repeated.
    pub fn keyset_pages<'s>(
        &'s self,
        query: KeysetQuery,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<KeysetPage, SalesforceError>> + 's {
        struct State {
            query: KeysetQuery,
            last: Option<Position>,
            next: Option<String>,
            finished: bool,
            restarts: u32,
        }
        let state = State {
            query,
            last: after,
            next: None,
            finished: false,
            restarts: 0,
        };
        futures::stream::try_unfold(state, move |mut state| async move {
            loop {
                if state.finished {
                    return Ok(None);
                }
                let (path, kind) = match state.next.take() {
                    Some(url) => (url, ApiKind::QueryMore),
                    None => {
                        let soql = state.query.render(state.last.as_ref())?;
                        self.query_path(&soql, state.query.include_deleted)
                    }
                };
                let resumed = kind == ApiKind::QueryMore;
                let (page, next_url) = match self.fetch_page::<Map<String, Value>>(path, kind).await
                {
                    Ok(fetched) => fetched,
                    Err(e)
                        if resumed
                            && e.code() == Some("INVALID_QUERY_LOCATOR")
                            && state.restarts < 3 =>
                    {
                        state.restarts += 1;
                        tracing::info!(tenant_id = %self.tenant, object = state.query.object, "query locator gone; resuming from the last record");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if let Some(last) = page.records.last() {
                    state.last = Some(Position::of(last).ok_or_else(|| {
                        SalesforceError::Decode("keyset record without Id or SystemModstamp".into())
                    })?);
                }
                state.finished = next_url.is_none();
                state.next = next_url;
                let out = KeysetPage {
                    records: page.records,
                    position: state.last.clone(),
                    done: state.finished,
                };
                return Ok(Some((out, state)));
            }
        })
    }

    /// The path of a first page, and its kind of call.
    fn query_path(&self, soql: &str, all: bool) -> (String, ApiKind) {
        let (endpoint, kind) = if all {
            ("queryAll", ApiKind::QueryAll)
        } else {
            ("query", ApiKind::Query)
        };
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        (
            self.client.data_path(&format!("{endpoint}?q={encoded}")),
            kind,
        )
    }

    /// One page, and the `nextRecordsUrl` to follow when there is more.
    async fn fetch_page<T: DeserializeOwned>(
        &self,
        path: String,
        kind: ApiKind,
    ) -> Result<(QueryPage<T>, Option<String>), SalesforceError> {
        let bytes = self
            .send(Request {
                kind,
                method: Method::GET,
                path,
                body: None,
                batch_size: Some(MAX_BATCH_SIZE),
            })
            .await?;
        let page: RawPage<T> = decode(&bytes)?;
        let next = match (page.done, page.next_records_url) {
            (false, Some(url)) => Some(checked_next_url(&url)?),
            (false, None) => {
                return Err(SalesforceError::Decode(
                    "done=false without nextRecordsUrl".into(),
                ));
            }
            (true, _) => None,
        };
        Ok((
            QueryPage {
                total_size: page.total_size,
                done: page.done,
                records: page.records,
            },
            next,
        ))
    }

    /// Every record of a (small) query, all pages collected.
    pub async fn query_all_pages<T>(&self, soql: &str, all: bool) -> Result<Vec<T>, SalesforceError>
    where
        T: DeserializeOwned + Send,
    {
        use futures::TryStreamExt;
        let pages: Vec<QueryPage<T>> = self.query_pages(soql, all).try_collect().await?;
        Ok(pages.into_iter().flat_map(|p| p.records).collect())
    }

    /// Every record of `select`, in as few requests as Salesforce's URI limit
    /// allows: one query when the statement fits in [`MAX_URI_BYTES`] once
    /// encoded, else its `IN` lists cut across several (each one API call, counted
    /// and recorded like any other) and their rows merged, each record once (by Id).
    /// Rows come in no particular order across parts.
    pub async fn query_select(
        &self,
        select: &Select,
        all: bool,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let statements =
            select.render_within(|soql| self.query_path(soql, all).0.len() <= MAX_URI_BYTES)?;
        if statements.len() > 1 {
            tracing::info!(tenant_id = %self.tenant, queries = statements.len(), "a lookup cut into several queries to fit Salesforce's URI limit");
        }
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        for soql in &statements {
            let page: Vec<Map<String, Value>> = self.query_all_pages(soql, all).await?;
            for row in page {
                let first = match row.get("Id").and_then(Value::as_str) {
                    Some(id) => seen.insert(id.to_string()),
                    None => true,
                };
                if first {
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    /// Every record a phone search finds, in as few SOSL requests as Salesforce's
    /// limits allow (URI length, and 4,000 characters of search query), each
    /// record once (by Id).
    pub async fn search_phones(
        &self,
        search: &PhoneSearch,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let statements =
            search.render_within(|sosl| self.search_path(sosl).len() <= MAX_URI_BYTES)?;
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for sosl in &statements {
            for record in self.search(sosl).await? {
                let first = match record.get("Id").and_then(Value::as_str) {
                    Some(id) => seen.insert(id.to_string()),
                    None => true,
                };
                if first {
                    found.push(record);
                }
            }
        }
        Ok(found)
    }

    fn search_path(&self, sosl: &str) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(sosl.as_bytes()).collect();
        self.client.data_path(&format!("search/?q={encoded}"))
    }

    /// `GET …/search?q=` (SOSL): the found records, whichever object they belong to.
    /// Both shapes Salesforce answered over the versions are read: `searchRecords`,
    /// and the bare array of API 35.0 and before.
    pub async fn search(&self, sosl: &str) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let bytes = self
            .send(Request {
                kind: ApiKind::Search,
                method: Method::GET,
                path: self.search_path(sosl),
                body: None,
                batch_size: None,
            })
            .await?;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum SearchShape {
            Wrapped {
                #[serde(rename = "searchRecords")]
                search_records: Vec<Map<String, Value>>,
            },
            Bare(Vec<Map<String, Value>>),
        }
        Ok(match decode::<SearchShape>(&bytes)? {
            SearchShape::Wrapped { search_records } => search_records,
            SearchShape::Bare(v) => v,
        })
    }

    /// `GET …/sobjects/<object>/<id>?fields=…`
    pub async fn read(
        &self,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Map<String, Value>, SalesforceError> {
        let bytes = self
            .send(Request {
                kind: ApiKind::Read,
                method: Method::GET,
                path: self.client.data_path(&format!(
                    "sobjects/{}/{}?fields={}",
                    checked_name(object)?,
                    checked_id(id)?,
                    fields.join(",")
                )),
                body: None,
                batch_size: None,
            })
            .await?;
        decode(&bytes)
    }

    /// `GET …/limits/` (costs one call).
    pub async fn limits(&self) -> Result<Value, SalesforceError> {
        let bytes = self
            .send(Request {
                kind: ApiKind::Limits,
                method: Method::GET,
                path: self.client.data_path("limits/"),
                body: None,
                batch_size: None,
            })
            .await?;
        decode(&bytes)
    }

    /// `GET …/sobjects/` (Describe Global: the objects available to the connected
    /// user, with what they may do; costs one call).
    pub async fn describe_global(&self) -> Result<Value, SalesforceError> {
        let bytes = self
            .send(Request {
                kind: ApiKind::Describe,
                method: Method::GET,
                path: self.client.data_path("sobjects/"),
                body: None,
                batch_size: None,
            })
            .await?;
        decode(&bytes)
    }

    /// Reads the identity service (`id` URL from the token response).
    pub async fn identity(&self, identity_url: &str) -> Result<Identity, SalesforceError> {
        let url = self.client.hosts().check_url(identity_url)?;
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let response = self
                .client
                .http()
                .get(url.clone())
                .bearer_auth(token.access.expose_secret())
                .header("accept", "application/json")
                .timeout(self.remaining()?)
                .send()
                .await
                .map_err(transport)?;
            let status = response.status();
            let body = response.bytes().await.map_err(transport)?;
            if status.is_success() {
                return decode(&body);
            }
            // The identity service answers 403 (not 401) to a dead token.
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) && !refreshed
            {
                refreshed = true;
                self.refresh(Some(&token)).await?;
                continue;
            }
            return Err(SalesforceError::from_response(status.as_u16(), &body));
        }
    }

    fn remaining(&self) -> Result<Duration, SalesforceError> {
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
            let token = self.token().await?;
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
                self.refresh(Some(&token)).await?;
                continue;
            }
            if err.class() == ErrorClass::NeedsReauth {
                // API access is off for the org or the connected user: the status says
                // so, and parked work is replayed once an admin reconnects.
                let reason = format!(
                    "Salesforce refused API access ({}); an administrator must enable API access for the connected user, then reconnect",
                    err.code().unwrap_or("error")
                );
                mark_needs_reauth(self.store, &self.tenant, &reason).await?;
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

    /// The cached access token, else the one persisted in the tenant's secret, else a
    /// fresh one from the refresh token.
    async fn token(&self) -> Result<Arc<CachedToken>, SalesforceError> {
        if let Some(t) = self.tokens.current.read().ok().and_then(|c| c.clone()) {
            return Ok(t);
        }
        let creds = self.credentials().await?;
        match &creds.access_token {
            Some(access) => Ok(self.adopt(access.clone(), &creds.instance_url)?),
            None => {
                self.refresh(None).await?;
                self.tokens
                    .current
                    .read()
                    .ok()
                    .and_then(|c| c.clone())
                    .ok_or_else(|| {
                        SalesforceError::NeedsReauth("no access token after refresh".into())
                    })
            }
        }
    }

    async fn credentials(&self) -> Result<TenantCredentials, SalesforceError> {
        self.secrets
            .get_credentials(&self.tenant)
            .await?
            .ok_or_else(|| {
                SalesforceError::NeedsReauth(
                    "no Salesforce credentials stored for this tenant".into(),
                )
            })
    }

    fn adopt(
        &self,
        access: SecretString,
        instance_url: &str,
    ) -> Result<Arc<CachedToken>, SalesforceError> {
        let origin = self.client.hosts().origin(instance_url)?;
        let token = Arc::new(CachedToken { access, origin });
        if let Ok(mut current) = self.tokens.current.write() {
            *current = Some(token.clone());
        }
        Ok(token)
    }

    /// Replaces the access token that failed (`None`: there was none). Single-flight
    /// within the process (a mutex), and across containers (a DynamoDB lease), so that
    /// with refresh-token rotation two refreshes never race and the only valid refresh
    /// token is never lost: the new one is persisted before the access token is used.
    async fn refresh(&self, failed: Option<&CachedToken>) -> Result<(), SalesforceError> {
        let _in_process = self.tokens.refresh.lock().await;
        let latest = self.tokens.current.read().ok().and_then(|c| c.clone());
        if let Some(latest) = latest {
            if failed.is_none_or(|f| !f.same_as(&latest)) {
                return Ok(()); // another task of this process already refreshed
            }
        }
        let holder = format!("refresh-{:016x}", rand::random::<u64>());
        loop {
            let lease = self
                .store
                .acquire_lease(
                    &self.tenant,
                    REFRESH_LEASE,
                    &holder,
                    REFRESH_LEASE_TTL,
                    Utc::now(),
                )
                .await?;
            if lease.is_some() {
                break;
            }
            // Another container is refreshing: adopt its token as soon as it lands.
            if let Some(done) = self.refreshed_elsewhere(failed).await? {
                self.adopt(done.0, &done.1)?;
                return Ok(());
            }
            if Instant::now() + Duration::from_millis(250) >= self.deadline {
                return Err(SalesforceError::Deadline(
                    "waiting for another token refresh".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let outcome = self.refresh_holding_lease(failed).await;
        if let Err(e) = self
            .store
            .release_lease(&self.tenant, REFRESH_LEASE, &holder)
            .await
        {
            tracing::warn!(tenant_id = %self.tenant, error = %e, "could not release the token-refresh lease; it will expire");
        }
        outcome
    }

    /// A token different from the one that failed, already in the secret.
    async fn refreshed_elsewhere(
        &self,
        failed: Option<&CachedToken>,
    ) -> Result<Option<(SecretString, String)>, SalesforceError> {
        let creds = self.credentials().await?;
        Ok(newer_token(&creds, failed).map(|token| (token, creds.instance_url)))
    }

    async fn refresh_holding_lease(
        &self,
        failed: Option<&CachedToken>,
    ) -> Result<(), SalesforceError> {
        // Re-read under the lease: another container may have refreshed just before.
        let mut creds = self.credentials().await?;
        if let Some(access) = newer_token(&creds, failed) {
            self.adopt(access, &creds.instance_url)?;
            return Ok(());
        }
        let refresh_token = creds
            .refresh_token
            .clone()
            .ok_or_else(|| SalesforceError::NeedsReauth("no refresh token stored".into()))?;
        // The callback URL plays no part in a refresh; the login host is what matters.
        let placeholder = Url::parse("https://invalid.invalid/")
            .map_err(|e| SalesforceError::Decode(e.to_string()))?;
        let app = self.client.oauth_app(&creds, &placeholder)?;
        let mut tries = 0u32;
        let grant = loop {
            let err = match app.refresh(self.client.http(), &refresh_token).await {
                Ok(g) => break g,
                Err(e) => e,
            };
            if err.class() == ErrorClass::NeedsReauth {
                let reason = format!(
                    "Salesforce refused the stored authorisation ({}); reconnect the org",
                    err.code().unwrap_or("error")
                );
                mark_needs_reauth(self.store, &self.tenant, &reason).await?;
                return Err(SalesforceError::NeedsReauth(reason));
            }
            // Busy (5xx, `unknown_error`), or the same refresh token being used at
            // that instant (another refresh in flight): wait and try again.
            tries += 1;
            let pause = Backoff::SALESFORCE.delay(tries);
            if !err.is_transient()
                || tries >= MAX_ATTEMPTS
                || Instant::now() + pause >= self.deadline
            {
                return Err(err);
            }
            tracing::warn!(tenant_id = %self.tenant, attempt = tries, error = %err, "token refresh failed transiently; retrying");
            tokio::time::sleep(pause).await;
        };
        creds.access_token = Some(grant.access_token.clone());
        if let Some(rotated) = grant.refresh_token {
            creds.refresh_token = Some(rotated);
        }
        creds.instance_url = grant.instance.as_str().to_string();
        // Persist first: with rotation, the old refresh token is already dead.
        self.secrets.put_credentials(&self.tenant, &creds).await?;
        self.adopt(grant.access_token, grant.instance.as_str())?;
        tracing::info!(tenant_id = %self.tenant, "Salesforce access token refreshed");
        Ok(())
    }
}

/// Sets the tenant's connection to `needs_reauth` with a reason an admin understands.
pub async fn mark_needs_reauth<D: ConnectionStore>(
    store: &D,
    tenant: &TenantId,
    reason: &str,
) -> Result<(), StoreError> {
    let updated = crate::app::update_connection(store, tenant, |c| {
        if c.status != ConnectionStatus::Connected {
            return false;
        }
        c.status = ConnectionStatus::NeedsReauth;
        c.status_reason = Some(reason.to_string());
        true
    })
    .await?;
    if updated.is_some() {
        tracing::warn!(tenant_id = %tenant, reason, "connection needs re-authorisation");
    }
    Ok(())
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

fn transport(e: reqwest::Error) -> SalesforceError {
    SalesforceError::Transport(e.to_string())
}

/// `nextRecordsUrl` is relative to the instance; anything else is refused.
fn checked_next_url(url: &str) -> Result<String, SalesforceError> {
    let ok = url.starts_with("/services/data/")
        && !url.contains("..")
        && !url.contains("//")
        && !url.contains('\\')
        && url.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(url.to_string())
    } else {
        Err(SalesforceError::Decode(format!(
            "unexpected nextRecordsUrl {url:?}"
        )))
    }
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

/// The stored access token, when it is not the one that failed.
fn newer_token(creds: &TenantCredentials, failed: Option<&CachedToken>) -> Option<SecretString> {
    let stored = creds.access_token.as_ref()?;
    failed
        .is_none_or(|f| stored.expose_secret() != f.access.expose_secret())
        .then(|| stored.clone())
}

pub(super) fn checked_id(id: &str) -> Result<&str, SalesforceError> {
    if super::id::is_record_id(id) {
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

    #[test]
    fn next_records_url_must_stay_on_the_instance() {
        assert!(checked_next_url("/services/data/v62.0/query/01gD0000000001-2000").is_ok());
        for bad in [
            "https://evil.com/services/data/v62.0/query/x",
            "//evil.com/services/data/",
            "/services/data/../../id",
            "/other",
            "/services/data/v62.0/query/x y",
        ] {
            assert!(checked_next_url(bad).is_err(), "{bad}");
        }
    }

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
    fn unparseable_and_unexpected_answers_are_told_apart() {
        let truncated = decode::<Map<String, Value>>(br#"{"totalSize": 1, "records": ["#);
        assert!(matches!(truncated, Err(SalesforceError::InvalidJson(_))));
        let trailing_comma = decode::<Map<String, Value>>(br#"{"Id": "x",}"#);
        assert!(matches!(
            trailing_comma,
            Err(SalesforceError::InvalidJson(_))
        ));
        let html = decode::<Map<String, Value>>(b"<html>maintenance</html>");
        assert!(matches!(html, Err(SalesforceError::InvalidJson(_))));
        let shape = decode::<RawPage<Value>>(br#"{"records": []}"#);
        assert!(matches!(shape, Err(SalesforceError::Decode(_))));
    }

    #[test]
    fn counters_count_by_kind() {
        let c = ApiCounters::default();
        c.add(ApiKind::Query);
        c.add(ApiKind::QueryMore);
        c.add(ApiKind::QueryMore);
        assert_eq!(c.total(), 3);
        assert_eq!(c.get(ApiKind::QueryMore), 2);
        assert_eq!(c.snapshot().get("queryMore"), Some(&2));
        assert!(!c.snapshot().contains_key("search"));
    }
}
