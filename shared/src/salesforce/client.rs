//! The one Salesforce REST client: per-tenant tokens (cached, persisted,
//! refreshed single-flight under a lease), streamed queries, batched writes,
//! retries within a deadline, API budget tracking and call counting.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::Stream;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use url::Url;

use super::error::{ApiError, SalesforceError, parse_error_body};
use super::instance::{HostPolicy, SalesforceOrigin};
use super::keyset::{KeysetQuery, Position};
use super::limits::{USAGE_FRESHNESS, parse_limit_info};
use super::oauth::{Identity, OAuthApp};
use crate::config::SalesforceConfig;
use crate::domain::{ApiUsage, ConnectionStatus, TenantId};
use crate::error::{Classify, ErrorClass};
use crate::ports::{ConnectionStore, LeaseStore, SecretStore, StoreError, TenantCredentials};

/// sObject Collections take at most 200 records per request.
pub const COLLECTION_LIMIT: usize = 200;
/// Largest query page Salesforce serves.
pub const MAX_BATCH_SIZE: u32 = 2000;
/// Lease that serialises token refreshes of one tenant across Lambda containers.
const REFRESH_LEASE: &str = "token-refresh";
const REFRESH_LEASE_TTL: Duration = Duration::from_secs(30);
const MAX_ATTEMPTS: u32 = 5;
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
}

impl ApiKind {
    const ALL: [ApiKind; 13] = [
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
        }
    }
}

/// API calls made, by kind. Every request that reached Salesforce's REST API counts,
/// whatever its answer (token and identity calls are not API calls).
#[derive(Debug, Default)]
pub struct ApiCounters {
    counts: [AtomicU64; 13],
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

/// A record to create: its sObject type and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub object: &'static str,
    pub fields: Map<String, Value>,
}

/// A record to update: its sObject type, id and the fields to set (`null` clears).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordUpdate {
    pub object: &'static str,
    pub id: String,
    pub fields: Map<String, Value>,
}

/// The result of one record in a collections request, in request order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordResult {
    #[serde(default)]
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

/// A composite subrequest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubRequest {
    pub method: String,
    pub url: String,
    pub reference_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubResponse {
    pub body: Value,
    pub http_status_code: u16,
    pub reference_id: String,
}

/// The last API usage seen for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub max: u64,
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
            .user_agent(concat!("modjo-salesforce/", env!("CARGO_PKG_VERSION")))
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
        let parsed = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info);
        if let (Some((used, max)), Ok(mut usage)) = (parsed, self.inner.usage.lock()) {
            usage.insert(
                tenant.clone(),
                Usage {
                    used,
                    max,
                    observed_at: Instant::now(),
                },
            );
        }
    }

    fn data_path(&self, rest: &str) -> String {
        format!(
            "/services/data/v{}/{}",
            self.inner.api_version,
            rest.trim_start_matches('/')
        )
    }
}

/// One tenant's requests, within one deadline.
pub struct Session<'a, S, D> {
    client: &'a SalesforceClient,
    tenant: TenantId,
    secrets: &'a S,
    store: &'a D,
    deadline: Instant,
    tokens: Arc<TenantTokens>,
    /// REST responses below 500 received in this session: Salesforce was there.
    answered: AtomicU64,
}

struct Request<'r> {
    kind: ApiKind,
    method: Method,
    /// Path and query, absolute (`/services/data/...`).
    path: String,
    body: Option<&'r Value>,
    batch_size: Option<u32>,
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

    /// `GET …/search?q=` (SOSL): the found records, whichever object they belong to.
    pub async fn search(&self, sosl: &str) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let encoded: String = url::form_urlencoded::byte_serialize(sosl.as_bytes()).collect();
        let bytes = self
            .send(Request {
                kind: ApiKind::Search,
                method: Method::GET,
                path: self.client.data_path(&format!("search/?q={encoded}")),
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

    /// `POST …/sobjects/<object>/`: the new record's id.
    pub async fn create(
        &self,
        object: &str,
        fields: &Map<String, Value>,
    ) -> Result<String, SalesforceError> {
        let body = Value::Object(fields.clone());
        let bytes = self
            .send(Request {
                kind: ApiKind::Create,
                method: Method::POST,
                path: self
                    .client
                    .data_path(&format!("sobjects/{}/", checked_name(object)?)),
                body: Some(&body),
                batch_size: None,
            })
            .await?;
        let result: RecordResult = decode(&bytes)?;
        match result.id {
            Some(id) if result.success => Ok(id),
            _ => Err(SalesforceError::Api {
                status: 201,
                errors: result.errors,
            }),
        }
    }

    /// `PATCH …/sobjects/<object>/<id>`.
    pub async fn update(
        &self,
        object: &str,
        id: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), SalesforceError> {
        let body = Value::Object(fields.clone());
        self.send(Request {
            kind: ApiKind::Update,
            method: Method::PATCH,
            path: self.client.data_path(&format!(
                "sobjects/{}/{}",
                checked_name(object)?,
                checked_id(id)?
            )),
            body: Some(&body),
            batch_size: None,
        })
        .await?;
        Ok(())
    }

    /// `DELETE …/sobjects/<object>/<id>`.
    pub async fn delete(&self, object: &str, id: &str) -> Result<(), SalesforceError> {
        self.send(Request {
            kind: ApiKind::Delete,
            method: Method::DELETE,
            path: self.client.data_path(&format!(
                "sobjects/{}/{}",
                checked_name(object)?,
                checked_id(id)?
            )),
            body: None,
            batch_size: None,
        })
        .await?;
        Ok(())
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

    /// sObject Collections create, 200 records per request, `allOrNone: false`.
    /// Results are in input order: result `i` belongs to `records[i]`.
    pub async fn create_many(
        &self,
        records: &[NewRecord],
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let bodies = records
            .iter()
            .map(|r| with_type(r.object, None, &r.fields))
            .collect();
        self.collections(ApiKind::CollectionsCreate, Method::POST, bodies)
            .await
    }

    /// sObject Collections update, as [`Self::create_many`].
    pub async fn update_many(
        &self,
        records: &[RecordUpdate],
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let bodies = records
            .iter()
            .map(|r| with_type(r.object, Some(&r.id), &r.fields))
            .collect();
        self.collections(ApiKind::CollectionsUpdate, Method::PATCH, bodies)
            .await
    }

    /// `composite/sobjects` in chunks of 200, results in input order.
    async fn collections(
        &self,
        kind: ApiKind,
        method: Method,
        records: Vec<Value>,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let mut results = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_LIMIT) {
            let body = json!({ "allOrNone": false, "records": chunk });
            let bytes = self
                .send(Request {
                    kind,
                    method: method.clone(),
                    path: self.client.data_path("composite/sobjects"),
                    body: Some(&body),
                    batch_size: None,
                })
                .await?;
            results.extend(collection_results(&bytes, chunk.len())?);
        }
        Ok(results)
    }

    /// `POST …/composite` (≤ 25 subrequests, one API call).
    pub async fn composite(
        &self,
        all_or_none: bool,
        requests: &[SubRequest],
    ) -> Result<Vec<SubResponse>, SalesforceError> {
        if requests.len() > 25 {
            return Err(SalesforceError::Decode(format!(
                "{} composite subrequests (max 25)",
                requests.len()
            )));
        }
        let body = json!({ "allOrNone": all_or_none, "compositeRequest": requests });
        let bytes = self
            .send(Request {
                kind: ApiKind::Composite,
                method: Method::POST,
                path: self.client.data_path("composite"),
                body: Some(&body),
                batch_size: None,
            })
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Composite {
            composite_response: Vec<SubResponse>,
        }
        Ok(decode::<Composite>(&bytes)?.composite_response)
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
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) && !refreshed
            {
                refreshed = true;
                self.refresh(Some(&token)).await?;
                continue;
            }
            return Err(SalesforceError::Api {
                status: status.as_u16(),
                errors: parse_error_body(&body),
            });
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

    /// Sends one API request: token attached, refreshed once on `INVALID_SESSION_ID`,
    /// transient failures retried with back-off and jitter within the deadline.
    async fn send(&self, request: Request<'_>) -> Result<Bytes, SalesforceError> {
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            let token = self.token().await?;
            let result = self.send_once(&request, &token).await;
            let err = match result {
                Ok(bytes) => return Ok(bytes),
                Err(e) => e,
            };
            if !refreshed && err.code() == Some("INVALID_SESSION_ID") {
                refreshed = true;
                self.refresh(Some(&token)).await?;
                continue;
            }
            attempt += 1;
            if !err.is_transient() || attempt >= MAX_ATTEMPTS {
                return Err(err);
            }
            let pause = backoff(attempt);
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
        let response = builder.send().await.map_err(transport)?;
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
            Err(SalesforceError::Api {
                status: status.as_u16(),
                errors: parse_error_body(&body),
            })
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
        let grant = match app.refresh(self.client.http(), &refresh_token).await {
            Ok(g) => g,
            Err(e) if e.class() == ErrorClass::NeedsReauth => {
                let reason = format!(
                    "Salesforce refused the stored authorisation ({}); reconnect the org",
                    e.code().unwrap_or("error")
                );
                mark_needs_reauth(self.store, &self.tenant, &reason).await?;
                return Err(SalesforceError::NeedsReauth(reason));
            }
            Err(e) => return Err(e),
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

fn with_type(object: &str, id: Option<&str>, fields: &Map<String, Value>) -> Value {
    let mut record = Map::with_capacity(fields.len() + 2);
    record.insert("attributes".into(), json!({ "type": object }));
    if let Some(id) = id {
        record.insert("Id".into(), Value::String(id.to_string()));
    }
    for (k, v) in fields {
        record.insert(k.clone(), v.clone());
    }
    Value::Object(record)
}

fn collection_results(bytes: &[u8], expected: usize) -> Result<Vec<RecordResult>, SalesforceError> {
    let results: Vec<RecordResult> = decode(bytes)?;
    if results.len() != expected {
        return Err(SalesforceError::Decode(format!(
            "collections answered {} results for {expected} records",
            results.len()
        )));
    }
    Ok(results)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SalesforceError> {
    serde_json::from_slice(bytes).map_err(|e| SalesforceError::Decode(e.to_string()))
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

fn checked_name(name: &str) -> Result<&str, SalesforceError> {
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

fn checked_id(id: &str) -> Result<&str, SalesforceError> {
    if super::id::is_record_id(id) {
        Ok(id)
    } else {
        Err(SalesforceError::Decode(format!(
            "invalid Salesforce id {id:?}"
        )))
    }
}

fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let cap = (200u64 << attempt.min(5)).min(5_000);
    Duration::from_millis(rand::thread_rng().gen_range(cap / 2..=cap))
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

    #[test]
    fn records_carry_their_type() {
        let fields: Map<String, Value> = json!({"Subject": "Call"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            with_type("Task", Some("00T000000000001AAA"), &fields),
            json!({"attributes": {"type": "Task"}, "Id": "00T000000000001AAA", "Subject": "Call"})
        );
    }
}
