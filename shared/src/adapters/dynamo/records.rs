//! Imported CRM records and their index entries ([`RecordStore`]).

use super::*;

impl RecordStore for DynamoStore {
    async fn get_records(&self, tenant: &TenantId, ids: &[String]) -> StoreResult<Vec<CrmRecord>> {
        let keys = ids
            .iter()
            .map(|id| key(keys::record(tenant, id), keys::RECORD))
            .collect();
        self.batch_get_as(keys, from_item).await
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
