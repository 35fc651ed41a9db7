//! The Salesforce port: what the use cases ask of a tenant's org. Its adapter
//! is the REST client in `crate::adapters::salesforce` (transport in
//! `client.rs`, the token lifecycle in `tokens.rs`); `fake` is a scripted one
//! for unit tests.
//!
//! The port speaks Salesforce's own language, the pure values of
//! `crate::salesforce` (SOQL selects, SOSL phone searches, sObject Collections,
//! composite requests, Notes): the product's frugality with the customer's API
//! allocation lives in how the use cases combine those requests, so the port
//! keeps them visible.

use std::future::Future;

use futures::Stream;
use pubsub_proto::{FetchRequest, FetchResponse, SchemaInfo, TopicInfo};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::domain::TenantId;
use crate::domain::hosts::{HostPolicy, PubSubEndpoint, SalesforceOrigin};
use crate::ports::TenantCredentials;
use crate::salesforce::Identity;
use crate::salesforce::pubsub::{PubSubAuth, PubSubError};
use crate::salesforce::soql::Select;
use crate::salesforce::sosl::PhoneSearch;
use crate::salesforce::{
    ConditionalOutcome, ConditionalUpdate, KeysetPage, KeysetQuery, NewRecord, NoteWrite,
    NoteWritten, Position, RecordResult, RecordUpdate, SalesforceError, SubRequest, SubResponse,
    TokenGrant, Usage, Written,
};
use url::Url;

#[cfg(test)]
pub(crate) mod fake;

pub type SalesforceResult<T> = Result<T, SalesforceError>;

/// Opens a tenant's sessions; what the container has seen of every tenant's
/// API usage.
pub trait SalesforceSessions: Copy + Send + Sync {
    type Session: SalesforceApi;

    /// A session for `tenant`'s work, bounded by `deadline`.
    fn open(&self, tenant: &TenantId, deadline: Instant) -> Self::Session;

    /// Drops what is cached of the tenant's access (after a disconnect or a new
    /// connection).
    fn forget(&self, tenant: &TenantId);

    /// The tenant's API usage as Salesforce last reported it, if recent.
    fn fresh_usage(&self, tenant: &TenantId) -> Option<Usage>;

    /// API calls this container has made, every tenant together (a use case
    /// reads it before and after a piece of work to know what the work cost).
    fn calls_made(&self) -> u64;
}

/// The OAuth 2.0 web-server flow against a tenant's org, through its connected
/// app (`credentials`: consumer key and secret, login host) and our callback URL.
pub trait SalesforceLogin: Send + Sync {
    /// The hosts the product accepts as Salesforce's (no SSRF).
    fn hosts(&self) -> &HostPolicy;

    /// The URL the admin's browser is sent to, carrying `state` and a PKCE
    /// challenge, and the verifier to keep server-side for the callback.
    fn authorize_url(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
        state: &str,
    ) -> SalesforceResult<(Url, SecretString)>;

    /// Exchanges the callback's code (with the PKCE verifier); the answer's
    /// signature verified.
    fn exchange_code(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
        code: &str,
        verifier: &SecretString,
    ) -> impl Future<Output = SalesforceResult<TokenGrant>> + Send;

    /// Revokes a refresh token, and with it its access tokens.
    fn revoke(
        &self,
        credentials: &TenantCredentials,
        callback_url: &Url,
        refresh_token: &SecretString,
    ) -> impl Future<Output = SalesforceResult<()>> + Send;
}

/// One tenant's requests, within one deadline: reads, writes, Notes, and the
/// Pub/Sub client of Change Data Capture. Each method is one Salesforce API
/// request unless it says otherwise; every failure is a classified
/// [`SalesforceError`].
pub trait SalesforceApi: SalesforceReads + SalesforceWrites + SalesforceNotes {
    fn tenant(&self) -> &TenantId;

    /// Whether Salesforce answered any request of this session (a status below
    /// 500): if not, whatever failed was an outage, not this work's own fault.
    fn was_answered(&self) -> bool;

    /// The current access token and instance, for Salesforce's other APIs (Pub/Sub).
    fn bearer(
        &self,
    ) -> impl Future<Output = SalesforceResult<(SecretString, SalesforceOrigin)>> + Send;

    /// Another API refused `expired`: replace it (single-flight).
    fn renew(&self, expired: &SecretString) -> impl Future<Output = SalesforceResult<()>> + Send;

    /// The Pub/Sub API client Change Data Capture events come through.
    type PubSub: PubSubApi;

    /// A Pub/Sub API client at `endpoint`, presenting `auth` (see [`Self::bearer`]).
    fn pubsub(
        &self,
        endpoint: &PubSubEndpoint,
        auth: PubSubAuth,
    ) -> impl Future<Output = Result<Self::PubSub, PubSubError>> + Send;
}

/// Salesforce's Pub/Sub API (gRPC): topics, their schemas, subscriptions.
pub trait PubSubApi: Send {
    type Subscription: PubSubEvents;

    /// The topic; [`PubSubError::TopicNotFound`] when Change Data Capture is not
    /// enabled for its object.
    fn get_topic(
        &mut self,
        topic: &str,
    ) -> impl Future<Output = Result<TopicInfo, PubSubError>> + Send;

    /// The Avro schema events of `schema_id` are written in.
    fn get_schema(
        &mut self,
        schema_id: &str,
    ) -> impl Future<Output = Result<SchemaInfo, PubSubError>> + Send;

    /// Opens a subscription and sends `first`. Not bounded: a server may hold
    /// its response headers until its first answer (an event, or a keepalive
    /// within 270 s), so the caller decides how long to wait.
    fn subscribe(
        &mut self,
        first: FetchRequest,
    ) -> impl Future<Output = Result<Self::Subscription, PubSubError>> + Send;
}

/// An open subscription: the server's answers, and the flow-control requests
/// sent back.
pub trait PubSubEvents: Send {
    /// The next answer (events, or a keepalive); `None` when the stream ended.
    fn message(
        &mut self,
    ) -> impl Future<Output = Result<Option<FetchResponse>, PubSubError>> + Send;

    /// Asks for more events; `false` when the stream is already closed.
    fn request(&mut self, more: FetchRequest) -> bool;
}

/// Queries, searches and reads.
pub trait SalesforceReads: Send + Sync {
    /// Every row of a SOQL query (`queryAll` when `all`), page after page.
    fn query_all_pages<T>(
        &self,
        soql: &str,
        all: bool,
    ) -> impl Future<Output = SalesforceResult<Vec<T>>> + Send
    where
        T: DeserializeOwned + Send;

    /// Every row of `select`, cut into as many statements as Salesforce's URI
    /// limit needs; a row found by two statements comes once.
    fn query_select(
        &self,
        select: &Select,
        all: bool,
    ) -> impl Future<Output = SalesforceResult<Vec<Map<String, Value>>>> + Send;

    /// Reads `query` in `(SystemModstamp, Id)` order from just after `after`,
    /// one page at a time, surviving a dead query locator.
    fn keyset_pages(
        &self,
        query: KeysetQuery,
        after: Option<Position>,
    ) -> impl Stream<Item = SalesforceResult<KeysetPage>> + Send + '_;

    /// Records whose phone fields match, cut as [`Self::query_select`] is.
    fn search_phones(
        &self,
        search: &PhoneSearch,
    ) -> impl Future<Output = SalesforceResult<Vec<Map<String, Value>>>> + Send;

    /// One SOSL statement.
    fn search(
        &self,
        sosl: &str,
    ) -> impl Future<Output = SalesforceResult<Vec<Map<String, Value>>>> + Send;

    /// One record's `fields`.
    fn read(
        &self,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> impl Future<Output = SalesforceResult<Map<String, Value>>> + Send;

    /// The org's limits (`/limits`).
    fn limits(&self) -> impl Future<Output = SalesforceResult<Value>> + Send;

    /// Every sObject of the org and what the user may do with it.
    fn describe_global(&self) -> impl Future<Output = SalesforceResult<Value>> + Send;

    /// The connected user, from the identity URL of the token response.
    fn identity(
        &self,
        identity_url: &str,
    ) -> impl Future<Output = SalesforceResult<Identity>> + Send;
}

/// Creates, updates and deletes of records.
pub trait SalesforceWrites: Send + Sync {
    /// The new record's id.
    fn create(
        &self,
        object: &str,
        fields: &Map<String, Value>,
    ) -> impl Future<Output = SalesforceResult<String>> + Send;

    fn update(
        &self,
        object: &str,
        id: &str,
        fields: &Map<String, Value>,
    ) -> impl Future<Output = SalesforceResult<()>> + Send;

    fn delete(&self, object: &str, id: &str) -> impl Future<Output = SalesforceResult<()>> + Send;

    /// sObject Collections (200 records per request), results in input order.
    fn create_many(
        &self,
        records: &[NewRecord],
    ) -> impl Future<Output = SalesforceResult<Vec<RecordResult>>> + Send;

    /// As [`Self::create_many`].
    fn update_many(
        &self,
        records: &[RecordUpdate],
    ) -> impl Future<Output = SalesforceResult<Vec<RecordResult>>> + Send;

    /// Creates and updates together, in as few requests as Salesforce allows.
    fn write_many(
        &self,
        creates: &[NewRecord],
        updates: &[RecordUpdate],
    ) -> impl Future<Output = SalesforceResult<Written>> + Send;

    /// Each update applied only if its record was not modified since it was read.
    fn update_if_unmodified(
        &self,
        updates: &[ConditionalUpdate],
    ) -> impl Future<Output = SalesforceResult<Vec<ConditionalOutcome>>> + Send;

    /// One composite request (at most 25 subrequests).
    fn composite(
        &self,
        all_or_none: bool,
        requests: &[SubRequest],
    ) -> impl Future<Output = SalesforceResult<Vec<SubResponse>>> + Send;
}

/// A call's Notes (`ContentNote`) and their links to its records.
pub trait SalesforceNotes: Send + Sync {
    /// Notes and their links, a Note's subrequests always in the same composite
    /// request. Results in input order.
    fn write_notes(
        &self,
        writes: &[NoteWrite],
    ) -> impl Future<Output = SalesforceResult<Vec<NoteWritten>>> + Send;
}
