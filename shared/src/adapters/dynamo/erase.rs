//! [`ErasureStore`] on the single table: tombstones under the tenant's
//! partition (`T#<tenant>` / `ERASED#<recordId>`), and the purge of a tenant.
//!
//! A purge finds the tenant's items through what lists them: calls through the
//! `gsi2` call listing (each call's partition holds its outcome, comments and
//! comment state), the tenant's own partition by a Query. CRM records and index
//! entries each have their own partition and no listing (a listing would cost
//! one more index write for every record the sync writes, forever): they are
//! found by a Scan filtered on the tenant's key prefixes, read in steps whose
//! position is kept in the tenant's partition (`PURGE`), so that a purge, rare,
//! pays for the table once rather than every sync paying for a listing.

use std::collections::HashSet;

use super::*;
use crate::erase::store::{ErasureStore, PurgeProgress};

const ERASED_PREFIX: &str = "ERASED#";
const PURGE: &str = "PURGE";
const SCAN_AFTER: &str = "scanAfter";
/// Calls read from the listing per request.
const CALLS_PER_READ: i32 = 100;

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

    /// One Scan page of the tenant's records and index entries, deleted; `false`
    /// once the table has been read through.
    async fn purge_records(&self, tenant: &TenantId, p: &mut PurgeProgress) -> StoreResult<bool> {
        let position = key(keys::tenant(tenant), PURGE);
        let start = match self.get(position.clone()).await? {
            Some(item) => match item.get(SCAN_AFTER) {
                Some(AttributeValue::S(token)) => Some(decode_page_token(token)?),
                Some(AttributeValue::Bool(true)) => return Ok(false),
                _ => None,
            },
            None => None,
        };
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("begins_with(pk, :record) OR begins_with(pk, :index)")
            .expression_attribute_values(":record", s(keys::record(tenant, "")))
            .expression_attribute_values(":index", s(format!("I#{tenant}#")))
            .projection_expression("pk, sk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| map_sdk_error("Scan", e))?;
        let items = out.items.unwrap_or_default();
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let record = matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk == keys::RECORD);
            Self::count(p, if record { "records" } else { "indexEntries" }, 1);
            requests.push(delete_request(item)?);
        }
        self.batch_write(requests).await?;
        let mut next = position;
        let after = match out.last_evaluated_key.filter(|k| !k.is_empty()) {
            Some(k) => s(encode_page_token(&k)?),
            None => AttributeValue::Bool(true),
        };
        next.insert(SCAN_AFTER.into(), after);
        self.put(next, "PutItem").await?;
        Ok(true)
    }

    /// The tenant's own items but its audit trail (the purge's position last).
    async fn purge_tenant_items(
        &self,
        tenant: &TenantId,
        p: &mut PurgeProgress,
    ) -> StoreResult<()> {
        let mut requests = Vec::new();
        let mut position = None;
        for item in self.partition_keys(keys::tenant(tenant)).await? {
            match item.get(SK) {
                Some(AttributeValue::S(sk)) if sk.starts_with("AUDIT#") => {}
                Some(AttributeValue::S(sk)) if sk == PURGE => position = Some(item),
                _ => {
                    Self::count(p, "tenantItems", 1);
                    requests.push(delete_request(item)?);
                }
            }
        }
        self.batch_write(requests).await?;
        if let Some(position) = position {
            self.batch_write(vec![delete_request(position)?]).await?;
        }
        Ok(())
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
