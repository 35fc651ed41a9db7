//! The sync's check that an erased person does not come back: records it would
//! write for an erased Contact or Lead, or that point at one (an email on their
//! timeline, their opportunity role), are left out.

use crate::domain::{IndexKind, TenantId};
use crate::ports::{RecordChange, StoreResult};

use crate::ports::ErasureStore;

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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::Utc;

    use super::*;
    use crate::domain::{CrmRecord, IndexKey};
    use crate::ports::PurgeProgress;

    struct Erased(HashSet<String>);

    impl ErasureStore for Erased {
        async fn erased_ids(&self, _: &TenantId) -> StoreResult<HashSet<String>> {
            Ok(self.0.clone())
        }
        async fn add_erased_ids(&self, _: &TenantId, _: &[String]) -> StoreResult<()> {
            unreachable!("the sync never erases")
        }
        async fn purge_step(&self, _: &TenantId, _: usize) -> StoreResult<PurgeProgress> {
            unreachable!("the sync never purges")
        }
    }

    fn upsert(id: &str, keys: &[(IndexKind, &str)]) -> RecordChange {
        let index_keys: Vec<IndexKey> = keys
            .iter()
            .map(|(kind, value)| IndexKey {
                kind: *kind,
                value: value.to_string(),
            })
            .collect();
        RecordChange::Upsert {
            record: CrmRecord {
                object: "Contact".into(),
                id: id.into(),
                system_modstamp: Utc::now(),
                fields: Default::default(),
                index_keys,
            },
            index: Vec::new(),
            previous_keys: Vec::new(),
        }
    }

    fn ids(changes: &[RecordChange]) -> Vec<&str> {
        changes
            .iter()
            .map(|c| match c {
                RecordChange::Upsert { record, .. } => record.id.as_str(),
                RecordChange::Delete { id, .. } => id.as_str(),
            })
            .collect()
    }

    #[tokio::test]
    async fn erased_people_and_what_points_at_them_are_left_out() {
        let store = Erased(HashSet::from(["003JANE".to_string()]));
        let tenant = TenantId::parse("acme").unwrap();
        let changes = vec![
            upsert("003JANE", &[(IndexKind::Email, "jane@acme.com")]),
            upsert("02sMAIL", &[(IndexKind::Timeline, "003JANE")]),
            upsert("00kROLE", &[(IndexKind::ContactOpportunity, "003JANE")]),
            upsert("003BOB", &[(IndexKind::Timeline, "006OPP")]),
            RecordChange::Delete {
                id: "003JANE".into(),
                previous_keys: Vec::new(),
            },
        ];
        let kept = without_erased(&store, &tenant, changes).await.unwrap();
        assert_eq!(
            ids(&kept),
            ["003BOB", "003JANE"],
            "Bob, and Jane's deletion"
        );
    }
}
