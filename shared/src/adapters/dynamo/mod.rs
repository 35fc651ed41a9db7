//! The single-table DynamoDB adapter.
//!
//! Key design (every key starts with its family and the tenant id):
//!
//! | family            | pk                          | sk                        | gsi1pk / gsi1sk            |
//! |-------------------|-----------------------------|---------------------------|----------------------------|
//! | connection        | `T#<tenant>`                | `CONNECTION`              | `STATUS#<status>` / `T#<tenant>` |
//! | audit entry       | `T#<tenant>`                | `AUDIT#<millis>#<rand>`   |                            |
//! | user mapping      | `T#<tenant>`                | `USERMAP#<modjoUserId>`   |                            |
//! | Modjo user        | `T#<tenant>`                | `MODJOUSER#<modjoUserId>` |                            |
//! | sync cursor       | `T#<tenant>`                | `CURSOR#<object>`         |                            |
//! | sync status       | `T#<tenant>`                | `SYNCSTATUS#<object>`     |                            |
//! | CDC replay id     | `T#<tenant>`                | `REPLAY#<topic>`          |                            |
//! | lease             | `T#<tenant>`                | `LEASE#<name>`            |                            |
//! | OAuth state       | `T#<tenant>`                | `OAUTH#<nonce>`           |                            |
//! | CRM record        | `R#<tenant>#<sfId>`         | `RECORD`                  | `RECORDS#<tenant>#<shard>` / `<sfId>` (a purge's listing) |
//! | erased record id  | `T#<tenant>`                | `ERASED#<sfId>`           |                            |
//! | index entry       | `I#<tenant>#<KIND>#<value>` | `<sfId>`                  |                            |
//! | call outcome      | `C#<tenant>#<callId>`       | `OUTCOME`                 | `WAITING#<tenant>` / `<callId>` while waiting; `COMMENTS#<tenant>` / `<callId>` while comments are pending; else `REMATCH#<tenant>` / `<startedAt>#<callId>` while it can still be matched better |
//! | comment           | `C#<tenant>#<callId>`       | `COMMENT#<commentId>`     |                            |
//! | comment state     | `C#<tenant>#<callId>`       | `CSTATE`                  |                            |
//!
//! Call outcomes are also in the second index, `gsi2`: `CALLS#<tenant>` /
//! `<updatedAt, ISO 8601 UTC in milliseconds>#<callId>`, which lists a tenant's
//! calls newest first (the settings page's Calls tab).
//!
//! Records, index values and calls each get their own partition key, so a tenant's
//! million-record backfill spreads over a million partitions instead of one.
//! `ttl` (epoch seconds) expires OAuth states, leases, and call outcomes after
//! the tenant's retention.
//!
//! A call's outcome keeps its claim's expiry as a number (`claimedUntilMs`) for
//! the claim condition, and its message gzip-compressed (`messageGz`) beyond
//! [`COMPRESS_MESSAGE_OVER`] bytes. The comment state counts the changes stored for
//! the call (`version`), so that a render knows whether it showed the latest.
//!
//! Every request is counted by operation ([`DynamoStore::request_counts`]), retries
//! included, by an interceptor on the SDK client.
//!
//! Files: this one holds the keys and the item helpers; `requests.rs` the
//! requests the ports are built from (batches, transactions, queries); one file
//! per family of items implements its ports (`tenants.rs`, `records.rs`,
//! `calls.rs`, `comments.rs`, `erase.rs`); `table.rs` creates the table for local stacks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, CancellationReason, DeleteRequest,
    GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update, WriteRequest,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::map_sdk_error;
use crate::backoff::Backoff;
use crate::domain::{
    AuditEntry, CallOutcome, CallState, Connection, ConnectionStatus, CrmRecord, IndexEntry,
    IndexKey, Lease, MappingSource, ModjoUser, PendingAuthorization, StoredComment, SyncCursor,
    SyncStatus, TenantId, UserMapping,
};
use crate::ports::{
    CallClaim, CallStore, ClaimResult, CommentStore, ConnectionStore, CursorStore, LeaseStore,
    OAuthStateStore, Page, RecordChange, RecordStore, StoreError, StoreResult, UserMappingStore,
};

mod calls;
mod comments;
mod erase;
mod records;
mod requests;
mod table;
mod tenants;

use requests::{TxCancel, versioned_put};
pub use table::create_table;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
pub const GSI2: &str = "gsi2";
pub const GSI2_PK: &str = "gsi2pk";
pub const GSI2_SK: &str = "gsi2sk";
pub const TTL: &str = "ttl";

/// BatchWriteItem takes at most 25 requests; BatchGetItem at most 100 keys.
const WRITE_BATCH: usize = 25;
const GET_BATCH: usize = 100;
/// Batches in flight at once when applying a large set of changes.
const WRITE_CONCURRENCY: usize = 8;
/// Attempts to flush unprocessed items before giving up (as Unavailable).
const MAX_BATCH_ATTEMPTS: u32 = 10;
/// TransactWriteItems takes at most 100 actions and 4 MB in all; chunks stay below.
const TX_ITEMS: usize = 100;
const TX_BYTES: usize = 3_500_000;
/// Rounds of a set of transactions: items cancelled by a conflicting transaction
/// (not by their own condition) are sent again, with back-off.
const MAX_TX_ATTEMPTS: u32 = 8;
/// Index partitions read at once by a batch lookup.
const LOOKUP_CONCURRENCY: usize = 16;
/// A call's message is stored gzip-compressed beyond this many bytes.
pub const COMPRESS_MESSAGE_OVER: usize = 1024;
/// A stored message never decompresses beyond this (SQS's own ceiling is 1 MiB).
const MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
/// Index pages read at most to fill one page of a filtered call listing.
const MAX_LIST_READS: usize = 5;

type Item = HashMap<String, AttributeValue>;

/// Key construction, in one place.
mod keys {
    use super::*;

    pub fn tenant(t: &TenantId) -> String {
        format!("T#{t}")
    }
    pub const CONNECTION: &str = "CONNECTION";
    pub fn status(s: ConnectionStatus) -> String {
        format!("STATUS#{}", s.as_str())
    }
    pub fn audit(at: DateTime<Utc>) -> String {
        let suffix: u32 = rand::random();
        format!("AUDIT#{:013}#{suffix:08x}", at.timestamp_millis())
    }
    pub fn user_mapping(modjo_user_id: &str) -> String {
        format!("USERMAP#{modjo_user_id}")
    }
    pub const MODJO_USER_PREFIX: &str = "MODJOUSER#";
    pub fn modjo_user(modjo_user_id: &str) -> String {
        format!("{MODJO_USER_PREFIX}{modjo_user_id}")
    }
    pub fn cursor(object: &str) -> String {
        format!("CURSOR#{object}")
    }
    pub fn replay(topic: &str) -> String {
        format!("REPLAY#{topic}")
    }
    pub fn sync_status(object: &str) -> String {
        format!("SYNCSTATUS#{object}")
    }
    pub fn lease(name: &str) -> String {
        format!("LEASE#{name}")
    }
    pub fn oauth(nonce: &str) -> String {
        format!("OAUTH#{nonce}")
    }
    pub fn record(t: &TenantId, id: &str) -> String {
        format!("R#{t}#{id}")
    }
    pub const RECORD: &str = "RECORD";
    pub fn index(t: &TenantId, key: &IndexKey) -> String {
        format!("I#{t}#{}#{}", key.kind.as_str(), key.value)
    }
    pub fn call(t: &TenantId, call_id: &str) -> String {
        format!("C#{t}#{call_id}")
    }
    pub const OUTCOME: &str = "OUTCOME";
    pub fn comment(comment_id: &str) -> String {
        format!("COMMENT#{comment_id}")
    }
    pub fn pending_comments(t: &TenantId) -> String {
        format!("COMMENTS#{t}")
    }
    pub fn waiting(t: &TenantId) -> String {
        format!("WAITING#{t}")
    }
    pub fn rematch(t: &TenantId) -> String {
        format!("REMATCH#{t}")
    }
    /// Sorts by the call's start (the re-match window is a key condition).
    pub fn rematch_listing(started_at: DateTime<Utc>, call_id: &str) -> String {
        call_listing(started_at, call_id)
    }
    pub const COMMENT_STATE: &str = "CSTATE";
    pub fn calls(t: &TenantId) -> String {
        format!("CALLS#{t}")
    }
    /// Sorts by last update, then call id: ISO 8601 in UTC with a fixed number of
    /// digits orders as time does.
    pub fn call_listing(updated_at: DateTime<Utc>, call_id: &str) -> String {
        format!(
            "{}#{call_id}",
            updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item<T: Serialize>(value: &T) -> StoreResult<Item> {
    serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Rejected(format!("cannot encode item: {e}")))
}

fn from_item<T: DeserializeOwned>(item: Item) -> StoreResult<T> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Corrupt(format!("cannot decode item: {e}")))
}

fn keyed<T: Serialize>(value: &T, pk: String, sk: impl Into<String>) -> StoreResult<Item> {
    let mut item = to_item(value)?;
    item.insert(PK.into(), s(pk));
    item.insert(SK.into(), s(sk));
    Ok(item)
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

/// DynamoDB adapter for every storage port. Cheap to clone (clones share their
/// request counts).
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    page_size: i32,
    requests: RequestCounter,
}

/// Requests sent to DynamoDB, by operation (`Query`, `BatchGetItem`, …), each
/// attempt counted: what the table is billed for and what its latency multiplies.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // `X-Amz-Target: DynamoDB_20120810.Query`
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_string();
        if let Ok(mut counts) = self.0.lock() {
            *counts.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let requests = RequestCounter::default();
        let client = Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(requests.clone())
                .build(),
        );
        Self {
            client,
            table: table.into(),
            page_size: 500,
            requests,
        }
    }

    /// The requests this store (and its clones) sent, by operation.
    pub fn request_counts(&self) -> &RequestCounter {
        &self.requests
    }

    /// Items per page of the paged listings (tenants by status, waiting calls).
    pub fn with_page_size(mut self, page_size: u16) -> Self {
        self.page_size = i32::from(page_size.max(1));
        self
    }
}

/// The key of an item of the call listing (table and `gsi2` keys): where a
/// following query starts.
fn listing_key(item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| [PK, SK, GSI2_PK, GSI2_SK].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn key_signature(key: &Item) -> (String, String) {
    let part = |name: &str| match key.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    };
    (part(PK), part(SK))
}

fn put_request(item: Item) -> StoreResult<(Item, WriteRequest)> {
    let k = key_of(&item);
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::Rejected(format!("PutRequest: {e}")))?;
    Ok((k, WriteRequest::builder().put_request(put).build()))
}

fn delete_request(key: Item) -> StoreResult<(Item, WriteRequest)> {
    let delete = DeleteRequest::builder()
        .set_key(Some(key.clone()))
        .build()
        .map_err(|e| StoreError::Rejected(format!("DeleteRequest: {e}")))?;
    Ok((key, WriteRequest::builder().delete_request(delete).build()))
}

fn key_of(item: &Item) -> Item {
    item.iter()
        .filter(|(k, _)| k.as_str() == PK || k.as_str() == SK)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn encode_page_token(key: &Item) -> StoreResult<String> {
    let plain: HashMap<&str, &str> = key
        .iter()
        .map(|(k, v)| match v {
            AttributeValue::S(s) => Ok((k.as_str(), s.as_str())),
            _ => Err(StoreError::Rejected(format!(
                "non-string key attribute {k}"
            ))),
        })
        .collect::<StoreResult<_>>()?;
    let json = serde_json::to_vec(&plain).map_err(|e| StoreError::Rejected(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_page_token(token: &str) -> StoreResult<Item> {
    let bad = || StoreError::Rejected("invalid page token".into());
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let plain: HashMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let allowed = [PK, SK, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK];
    if plain.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Err(bad());
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

/// The result of a conditional write; `None` when its condition did not hold.
fn unless_conflict<T>(result: StoreResult<T>) -> StoreResult<Option<T>> {
    match result {
        Ok(done) => Ok(Some(done)),
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A transaction names each call once (DynamoDB refuses two actions on one
/// item): the first id seen twice is refused with `message`.
fn once_each<'a>(
    ids: impl IntoIterator<Item = &'a str>,
    message: impl FnOnce(&str) -> String,
) -> StoreResult<()> {
    let mut seen = HashSet::new();
    match ids.into_iter().find(|id| !seen.insert(*id)) {
        Some(twice) => Err(StoreError::Rejected(message(twice))),
        None => Ok(()),
    }
}

/// A query's page: its items decoded, and the token of the next page (none
/// when DynamoDB says the query is done).
fn page_of<T>(
    items: Option<Vec<Item>>,
    last_key: Option<Item>,
    decode: impl FnMut(Item) -> StoreResult<T>,
) -> StoreResult<Page<T>> {
    let next = match last_key {
        Some(k) if !k.is_empty() => Some(encode_page_token(&k)?),
        _ => None,
    };
    let items = items
        .unwrap_or_default()
        .into_iter()
        .map(decode)
        .collect::<StoreResult<_>>()?;
    Ok(Page { items, next })
}

fn rfc3339_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl crate::ports::StoreRequests for DynamoStore {
    fn requests_by_operation(&self) -> BTreeMap<String, u64> {
        self.requests.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_tampering() {
        let k: Item = HashMap::from([
            (PK.to_string(), s("C#acme#call_1")),
            (SK.to_string(), s("OUTCOME")),
            (GSI1_PK.to_string(), s("WAITING#acme")),
            (GSI1_SK.to_string(), s("call_1")),
        ]);
        let token = encode_page_token(&k).unwrap();
        assert_eq!(decode_page_token(&token).unwrap(), k);
        assert!(decode_page_token("not base64!").is_err());
        let forged = URL_SAFE_NO_PAD.encode(br#"{"other":"x"}"#);
        assert!(decode_page_token(&forged).is_err());
    }

    #[test]
    fn keys_carry_the_tenant() {
        let t = TenantId::parse("acme").unwrap();
        let phone = IndexKey {
            kind: crate::domain::IndexKind::Phone,
            value: "+33612345678".into(),
        };
        assert_eq!(keys::index(&t, &phone), "I#acme#PHONE#+33612345678");
        assert_eq!(keys::record(&t, "003A"), "R#acme#003A");
        assert_eq!(keys::call(&t, "call_1"), "C#acme#call_1");
        assert!(keys::audit(Utc::now()).starts_with("AUDIT#"));
    }
}
