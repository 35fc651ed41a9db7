//! The sync's check that an erased person does not come back: records it would
//! write for an erased Contact or Lead, or that point at one (an email on their
//! timeline, their opportunity role), are left out.

use crate::domain::{IndexKind, TenantId};
use crate::ports::{RecordChange, StoreResult};

use super::store::ErasureStore;

/// `changes` without the upserts of erased people and of records pointing at
/// them. One read of the tenant's tombstones, only when there is an upsert.
pub async fn without_erased<S: ErasureStore>(
    store: &S,
    tenant: &TenantId,
    changes: Vec<RecordChange>,
) -> StoreResult<Vec<RecordChange>> {
    if !changes
        .iter()
        .any(|c| matches!(c, RecordChange::Upsert { .. }))
    {
        return Ok(changes);
    }
    let erased = store.erased_ids(tenant).await?;
    if erased.is_empty() {
        return Ok(changes);
    }
    let before = changes.len();
    let kept: Vec<RecordChange> = changes
        .into_iter()
        .filter(|c| match c {
            RecordChange::Upsert { record, .. } => {
                !erased.contains(&record.id)
                    && !record.index_keys.iter().any(|k| {
                        matches!(k.kind, IndexKind::Timeline | IndexKind::ContactOpportunity)
                            && erased.contains(&k.value)
                    })
            }
            RecordChange::Delete { .. } => true,
        })
        .collect();
    if kept.len() < before {
        tracing::info!(tenant_id = %tenant, left_out = before - kept.len(), "records of erased people not stored");
    }
    Ok(kept)
}
