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
//! `ttl` (epoch seconds) expires OAuth states and leases.
//!
//! A call's outcome keeps its claim's expiry as a number (`claimedUntilMs`) for
//! the claim condition, and its message gzip-compressed (`messageGz`) beyond
//! [`COMPRESS_MESSAGE_OVER`] bytes. The comment state counts the changes stored for
//! the call (`version`), so that a render knows whether it showed the latest.
//!
//! Every request is counted by operation ([`DynamoStore::request_counts`]), retries
//! included, by an interceptor on the SDK client.

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

mod erase;
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

/// Which calls a page of the call listing keeps.
#[derive(Debug, Clone, Copy)]
enum ListFilter<'a> {
    State(CallState),
    /// Unmatched, or matched among several candidates, and not linked by hand.
    NeedsAttention,
    /// Linked (Who or What) to one of these records.
    LinkedTo(&'a [String]),
}

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

    /// An unconditional write.
    async fn put(&self, item: Item, operation: &str) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| map_sdk_error(operation, e))?;
        Ok(())
    }

    async fn get(&self, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Writes `item` if the stored `version` equals `expected` (0: the item must not exist).
    async fn put_versioned(&self, mut item: Item, expected: u64) -> StoreResult<u64> {
        let next = expected + 1;
        item.insert("version".into(), n(next as i64));
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(expected as i64))
        };
        put.send()
            .await
            .map_err(|e| map_sdk_error("PutItem (versioned)", e))?;
        Ok(next)
    }

    /// All items of one partition (optionally with a sort key prefix), following
    /// pages, decoded.
    async fn query_partition<T: DeserializeOwned>(
        &self,
        pk: String,
        sk_prefix: Option<&str>,
    ) -> StoreResult<Vec<T>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(prefix) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.map_err(|e| map_sdk_error("Query", e))?;
            for item in out.items.unwrap_or_default() {
                items.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One page of the tenant's calls by last update, newest first, filtered.
    async fn call_listing_page(
        &self,
        tenant: &TenantId,
        filter: Option<ListFilter<'_>>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        let limit = limit.max(1);
        let listing = keys::calls(tenant);
        let own_prefix = keys::call(tenant, "");
        let mut start = cursor.map(|t| decode_page_token(&t)).transpose()?;
        // A cursor is this listing's key, of this tenant, or nothing.
        if let Some(k) = &start {
            let text = |name: &str| match k.get(name) {
                Some(AttributeValue::S(v)) => v.as_str(),
                _ => "",
            };
            if k.len() != 4
                || text(GSI2_PK) != listing
                || !text(PK).starts_with(&own_prefix)
                || text(SK) != keys::OUTCOME
                || text(GSI2_SK).is_empty()
            {
                return Err(StoreError::Rejected("invalid page token".into()));
            }
        }
        let mut found: Vec<Item> = Vec::with_capacity(limit);
        for _ in 0..MAX_LIST_READS {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI2)
                .key_condition_expression("gsi2pk = :g")
                .expression_attribute_values(":g", s(listing.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX));
            match filter {
                Some(ListFilter::State(state)) => {
                    q = q
                        .filter_expression("#state = :state")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":state", s(state.as_str()));
                }
                Some(ListFilter::LinkedTo(ids)) => {
                    let names: Vec<String> = (0..ids.len()).map(|i| format!(":r{i}")).collect();
                    let list = names.join(", ");
                    q = q.filter_expression(format!("whoId IN ({list}) OR whatId IN ({list})"));
                    for (name, id) in names.into_iter().zip(ids) {
                        q = q.expression_attribute_values(name, s(id.clone()));
                    }
                }
                Some(ListFilter::NeedsAttention) => {
                    q = q
                        .filter_expression(
                            "(#state = :unmatched OR attribute_exists(candidates)) \
                             AND attribute_not_exists(linkedByHand)",
                        )
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":unmatched", s("unmatched"));
                }
                None => {}
            }
            let out = q
                .send()
                .await
                .map_err(|e| map_sdk_error("Query (gsi2)", e))?;
            found.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if found.len() >= limit || start.is_none() {
                break;
            }
        }
        // Full page: the next one starts after its last call (it may be empty).
        // Short page: after the last key read, when the index goes on.
        let next = match (found.len() >= limit, found.last(), &start) {
            (true, Some(last), _) => Some(listing_key(last)),
            (_, _, Some(k)) => Some(k.clone()),
            _ => None,
        };
        let items = found
            .into_iter()
            .take(limit)
            .map(outcome_from_item)
            .collect::<StoreResult<_>>()?;
        Ok(Page {
            items,
            next: next.map(|k| encode_page_token(&k)).transpose()?,
        })
    }

    /// One page of the GSI under `gsi_pk`, decoded.
    async fn gsi_page<T: DeserializeOwned>(
        &self,
        gsi_pk: String,
        page_token: Option<String>,
    ) -> StoreResult<Page<T>> {
        self.gsi_page_with(gsi_pk, page_token, from_item).await
    }

    /// One page of the GSI under `gsi_pk`, each item decoded by `decode`.
    async fn gsi_page_with<T>(
        &self,
        gsi_pk: String,
        page_token: Option<String>,
        decode: fn(Item) -> StoreResult<T>,
    ) -> StoreResult<Page<T>> {
        let start = page_token.map(|t| decode_page_token(&t)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :g")
            .expression_attribute_values(":g", s(gsi_pk))
            .set_exclusive_start_key(start)
            .limit(self.page_size)
            .send()
            .await
            .map_err(|e| map_sdk_error("Query (gsi1)", e))?;
        page_of(out.items, out.last_evaluated_key, decode)
    }

    /// Writes every request with BatchWriteItem, 25 at a time, several batches in
    /// flight, retrying unprocessed items with back-off. Requests for the same key
    /// collapse to the last one (DynamoDB refuses duplicates within a batch).
    async fn batch_write(&self, requests: Vec<(Item, WriteRequest)>) -> StoreResult<()> {
        let mut seen = HashSet::new();
        let mut unique: Vec<WriteRequest> = Vec::with_capacity(requests.len());
        for (key, request) in requests.into_iter().rev() {
            if seen.insert(key_signature(&key)) {
                unique.push(request);
            }
        }
        unique.reverse();
        let chunks: Vec<Vec<WriteRequest>> = unique
            .chunks(WRITE_BATCH)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    async fn write_chunk(&self, mut pending: Vec<WriteRequest>) -> StoreResult<()> {
        for attempt in 0..MAX_BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| map_sdk_error("BatchWriteItem", e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "BatchWriteItem: {} items still unprocessed after {MAX_BATCH_ATTEMPTS} attempts",
            pending.len()
        )))
    }

    /// Reads items by key with BatchGetItem, 100 at a time, retrying unprocessed keys.
    async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut seen = HashSet::new();
        let unique: Vec<Item> = keys
            .into_iter()
            .filter(|k| seen.insert(key_signature(k)))
            .collect();
        let mut found = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(GET_BATCH) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Rejected(format!("BatchGetItem: {e}")))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                if attempt > 0 {
                    tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
                }
                if attempt >= MAX_BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "BatchGetItem: keys still unprocessed after retries".into(),
                    ));
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("BatchGetItem", e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }
}

impl DynamoStore {
    /// Sends `actions` as few TransactWriteItems as their count and size allow.
    /// An action whose own condition fails is settled by `on_check_failed` (given the
    /// item as it was); one cancelled for another's sake is sent again in the next
    /// round. One result per action, in order.
    async fn transact_each<T>(
        &self,
        operation: &str,
        actions: Vec<TransactWriteItem>,
        landed: impl Fn(usize) -> T,
        on_check_failed: impl Fn(usize, Option<Item>) -> StoreResult<T>,
    ) -> Vec<StoreResult<T>> {
        let sizes: Vec<usize> = actions.iter().map(action_size).collect();
        let mut results: Vec<Option<StoreResult<T>>> = (0..actions.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..actions.len()).collect();
        for attempt in 0..MAX_TX_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
            }
            let mut again = Vec::new();
            for chunk in tx_chunks(&pending, &sizes) {
                let items: Vec<TransactWriteItem> =
                    chunk.iter().map(|&i| actions[i].clone()).collect();
                for (&i, action) in chunk.iter().zip(self.transact(operation, items).await) {
                    match action {
                        Ok(None) => results[i] = Some(Ok(landed(i))),
                        Ok(Some(TxCancel::CheckFailed(item))) => {
                            results[i] = Some(on_check_failed(i, item))
                        }
                        Ok(Some(TxCancel::Again)) => again.push(i),
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
            }
            pending = again;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Unavailable(format!(
                        "{operation}: still cancelled by conflicting transactions after {MAX_TX_ATTEMPTS} rounds"
                    )))
                })
            })
            .collect()
    }

    /// One TransactWriteItems: per action, `None` when it landed, else why it was cancelled.
    async fn transact(
        &self,
        operation: &str,
        items: Vec<TransactWriteItem>,
    ) -> Vec<StoreResult<Option<TxCancel>>> {
        let n = items.len();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return (0..n).map(|_| Ok(None)).collect(),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            if reasons.len() == n {
                return reasons.iter().map(|r| Ok(Some(TxCancel::of(r)))).collect();
            }
        }
        let e = map_sdk_error(operation, err);
        (0..n)
            .map(|_| match &e {
                // Throttling or a conflict of the whole: every action goes again.
                StoreError::Unavailable(_) | StoreError::Conflict(_) => Ok(Some(TxCancel::Again)),
                other => Err(StoreError::Rejected(other.to_string())),
            })
            .collect()
    }
}

/// Why one action of a cancelled transaction did not land.
enum TxCancel {
    /// Its own condition failed; the item as it was, when asked for.
    CheckFailed(Option<Item>),
    /// Cancelled for another action's sake, or by a conflicting transaction or throttling.
    Again,
}

impl TxCancel {
    fn of(reason: &CancellationReason) -> Self {
        match reason.code() {
            Some("ConditionalCheckFailed") => TxCancel::CheckFailed(reason.item().cloned()),
            _ => TxCancel::Again,
        }
    }
}

/// Splits action indexes into transactions within DynamoDB's count and size limits.
fn tx_chunks(pending: &[usize], sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let fits = chunks
            .last()
            .is_some_and(|c| c.len() < TX_ITEMS && bytes + sizes[i] <= TX_BYTES);
        if !fits {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += sizes[i];
        if let Some(last) = chunks.last_mut() {
            last.push(i);
        }
    }
    chunks
}

/// DynamoDB's size of an item: attribute names plus values.
fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.iter().map(String::len).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::M(m) => 3 + item_size(m),
        AttributeValue::L(l) => 3 + l.iter().map(value_size).sum::<usize>(),
        _ => 1,
    }
}

fn action_size(action: &TransactWriteItem) -> usize {
    let values = |m: Option<&Item>| m.map_or(0, item_size);
    if let Some(put) = action.put() {
        return item_size(put.item()) + values(put.expression_attribute_values());
    }
    if let Some(update) = action.update() {
        return item_size(update.key()) + values(update.expression_attribute_values());
    }
    512
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

/// The stored form of a call outcome: its keys, the claim expiry as a number, the
/// listings it belongs to (`gsi1` while it waits or has comments to show, always
/// `gsi2`: the tenant's calls by last update), the message compressed. Every write
/// of a whole outcome builds its item here.
fn outcome_item(tenant: &TenantId, outcome: &CallOutcome) -> StoreResult<Item> {
    let mut item = keyed(outcome, keys::call(tenant, &outcome.call_id), keys::OUTCOME)?;
    if let Some(until) = outcome.claimed_until {
        item.insert(CLAIMED_UNTIL_MS.into(), n(until.timestamp_millis()));
    }
    if let Some(expires) = outcome.expires_at {
        item.insert(TTL.into(), n(expires.timestamp()));
    }
    // One gsi1 listing at a time, the most urgent: a call whose comments wait is
    // listed for re-matching again once they are shown.
    let listed_under = if outcome.state == CallState::Waiting {
        Some((keys::waiting(tenant), outcome.call_id.clone()))
    } else if outcome.comments_pending {
        Some((keys::pending_comments(tenant), outcome.call_id.clone()))
    } else {
        match outcome.started_at {
            Some(started) if outcome.can_improve() => Some((
                keys::rematch(tenant),
                keys::rematch_listing(started, &outcome.call_id),
            )),
            _ => None,
        }
    };
    if let Some((gsi_pk, gsi_sk)) = listed_under {
        item.insert(GSI1_PK.into(), s(gsi_pk));
        item.insert(GSI1_SK.into(), s(gsi_sk));
    }
    // Always in the tenant's calls by last update (the settings page's Calls tab).
    item.insert(GSI2_PK.into(), s(keys::calls(tenant)));
    item.insert(
        GSI2_SK.into(),
        s(keys::call_listing(outcome.updated_at, &outcome.call_id)),
    );
    if let Some(message) = outcome.message.as_deref() {
        if message.len() > COMPRESS_MESSAGE_OVER {
            item.remove("message");
            item.insert(
                MESSAGE_GZ.into(),
                AttributeValue::B(Blob::new(gzip(message)?)),
            );
        }
    }
    Ok(item)
}

fn outcome_from_item(mut item: Item) -> StoreResult<CallOutcome> {
    let compressed = item.remove(MESSAGE_GZ);
    let mut outcome: CallOutcome = from_item(item)?;
    if let Some(AttributeValue::B(blob)) = compressed {
        outcome.message = Some(gunzip(blob.as_ref())?);
    }
    Ok(outcome)
}

const CLAIMED_UNTIL_MS: &str = "claimedUntilMs";
const MESSAGE_GZ: &str = "messageGz";

fn gzip(text: &str) -> StoreResult<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map_err(|e| StoreError::Rejected(format!("cannot compress a message: {e}")))
}

fn gunzip(bytes: &[u8]) -> StoreResult<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_MESSAGE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| StoreError::Corrupt(format!("a stored message does not decompress: {e}")))?;
    Ok(text)
}

/// A claim on a call that is not final and not held by a live claim.
fn claim_action(
    table: &str,
    tenant: &TenantId,
    claim: &CallClaim,
    now: DateTime<Utc>,
) -> StoreResult<TransactWriteItem> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key(keys::call(tenant, &claim.call_id), keys::OUTCOME)))
        .update_expression(
            "SET #state = :in_progress, claimedUntil = :until, claimedUntilMs = :until_ms, \
             updatedAt = :now, callId = :call_id, version = :version, \
             gsi2pk = :listing, gsi2sk = :listing_sk REMOVE gsi1pk, gsi1sk",
        )
        .condition_expression(
            "attribute_not_exists(pk) OR (NOT #state IN (:created, :enriched, :unmatched) \
             AND (#state <> :in_progress OR attribute_not_exists(claimedUntilMs) OR claimedUntilMs < :now_ms))",
        )
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":in_progress", s("in_progress"))
        .expression_attribute_values(":created", s("created"))
        .expression_attribute_values(":enriched", s("enriched"))
        .expression_attribute_values(":unmatched", s("unmatched"))
        .expression_attribute_values(":until", s(rfc3339(claim.until)))
        .expression_attribute_values(":until_ms", n(claim.until.timestamp_millis()))
        .expression_attribute_values(":now", s(rfc3339(now)))
        .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
        .expression_attribute_values(":call_id", s(claim.call_id.clone()))
        .expression_attribute_values(":version", n(claim.version as i64))
        .expression_attribute_values(":listing", s(keys::calls(tenant)))
        .expression_attribute_values(":listing_sk", s(keys::call_listing(now, &claim.call_id)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::Rejected(format!("claim: {e}")))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// What a failed claim condition found: a final call, or another's live claim.
fn claim_refused(item: Option<Item>, now: DateTime<Utc>) -> StoreResult<ClaimResult> {
    let item =
        item.ok_or_else(|| StoreError::Corrupt("a refused claim came without its item".into()))?;
    let outcome = outcome_from_item(item)?;
    if outcome.is_final() {
        return Ok(ClaimResult::Final(Box::new(outcome)));
    }
    Ok(ClaimResult::Busy {
        until: outcome.claimed_until.filter(|u| *u > now).unwrap_or(now),
    })
}

/// A versioned write of an outcome, as [`DynamoStore::put_versioned`] does alone.
fn versioned_put(table: &str, mut item: Item, expected: u64) -> StoreResult<TransactWriteItem> {
    item.insert("version".into(), n(expected as i64 + 1));
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = if expected == 0 {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put.condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected as i64))
    };
    let put = put
        .build()
        .map_err(|e| StoreError::Rejected(format!("outcome: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

impl crate::ports::StoreRequests for DynamoStore {
    fn requests_by_operation(&self) -> BTreeMap<String, u64> {
        self.requests.snapshot()
    }
}

impl ConnectionStore for DynamoStore {
    async fn get_connection(&self, tenant: &TenantId) -> StoreResult<Option<Connection>> {
        self.get(key(keys::tenant(tenant), keys::CONNECTION))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn save_connection(&self, connection: &Connection) -> StoreResult<Connection> {
        let t = &connection.tenant_id;
        let mut item = keyed(connection, keys::tenant(t), keys::CONNECTION)?;
        item.insert(GSI1_PK.into(), s(keys::status(connection.status)));
        item.insert(GSI1_SK.into(), s(keys::tenant(t)));
        let version = self.put_versioned(item, connection.version).await?;
        Ok(Connection {
            version,
            ..connection.clone()
        })
    }

    async fn tenants_with_status(
        &self,
        status: ConnectionStatus,
        page_token: Option<String>,
    ) -> StoreResult<Page<TenantId>> {
        let page: Page<Connection> = self.gsi_page(keys::status(status), page_token).await?;
        Ok(Page {
            items: page.items.into_iter().map(|c| c.tenant_id).collect(),
            next: page.next,
        })
    }

    async fn append_audit(&self, tenant: &TenantId, entry: &AuditEntry) -> StoreResult<()> {
        let item = keyed(entry, keys::tenant(tenant), keys::audit(entry.at))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (audit)", e))?;
        Ok(())
    }

    async fn audit_trail(&self, tenant: &TenantId) -> StoreResult<Vec<AuditEntry>> {
        self.query_partition(keys::tenant(tenant), Some("AUDIT#"))
            .await
    }
}

impl UserMappingStore for DynamoStore {
    async fn put_mapping(&self, tenant: &TenantId, mapping: &UserMapping) -> StoreResult<bool> {
        let item = keyed(
            mapping,
            keys::tenant(tenant),
            keys::user_mapping(&mapping.modjo_user_id),
        )?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if mapping.source == MappingSource::Auto {
            put = put
                .condition_expression("attribute_not_exists(pk) OR #source <> :manual")
                .expression_attribute_names("#source", "source")
                .expression_attribute_values(":manual", s("manual"));
        }
        let result = put
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (user mapping)", e));
        Ok(unless_conflict(result)?.is_some())
    }

    async fn get_mapping(
        &self,
        tenant: &TenantId,
        modjo_user_id: &str,
    ) -> StoreResult<Option<UserMapping>> {
        self.get(key(keys::tenant(tenant), keys::user_mapping(modjo_user_id)))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn get_mappings(
        &self,
        tenant: &TenantId,
        modjo_user_ids: &[String],
    ) -> StoreResult<Vec<UserMapping>> {
        let keys = modjo_user_ids
            .iter()
            .map(|id| key(keys::tenant(tenant), keys::user_mapping(id)))
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn list_mappings(&self, tenant: &TenantId) -> StoreResult<Vec<UserMapping>> {
        self.query_partition(keys::tenant(tenant), Some("USERMAP#"))
            .await
    }

    async fn replace_modjo_users(&self, tenant: &TenantId, users: &[ModjoUser]) -> StoreResult<()> {
        let keep: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let mut requests = Vec::with_capacity(users.len());
        for old in self.modjo_users(tenant).await? {
            if !keep.contains(old.id.as_str()) {
                requests.push(delete_request(key(
                    keys::tenant(tenant),
                    keys::modjo_user(&old.id),
                ))?);
            }
        }
        for user in users {
            requests.push(put_request(keyed(
                user,
                keys::tenant(tenant),
                keys::modjo_user(&user.id),
            )?)?);
        }
        self.batch_write(requests).await
    }

    async fn modjo_users(&self, tenant: &TenantId) -> StoreResult<Vec<ModjoUser>> {
        self.query_partition(keys::tenant(tenant), Some(keys::MODJO_USER_PREFIX))
            .await
    }

    async fn delete_mapping(&self, tenant: &TenantId, modjo_user_id: &str) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::tenant(tenant),
                keys::user_mapping(modjo_user_id),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| map_sdk_error("DeleteItem (user mapping)", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

impl CursorStore for DynamoStore {
    async fn get_cursor(&self, tenant: &TenantId, object: &str) -> StoreResult<Option<SyncCursor>> {
        self.get(key(keys::tenant(tenant), keys::cursor(object)))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_cursor(&self, tenant: &TenantId, cursor: &SyncCursor) -> StoreResult<()> {
        let item = keyed(cursor, keys::tenant(tenant), keys::cursor(&cursor.object))?;
        self.put(item, "PutItem (cursor)").await
    }

    async fn get_replay_id(&self, tenant: &TenantId, topic: &str) -> StoreResult<Option<Vec<u8>>> {
        let Some(item) = self
            .get(key(keys::tenant(tenant), keys::replay(topic)))
            .await?
        else {
            return Ok(None);
        };
        match item.get("replayId") {
            Some(AttributeValue::B(b)) => Ok(Some(b.clone().into_inner())),
            _ => Err(StoreError::Corrupt(
                "replay id item without replayId".into(),
            )),
        }
    }

    async fn put_replay_id(
        &self,
        tenant: &TenantId,
        topic: &str,
        replay_id: &[u8],
    ) -> StoreResult<()> {
        let mut item = key(keys::tenant(tenant), keys::replay(topic));
        item.insert("topic".into(), s(topic));
        item.insert(
            "replayId".into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(replay_id.to_vec())),
        );
        item.insert("updatedAt".into(), s(Utc::now().to_rfc3339()));
        self.put(item, "PutItem (replay id)").await
    }

    async fn put_sync_status(&self, tenant: &TenantId, status: &SyncStatus) -> StoreResult<()> {
        let item = keyed(
            status,
            keys::tenant(tenant),
            keys::sync_status(&status.object),
        )?;
        self.put(item, "PutItem (sync status)").await
    }

    async fn sync_statuses(&self, tenant: &TenantId) -> StoreResult<Vec<SyncStatus>> {
        self.query_partition(keys::tenant(tenant), Some("SYNCSTATUS#"))
            .await
    }
}

impl LeaseStore for DynamoStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        let ttl = chrono::Duration::from_std(ttl)
            .map_err(|_| StoreError::Rejected("lease duration out of range".into()))?;
        let lease = Lease {
            name: name.to_string(),
            holder: holder.to_string(),
            expires_at: now + ttl,
        };
        let mut item = keyed(&lease, keys::tenant(tenant), keys::lease(name))?;
        item.insert("expiresAtMs".into(), n(lease.expires_at.timestamp_millis()));
        // Expired leases are cleaned up by DynamoDB a day later.
        item.insert(TTL.into(), n(lease.expires_at.timestamp() + 86_400));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR holder = :holder OR expiresAtMs < :now",
            )
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (lease)", e));
        Ok(unless_conflict(result)?.map(|_| lease))
    }

    async fn release_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
    ) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::tenant(tenant), keys::lease(name))))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await
            .map_err(|e| map_sdk_error("DeleteItem (lease)", e));
        Ok(unless_conflict(result)?.is_some())
    }
}

impl RecordStore for DynamoStore {
    async fn get_records(&self, tenant: &TenantId, ids: &[String]) -> StoreResult<Vec<CrmRecord>> {
        let keys = ids
            .iter()
            .map(|id| key(keys::record(tenant, id), keys::RECORD))
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect()
    }

    async fn apply_record_changes(
        &self,
        tenant: &TenantId,
        changes: &[RecordChange],
    ) -> StoreResult<()> {
        let mut requests = Vec::new();
        for change in changes {
            match change {
                RecordChange::Upsert {
                    record,
                    index,
                    previous_keys,
                } => {
                    let current: HashSet<&IndexKey> = record.index_keys.iter().collect();
                    if index.len() != current.len()
                        || index.iter().any(|e| !current.contains(&e.key))
                    {
                        return Err(StoreError::Rejected(format!(
                            "index entries of {} do not match its index keys",
                            record.id
                        )));
                    }
                    for stale in previous_keys.iter().filter(|k| !current.contains(k)) {
                        requests.push(delete_request(key(keys::index(tenant, stale), &record.id))?);
                    }
                    let mut item = keyed(record, keys::record(tenant, &record.id), keys::RECORD)?;
                    erase::list_record(&mut item, tenant, &record.id);
                    requests.push(put_request(item)?);
                    for entry in index {
                        requests.push(put_request(keyed(
                            entry,
                            keys::index(tenant, &entry.key),
                            &record.id,
                        )?)?);
                    }
                }
                RecordChange::Delete { id, previous_keys } => {
                    requests.push(delete_request(key(keys::record(tenant, id), keys::RECORD))?);
                    for k in previous_keys {
                        requests.push(delete_request(key(keys::index(tenant, k), id))?);
                    }
                }
            }
        }
        self.batch_write(requests).await
    }

    async fn query_index(&self, tenant: &TenantId, key: &IndexKey) -> StoreResult<Vec<IndexEntry>> {
        self.query_partition(keys::index(tenant, key), None).await
    }

    async fn query_index_many(
        &self,
        tenant: &TenantId,
        keys: &[IndexKey],
    ) -> StoreResult<HashMap<IndexKey, Vec<IndexEntry>>> {
        let distinct: Vec<IndexKey> = keys
            .iter()
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let lookups = distinct.into_iter().map(|k| async move {
            let entries = self.query_partition(keys::index(tenant, &k), None).await?;
            Ok::<_, StoreError>((k, entries))
        });
        futures::stream::iter(lookups)
            .buffer_unordered(LOOKUP_CONCURRENCY)
            .try_collect()
            .await
    }
}

impl CallStore for DynamoStore {
    async fn get_outcome(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> StoreResult<Option<CallOutcome>> {
        self.get(key(keys::call(tenant, call_id), keys::OUTCOME))
            .await?
            .map(outcome_from_item)
            .transpose()
    }

    async fn get_outcomes(
        &self,
        tenant: &TenantId,
        call_ids: &[String],
    ) -> StoreResult<Vec<CallOutcome>> {
        let keys = call_ids
            .iter()
            .map(|c| key(keys::call(tenant, c), keys::OUTCOME))
            .collect();
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(outcome_from_item)
            .collect()
    }

    async fn save_outcome(
        &self,
        tenant: &TenantId,
        outcome: &CallOutcome,
    ) -> StoreResult<CallOutcome> {
        let version = self
            .put_versioned(outcome_item(tenant, outcome)?, outcome.version)
            .await?;
        Ok(CallOutcome {
            version,
            ..outcome.clone()
        })
    }

    async fn save_outcomes(
        &self,
        tenant: &TenantId,
        outcomes: &[CallOutcome],
    ) -> StoreResult<Vec<StoreResult<CallOutcome>>> {
        once_each(outcomes.iter().map(|o| o.call_id.as_str()), |id| {
            format!("call {id} appears twice in one outcome write")
        })?;
        let actions = outcomes
            .iter()
            .map(|o| versioned_put(&self.table, outcome_item(tenant, o)?, o.version))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(self
            .transact_each(
                "TransactWriteItems (outcomes)",
                actions,
                |i| CallOutcome {
                    version: outcomes[i].version + 1,
                    ..outcomes[i].clone()
                },
                |i, _| {
                    Err(StoreError::Conflict(format!(
                        "the outcome of {} changed meanwhile",
                        outcomes[i].call_id
                    )))
                },
            )
            .await)
    }

    async fn claim_calls(
        &self,
        tenant: &TenantId,
        claims: &[CallClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<StoreResult<ClaimResult>>> {
        once_each(claims.iter().map(|c| c.call_id.as_str()), |id| {
            format!("call {id} is claimed twice in one request")
        })?;
        let actions = claims
            .iter()
            .map(|c| claim_action(&self.table, tenant, c, now))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(self
            .transact_each(
                "TransactWriteItems (claims)",
                actions,
                |_| ClaimResult::Claimed,
                |_, item| claim_refused(item, now),
            )
            .await)
    }

    async fn recent_calls(
        &self,
        tenant: &TenantId,
        state: Option<CallState>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.call_listing_page(tenant, state.map(ListFilter::State), limit, cursor)
            .await
    }

    async fn calls_linked_to(
        &self,
        tenant: &TenantId,
        record_ids: &[String],
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        if record_ids.is_empty() || record_ids.len() > crate::ports::MAX_LINKED_IDS {
            return Err(StoreError::Rejected(format!(
                "1 to {} record ids per listing",
                crate::ports::MAX_LINKED_IDS
            )));
        }
        self.call_listing_page(
            tenant,
            Some(ListFilter::LinkedTo(record_ids)),
            crate::read::MAX_CALLS_PAGE,
            cursor,
        )
        .await
    }

    async fn calls_needing_attention(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.call_listing_page(tenant, Some(ListFilter::NeedsAttention), limit, cursor)
            .await
    }

    async fn waiting_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.gsi_page_with(keys::waiting(tenant), page_token, outcome_from_item)
            .await
    }

    async fn pending_comment_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.gsi_page_with(
            keys::pending_comments(tenant),
            page_token,
            outcome_from_item,
        )
        .await
    }

    async fn rematch_calls(
        &self,
        tenant: &TenantId,
        started_since: DateTime<Utc>,
        limit: usize,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        let listing = keys::rematch(tenant);
        let start = page_token.map(|t| decode_page_token(&t)).transpose()?;
        if let Some(k) = &start {
            let text = |name: &str| match k.get(name) {
                Some(AttributeValue::S(v)) => v.as_str(),
                _ => "",
            };
            if text(GSI1_PK) != listing || !text(PK).starts_with(&keys::call(tenant, "")) {
                return Err(StoreError::Rejected("invalid page token".into()));
            }
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :g AND gsi1sk >= :since")
            .expression_attribute_values(":g", s(listing))
            .expression_attribute_values(":since", s(rfc3339_millis(started_since)))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| map_sdk_error("Query (gsi1 re-match)", e))?;
        page_of(out.items, out.last_evaluated_key, outcome_from_item)
    }
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

impl CommentStore for DynamoStore {
    async fn upsert_comment(
        &self,
        tenant: &TenantId,
        comment: &StoredComment,
    ) -> StoreResult<bool> {
        let mut item = keyed(
            comment,
            keys::call(tenant, &comment.call_id),
            keys::comment(&comment.comment_id),
        )?;
        let updated_ms = n(comment.updated_at.timestamp_millis());
        item.insert("updatedAtMs".into(), updated_ms.clone());
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR updatedAtMs < :u")
            .expression_attribute_values(":u", updated_ms)
            .build()
            .map_err(|e| StoreError::Rejected(format!("comment: {e}")))?;
        let raise = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::call(tenant, &comment.call_id),
                keys::COMMENT_STATE,
            )))
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Rejected(format!("comment state: {e}")))?;
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(raise).build(),
        ];
        // The comment and its state move together: both land, or neither.
        for attempt in 0..MAX_TX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
            }
            let results = self
                .transact("TransactWriteItems (comment)", actions.clone())
                .await;
            match results.into_iter().next() {
                Some(Ok(None)) => return Ok(true),
                // A version with the same or a newer `updatedAt` is stored.
                Some(Ok(Some(TxCancel::CheckFailed(_)))) => return Ok(false),
                Some(Ok(Some(TxCancel::Again))) => continue,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Err(StoreError::Unavailable(
            "TransactWriteItems (comment): still cancelled by conflicting transactions".into(),
        ))
    }

    async fn comments_for_call(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> StoreResult<Vec<StoredComment>> {
        self.query_partition(keys::call(tenant, call_id), Some("COMMENT#"))
            .await
    }

    async fn comment_versions(
        &self,
        tenant: &TenantId,
        call_ids: &[String],
    ) -> StoreResult<HashMap<String, u64>> {
        let prefix = keys::call(tenant, "");
        let keys = call_ids
            .iter()
            .map(|c| key(keys::call(tenant, c), keys::COMMENT_STATE))
            .collect();
        let mut versions = HashMap::new();
        for item in self.batch_get(keys).await? {
            let call = match item.get(PK) {
                Some(AttributeValue::S(pk)) => pk.strip_prefix(&prefix).map(str::to_string),
                _ => None,
            };
            let version = match item.get("version") {
                Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            };
            match (call, version) {
                (Some(call), Some(version)) => {
                    versions.insert(call, version);
                }
                _ => {
                    return Err(StoreError::Corrupt(
                        "a comment state without its version".into(),
                    ));
                }
            }
        }
        Ok(versions)
    }
}

impl OAuthStateStore for DynamoStore {
    async fn put_pending(
        &self,
        tenant: &TenantId,
        pending: &PendingAuthorization,
    ) -> StoreResult<()> {
        let mut item = keyed(pending, keys::tenant(tenant), keys::oauth(&pending.nonce))?;
        item.insert(TTL.into(), n(pending.expires_at.timestamp()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (oauth state)", e))?;
        Ok(())
    }

    async fn take_pending(
        &self,
        tenant: &TenantId,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingAuthorization>> {
        // Delete-and-return is atomic: of two concurrent callbacks, exactly one gets it.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::tenant(tenant), keys::oauth(nonce))))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| map_sdk_error("DeleteItem (oauth state)", e));
        let Some(out) = unless_conflict(result)? else {
            return Ok(None);
        };
        let item = out.attributes.unwrap_or_default();
        let pending: PendingAuthorization = from_item(item)?;
        // TTL deletion is lazy (up to days): expiry is checked here, not left to it.
        Ok((pending.expires_at > now).then_some(pending))
    }
}

/// Creates the table as `template.yaml` declares it (pk/sk, gsi1, gsi2, TTL on `ttl`,
/// on-demand). Used by tests and the local stack against moto.
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))
    };
    let key_elem = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))
    };
    let gsi = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key_elem(pk, KeyType::Hash)?)
            .key_schema(key_elem(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(GSI1_PK)?)
        .attribute_definitions(attr(GSI1_SK)?)
        .attribute_definitions(attr(GSI2_PK)?)
        .attribute_definitions(attr(GSI2_SK)?)
        .key_schema(key_elem(PK, KeyType::Hash)?)
        .key_schema(key_elem(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi(GSI1, GSI1_PK, GSI1_SK)?)
        .global_secondary_indexes(gsi(GSI2, GSI2_PK, GSI2_SK)?)
        .send()
        .await
        .map_err(|e| map_sdk_error("CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(|e| StoreError::Rejected(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| map_sdk_error("UpdateTimeToLive", e))?;
    Ok(())
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
