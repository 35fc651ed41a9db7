//! A scripted Salesforce behind the port, for unit tests of use-case logic
//! without an HTTP server: each request is recorded, and answered by the next
//! scripted reply. A request nothing was scripted for fails the test.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::Stream;
use pubsub_proto::{FetchRequest, FetchResponse, SchemaInfo, TopicInfo};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{
    PubSubApi, PubSubEvents, SalesforceApi, SalesforceNotes, SalesforceReads, SalesforceResult,
    SalesforceWrites,
};
use crate::domain::TenantId;
use crate::domain::hosts::{PubSubEndpoint, SalesforceOrigin};
use crate::salesforce::Identity;
use crate::salesforce::pubsub::{PubSubAuth, PubSubError};
use crate::salesforce::soql::Select;
use crate::salesforce::sosl::PhoneSearch;
use crate::salesforce::{
    ConditionalOutcome, ConditionalUpdate, KeysetPage, KeysetQuery, NewRecord, NoteWrite,
    NoteWritten, Position, RecordResult, RecordUpdate, SalesforceError, SubRequest, SubResponse,
    Written,
};

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// A query, as the SOQL it renders to.
    Query(String),
    /// A collections write of both sides.
    WriteMany {
        creates: Vec<NewRecord>,
        updates: Vec<RecordUpdate>,
    },
}

/// What the fake answers the next request with.
#[derive(Debug)]
pub enum Reply {
    Rows(Vec<Map<String, Value>>),
    Written(Written),
    Error(SalesforceError),
}

pub struct FakeSalesforce {
    tenant: TenantId,
    replies: Mutex<VecDeque<Reply>>,
    sent: Mutex<Vec<Sent>>,
    /// A reply other than an outage was given (as the client counts statuses
    /// below 500).
    answered: AtomicBool,
}

impl FakeSalesforce {
    pub fn new(tenant: &str, replies: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            tenant: TenantId::parse(tenant).expect("a valid tenant id"),
            replies: Mutex::new(replies.into_iter().collect()),
            sent: Mutex::new(Vec::new()),
            answered: AtomicBool::new(false),
        }
    }

    /// Every request received, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().expect("not poisoned").clone()
    }

    fn answer(&self, sent: Sent) -> Reply {
        self.sent.lock().expect("not poisoned").push(sent.clone());
        let reply = self
            .replies
            .lock()
            .expect("not poisoned")
            .pop_front()
            .unwrap_or_else(|| panic!("no reply scripted for {sent:?}"));
        if !matches!(&reply, Reply::Error(e) if e.is_unavailability()) {
            self.answered.store(true, Ordering::Relaxed);
        }
        reply
    }

    fn rows(&self, sent: Sent) -> SalesforceResult<Vec<Map<String, Value>>> {
        match self.answer(sent) {
            Reply::Rows(rows) => Ok(rows),
            Reply::Error(e) => Err(e),
            other => panic!("rows expected, {other:?} scripted"),
        }
    }
}

/// The fake has no Pub/Sub API: no value of this type exists.
pub enum NoPubSub {}

impl PubSubApi for NoPubSub {
    type Subscription = NoPubSub;

    async fn get_topic(&mut self, _topic: &str) -> Result<TopicInfo, PubSubError> {
        match *self {}
    }

    async fn get_schema(&mut self, _schema_id: &str) -> Result<SchemaInfo, PubSubError> {
        match *self {}
    }

    async fn subscribe(&mut self, _first: FetchRequest) -> Result<NoPubSub, PubSubError> {
        match *self {}
    }
}

impl PubSubEvents for NoPubSub {
    async fn message(&mut self) -> Result<Option<FetchResponse>, PubSubError> {
        match *self {}
    }

    fn request(&mut self, _more: FetchRequest) -> bool {
        match *self {}
    }
}

/// A request the use case under test was not expected to make.
fn unexpected<T>(what: &str) -> T {
    panic!("the fake Salesforce was not scripted for {what}")
}

impl SalesforceApi for FakeSalesforce {
    fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    fn was_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    async fn bearer(&self) -> SalesforceResult<(SecretString, SalesforceOrigin)> {
        unexpected("a bearer token")
    }

    async fn renew(&self, _expired: &SecretString) -> SalesforceResult<()> {
        unexpected("a token renewal")
    }

    type PubSub = NoPubSub;

    async fn pubsub(
        &self,
        _endpoint: &PubSubEndpoint,
        _auth: PubSubAuth,
    ) -> Result<NoPubSub, PubSubError> {
        unexpected("a Pub/Sub client")
    }
}

impl SalesforceReads for FakeSalesforce {
    async fn query_all_pages<T>(&self, soql: &str, _all: bool) -> SalesforceResult<Vec<T>>
    where
        T: DeserializeOwned + Send,
    {
        self.rows(Sent::Query(soql.to_string()))?
            .into_iter()
            .map(|row| {
                serde_json::from_value(Value::Object(row))
                    .map_err(|e| SalesforceError::Decode(e.to_string()))
            })
            .collect()
    }

    async fn query_select(
        &self,
        select: &Select,
        _all: bool,
    ) -> SalesforceResult<Vec<Map<String, Value>>> {
        self.rows(Sent::Query(select.render()?))
    }

    fn keyset_pages(
        &self,
        _query: KeysetQuery,
        _after: Option<Position>,
    ) -> impl Stream<Item = SalesforceResult<KeysetPage>> + Send + '_ {
        futures::stream::once(async { unexpected("a keyset read") })
    }

    async fn search_phones(
        &self,
        _search: &PhoneSearch,
    ) -> SalesforceResult<Vec<Map<String, Value>>> {
        unexpected("a phone search")
    }

    async fn search(&self, _sosl: &str) -> SalesforceResult<Vec<Map<String, Value>>> {
        unexpected("a search")
    }

    async fn read(
        &self,
        _object: &str,
        _id: &str,
        _fields: &[&str],
    ) -> SalesforceResult<Map<String, Value>> {
        unexpected("a record read")
    }

    async fn limits(&self) -> SalesforceResult<Value> {
        unexpected("the limits")
    }

    async fn describe_global(&self) -> SalesforceResult<Value> {
        unexpected("a describe")
    }

    async fn identity(&self, _identity_url: &str) -> SalesforceResult<Identity> {
        unexpected("the identity")
    }
}

impl SalesforceWrites for FakeSalesforce {
    async fn create(
        &self,
        _object: &str,
        _fields: &Map<String, Value>,
    ) -> SalesforceResult<String> {
        unexpected("a single create")
    }

    async fn update(
        &self,
        _object: &str,
        _id: &str,
        _fields: &Map<String, Value>,
    ) -> SalesforceResult<()> {
        unexpected("a single update")
    }

    async fn delete(&self, _object: &str, _id: &str) -> SalesforceResult<()> {
        unexpected("a delete")
    }

    async fn create_many(&self, _records: &[NewRecord]) -> SalesforceResult<Vec<RecordResult>> {
        unexpected("a collections create")
    }

    async fn update_many(&self, _records: &[RecordUpdate]) -> SalesforceResult<Vec<RecordResult>> {
        unexpected("a collections update")
    }

    async fn write_many(
        &self,
        creates: &[NewRecord],
        updates: &[RecordUpdate],
    ) -> SalesforceResult<Written> {
        let sent = Sent::WriteMany {
            creates: creates.to_vec(),
            updates: updates.to_vec(),
        };
        match self.answer(sent) {
            Reply::Written(written) => Ok(written),
            Reply::Error(e) => Err(e),
            other => panic!("a write's results expected, {other:?} scripted"),
        }
    }

    async fn update_if_unmodified(
        &self,
        _updates: &[ConditionalUpdate],
    ) -> SalesforceResult<Vec<ConditionalOutcome>> {
        unexpected("conditional updates")
    }

    async fn composite(
        &self,
        _all_or_none: bool,
        _requests: &[SubRequest],
    ) -> SalesforceResult<Vec<SubResponse>> {
        unexpected("a composite request")
    }
}

impl SalesforceNotes for FakeSalesforce {
    async fn write_notes(&self, _writes: &[NoteWrite]) -> SalesforceResult<Vec<NoteWritten>> {
        unexpected("Notes")
    }
}
