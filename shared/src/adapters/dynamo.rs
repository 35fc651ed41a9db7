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
//! | CRM record        | `R#<tenant>#<sfId>`         | `RECORD`                  |                            |
//! | index entry       | `I#<tenant>#<KIND>#<value>` | `<sfId>`                  |                            |
//! | call outcome      | `C#<tenant>#<callId>`       | `OUTCOME`                 | `WAITING#<tenant>` / `<callId>` while waiting; `COMMENTS#<tenant>` / `<callId>` while comments are pending |
//! | comment           | `C#<tenant>#<callId>`       | `COMMENT#<commentId>`     |                            |
//!
//! Call outcomes are also in the second index, `gsi2`: `CALLS#<tenant>` /
//! `<updatedAt, ISO 8601 UTC in milliseconds>#<callId>`, which lists a tenant's
//! calls newest first (the settings page's Calls tab).
//!
//! Records, index values and calls each get their own partition key, so a tenant's
//! million-record backfill spreads over a million partitions instead of one.
//! `ttl` (epoch seconds) expires OAuth states and leases.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, PutRequest,
    ReturnValue, ScalarAttributeType, TimeToLiveSpecification, WriteRequest,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{backoff, map_sdk_error};
use crate::domain::{
    AuditEntry, CallOutcome, CallState, Connection, ConnectionStatus, CrmRecord, IndexEntry,
    IndexKey, Lease, MappingSource, ModjoUser, PendingAuthorization, StoredComment, SyncCursor,
    SyncStatus, TenantId, UserMapping,
};
use crate::ports::{
    CallStore, CommentStore, ConnectionStore, CursorStore, LeaseStore, OAuthStateStore, Page,
    RecordChange, RecordStore, StoreError, StoreResult, UserMappingStore,
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
    pub fn calls(t: &TenantId) -> String {
        format!("CALLS#{t}")
    }
    /// Sorts by last update, then call id: ISO 8601 in UTC with a fixed number of
    /// digits orders as time does.
    pub fn call_listing(outcome: &CallOutcome) -> String {
        format!(
            "{}#{}",
            outcome
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome.call_id
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

/// DynamoDB adapter for every storage port. Cheap to clone.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    page_size: i32,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            page_size: 500,
        }
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

    /// One page of the GSI under `gsi_pk`, decoded.
    async fn gsi_page<T: DeserializeOwned>(
        &self,
        gsi_pk: String,
        page_token: Option<String>,
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
        let next = match out.last_evaluated_key {
            Some(k) if !k.is_empty() => Some(encode_page_token(&k)?),
            _ => None,
        };
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<StoreResult<_>>()?;
        Ok(Page { items, next })
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
                tokio::time::sleep(backoff(attempt)).await;
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
                    tokio::time::sleep(backoff(attempt)).await;
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

/// A call outcome as stored, with the index entries that list it: `gsi1` while it
/// waits or has comments to show, and always `gsi2` (the tenant's calls by last
/// update). Every write of an outcome builds its item here.
fn outcome_item(tenant: &TenantId, outcome: &CallOutcome) -> StoreResult<Item> {
    let mut item = keyed(outcome, keys::call(tenant, &outcome.call_id), keys::OUTCOME)?;
    let listed_under = if outcome.state == CallState::Waiting {
        Some(keys::waiting(tenant))
    } else if outcome.comments_pending {
        Some(keys::pending_comments(tenant))
    } else {
        None
    };
    if let Some(gsi_pk) = listed_under {
        item.insert(GSI1_PK.into(), s(gsi_pk));
        item.insert(GSI1_SK.into(), s(outcome.call_id.clone()));
    }
    item.insert(GSI2_PK.into(), s(keys::calls(tenant)));
    item.insert(GSI2_SK.into(), s(keys::call_listing(outcome)));
    Ok(item)
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
                    requests.push(put_request(keyed(
                        record,
                        keys::record(tenant, &record.id),
                        keys::RECORD,
                    )?)?);
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
}

impl CallStore for DynamoStore {
    async fn get_outcome(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> StoreResult<Option<CallOutcome>> {
        self.get(key(keys::call(tenant, call_id), keys::OUTCOME))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn save_outcome(
        &self,
        tenant: &TenantId,
        outcome: &CallOutcome,
    ) -> StoreResult<CallOutcome> {
        let item = outcome_item(tenant, outcome)?;
        let version = self.put_versioned(item, outcome.version).await?;
        Ok(CallOutcome {
            version,
            ..outcome.clone()
        })
    }

    async fn recent_calls(
        &self,
        tenant: &TenantId,
        state: Option<CallState>,
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
            if let Some(state) = state {
                q = q
                    .filter_expression("#state = :state")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":state", s(state.as_str()));
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
            .map(from_item)
            .collect::<StoreResult<_>>()?;
        Ok(Page {
            items,
            next: next.map(|k| encode_page_token(&k)).transpose()?,
        })
    }

    async fn waiting_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.gsi_page(keys::waiting(tenant), page_token).await
    }

    async fn pending_comment_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.gsi_page(keys::pending_comments(tenant), page_token)
            .await
    }
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
        item.insert(
            "updatedAtMs".into(),
            n(comment.updated_at.timestamp_millis()),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR updatedAtMs < :u")
            .expression_attribute_values(":u", n(comment.updated_at.timestamp_millis()))
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (comment)", e));
        Ok(unless_conflict(result)?.is_some())
    }

    async fn comments_for_call(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> StoreResult<Vec<StoredComment>> {
        self.query_partition(keys::call(tenant, call_id), Some("COMMENT#"))
            .await
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
