//! A record's email timeline, read from the index.

use super::*;

/// A record's email timeline, newest first.
pub async fn email_timeline<S: RecordStore>(
    store: &S,
    tenant: &TenantId,
    record_id: &str,
    limit: usize,
) -> Result<Vec<IndexEntry>, StoreError> {
    let key = IndexKey {
        kind: crate::domain::IndexKind::Timeline,
        value: record_id.to_string(),
    };
    let mut entries = store.query_index(tenant, &key).await?;
    entries.sort_by(|a, b| {
        let at = |e: &IndexEntry| {
            e.data
                .get("occurredAt")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        at(b).cmp(&at(a))
    });
    entries.truncate(limit);
    Ok(entries)
}
