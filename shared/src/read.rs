//! The read side for the platform (DESIGN §3): sync status, a CRM record with its
//! email timeline. The platform never reads DynamoDB directly.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::Store;
use crate::domain::{ConnectionStatus, SyncStatus, TenantId, validate_external_id};
use crate::ports::StoreError;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncView {
    pub status: ConnectionStatus,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub api_usage_percent: Option<f64>,
    pub objects: Vec<SyncStatus>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineItem {
    pub activity_id: String,
    pub object: String,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordView {
    pub id: String,
    pub object: String,
    pub system_modstamp: DateTime<Utc>,
    pub fields: Map<String, Value>,
    /// Email activities linked to the record, newest first.
    pub email_timeline: Vec<TimelineItem>,
}

pub async fn sync_view<S: Store>(
    store: &S,
    tenant: &TenantId,
) -> Result<Option<SyncView>, StoreError> {
    let Some(connection) = store.get_connection(tenant).await? else {
        return Ok(None);
    };
    let mut objects = store.sync_statuses(tenant).await?;
    objects.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(Some(SyncView {
        status: connection.status,
        last_sync_at: connection.last_sync_at,
        api_usage_percent: connection.api_usage.map(|u| u.percent_shown()),
        objects,
    }))
}

/// A stored record of the tenant with its email timeline (at most `limit` items).
pub async fn record_view<S: Store>(
    store: &S,
    tenant: &TenantId,
    id: &str,
    limit: usize,
) -> Result<Option<RecordView>, StoreError> {
    if !validate_external_id(id) {
        return Ok(None);
    }
    let Some(record) = store
        .get_records(tenant, &[id.to_string()])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let timeline = crate::sync::email_timeline(store, tenant, &record.id, limit).await?;
    Ok(Some(RecordView {
        id: record.id,
        object: record.object,
        system_modstamp: record.system_modstamp,
        fields: record.fields,
        email_timeline: timeline
            .into_iter()
            .map(|e| TimelineItem {
                activity_id: e.record_id,
                object: e.object,
                fields: e.data,
            })
            .collect(),
    }))
}

/// A call's outcome as the platform sees it: the Task, how it was made, and the
/// records linked (the kept message stays internal).
pub async fn call_view<S: Store>(
    store: &S,
    tenant: &TenantId,
    call_id: &str,
) -> Result<Option<Value>, StoreError> {
    if !validate_external_id(call_id) {
        return Ok(None);
    }
    let Some(mut outcome) = store.get_outcome(tenant, call_id).await? else {
        return Ok(None);
    };
    outcome.message = None;
    outcome.claimed_until = None;
    let mut view =
        serde_json::to_value(&outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(map) = view.as_object_mut() {
        map.remove("version");
    }
    Ok(Some(view))
}
