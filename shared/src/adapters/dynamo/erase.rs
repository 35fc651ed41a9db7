//! [`ErasureStore`] on the single table: tombstones under the tenant's
//! partition (`T#<tenant>` / `ERASED#<recordId>`), and the purge of a tenant.
//!
//! A purge finds the tenant's items through what lists them, never by a Scan:
//! calls through the `gsi2` call listing (each call's partition holds its
//! outcome, comments and comment state); CRM records through their `gsi1`
//! listing ([`list_record`]), each with the index entries it names
//! (`indexKeys`); the tenant's own partition by a Query. The listing costs one
//! `gsi1` write per record written; records stored before it existed are listed
//! at their next write.

use std::collections::HashSet;

use super::*;
use crate::ports::{ErasureStore, PurgeProgress};

const ERASED_PREFIX: &str = "ERASED#";
/// Calls read from the listing per request.
const CALLS_PER_READ: i32 = 100;
/// Records read from each shard of the listing per request.
const RECORDS_PER_READ: i32 = 100;
/// The record listing is spread over this many `gsi1` partitions, so that a
/// large first sync does not write thousands of records a second to one.
const RECORD_SHARDS: u32 = 16;

/// `gsi1` keys that list a tenant's CRM record (a purge finds it there):
/// `RECORDS#<tenant>#<shard>` / `<sfId>`. Written with every record.
pub(super) fn list_record(item: &mut Item, tenant: &TenantId, id: &str) {
    let shard = id.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    }) % RECORD_SHARDS;
    item.insert(GSI1_PK.into(), s(record_listing(tenant, shard)));
    item.insert(GSI1_SK.into(), s(id));
}

fn record_listing(tenant: &TenantId, shard: u32) -> String {
    format!("RECORDS#{tenant}#{shard:02}")
}

fn erased(id: &str) -> String {
    format!("{ERASED_PREFIX}{id}")
}

impl DynamoStore {
    fn count(progress: &mut PurgeProgress, kind: &str, n: usize) {
        *progress.deleted.entry(kind.to_string()).or_default() += n as u64;
    }

    /// Deletes a page of calls (every item of each call's partition); `false`
    /// when the listing is empty.
    async fn purge_calls(&self, tenant: &TenantId, p: &mut PurgeProgress) -> StoreResult<bool> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI2)
            .key_condition_expression("gsi2pk = :pk")
            .expression_attribute_values(":pk", s(keys::calls(tenant)))
            .projection_expression("pk")
            .limit(CALLS_PER_READ)
            .send()
            .await
            .map_err(|e| map_sdk_error("Query (gsi2)", e))?;
        let partitions: Vec<String> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| match i.get(PK) {
                Some(AttributeValue::S(pk)) => Some(pk.clone()),
                _ => None,
            })
            .collect();
        if partitions.is_empty() {
            return Ok(false);
        }
        let mut requests = Vec::new();
        for pk in &partitions {
            for item in self.partition_keys(pk.clone()).await? {
                let comment =
                    matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk != keys::OUTCOME);
                Self::count(p, if comment { "comments" } else { "calls" }, 1);
                requests.push(delete_request(item)?);
            }
        }
        self.batch_write(requests).await?;
        Ok(true)
    }

    /// The keys of every item of a partition.
    async fn partition_keys(&self, pk: String) -> StoreResult<Vec<Item>> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .projection_expression("pk, sk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| map_sdk_error("Query", e))?;
            keys.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(keys),
            }
        }
    }

    /// One page of each shard of the tenant's record listing, deleted with the
    /// records' index entries; `false` once the listing is empty.
    async fn purge_records(&self, tenant: &TenantId, p: &mut PurgeProgress) -> StoreResult<bool> {
        #[derive(serde::Deserialize)]
        struct Listed {
            pk: String,
            #[serde(default, rename = "indexKeys")]
            index_keys: Vec<IndexKey>,
        }
        let mut requests = Vec::new();
        for shard in 0..RECORD_SHARDS {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("gsi1pk = :pk")
                .expression_attribute_values(":pk", s(record_listing(tenant, shard)))
                .projection_expression("pk, indexKeys")
                .limit(RECORDS_PER_READ)
                .send()
                .await
                .map_err(|e| map_sdk_error("Query (gsi1)", e))?;
            for item in out.items.unwrap_or_default() {
                let listed: Listed = from_item(item)?;
                let id = listed
                    .pk
                    .strip_prefix(&keys::record(tenant, ""))
                    .unwrap_or_default()
                    .to_string();
                Self::count(p, "records", 1);
                Self::count(p, "indexEntries", listed.index_keys.len());
                requests.push(delete_request(key(listed.pk, keys::RECORD))?);
                for k in &listed.index_keys {
                    requests.push(delete_request(key(keys::index(tenant, k), &id))?);
                }
            }
        }
        if requests.is_empty() {
            return Ok(false);
        }
        self.batch_write(requests).await?;
        Ok(true)
    }

    /// The tenant's own items but its audit trail.
    async fn purge_tenant_items(
        &self,
        tenant: &TenantId,
        p: &mut PurgeProgress,
    ) -> StoreResult<()> {
        let mut requests = Vec::new();
        for item in self.partition_keys(keys::tenant(tenant)).await? {
            let audit =
                matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk.starts_with("AUDIT#"));
            if !audit {
                Self::count(p, "tenantItems", 1);
                requests.push(delete_request(item)?);
            }
        }
        self.batch_write(requests).await
    }
}

impl ErasureStore for DynamoStore {
    async fn erased_ids(&self, tenant: &TenantId) -> StoreResult<HashSet<String>> {
        #[derive(serde::Deserialize)]
        struct Tombstone {
            sk: String,
        }
        let items: Vec<Tombstone> = self
            .query_partition(keys::tenant(tenant), Some(ERASED_PREFIX))
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|t| t.sk.strip_prefix(ERASED_PREFIX).map(str::to_string))
            .collect())
    }

    async fn add_erased_ids(&self, tenant: &TenantId, ids: &[String]) -> StoreResult<()> {
        let requests = ids
            .iter()
            .map(|id| put_request(key(keys::tenant(tenant), erased(id))))
            .collect::<StoreResult<Vec<_>>>()?;
        self.batch_write(requests).await
    }

    async fn purge_step(
        &self,
        tenant: &TenantId,
        max_requests: usize,
    ) -> StoreResult<PurgeProgress> {
        let mut progress = PurgeProgress::default();
        let mut spent = 0;
        while spent < max_requests {
            spent += 1;
            if !self.purge_calls(tenant, &mut progress).await? {
                break;
            }
        }
        while spent < max_requests {
            spent += 1;
            if !self.purge_records(tenant, &mut progress).await? {
                self.purge_tenant_items(tenant, &mut progress).await?;
                progress.done = true;
                break;
            }
        }
        Ok(progress)
    }
}
