//! The read side for the platform (DESIGN §3): sync status, a CRM record with its
//! email timeline, the calls and what became of them. The platform never reads
//! DynamoDB directly.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::BudgetThresholds;
use crate::connect::ApiUsageView;
use crate::domain::{
    CallOutcome, CallState, ConnectionStatus, SyncStatus, TenantId, validate_external_id,
};
use crate::ports::{
    CallStore, ConnectionStore, CursorStore, MAX_CALLS_PAGE, Page, RecordStore, StoreError,
};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncView {
    pub status: ConnectionStatus,
    /// Why the status is what it is (e.g. what the admin must do to reconnect).
    pub status_reason: Option<String>,
    pub last_sync_at: Option<DateTime<Utc>>,
    /// When an admin last asked for a sync now.
    pub sync_requested_at: Option<DateTime<Utc>>,
    pub api_usage_percent: Option<f64>,
    /// The org's daily API allocation and its last observed use.
    pub api_usage: Option<ApiUsageView>,
    pub budget: BudgetView,
    pub objects: Vec<SyncStatus>,
}

/// Where the product stops spending the org's API allocation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    /// The sync pauses at or above this share of the daily allocation.
    pub sync_pauses_at_percent: u8,
    /// Calls wait (and are logged later) at or above this share.
    pub call_logging_waits_at_percent: u8,
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

pub async fn sync_view<S: ConnectionStore + CursorStore>(
    store: &S,
    tenant: &TenantId,
    budget: &BudgetThresholds,
) -> Result<Option<SyncView>, StoreError> {
    let Some(connection) = store.get_connection(tenant).await? else {
        return Ok(None);
    };
    let mut objects = store.sync_statuses(tenant).await?;
    objects.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(Some(SyncView {
        status: connection.status,
        status_reason: connection.status_reason,
        last_sync_at: connection.last_sync_at,
        sync_requested_at: connection.sync_requested_at,
        api_usage_percent: connection.api_usage.map(|u| u.percent_shown()),
        api_usage: connection.api_usage.map(ApiUsageView::from),
        budget: BudgetView {
            sync_pauses_at_percent: budget.sync_pause_at_percent,
            call_logging_waits_at_percent: budget.call_logging_defer_at_percent,
        },
        objects,
    }))
}

/// A stored record of the tenant with its email timeline (at most `limit` items).
pub async fn record_view<S: RecordStore>(
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

/// A call's outcome as the platform sees it: the Task (with a link that opens it
/// in Salesforce), how it was made, and the records linked (the kept message
/// stays internal).
pub async fn call_view<S: CallStore + ConnectionStore>(
    store: &S,
    tenant: &TenantId,
    call_id: &str,
) -> Result<Option<Value>, StoreError> {
    if !validate_external_id(call_id) {
        return Ok(None);
    }
    let Some(outcome) = store.get_outcome(tenant, call_id).await? else {
        return Ok(None);
    };
    let instance = instance_url(store, tenant).await?;
    Some(outcome_view(outcome, instance.as_deref())).transpose()
}

/// The tenant's calls, most recently updated first (only those in `state` when
/// given), each as [`call_view`] shows it, and the cursor of the next page.
pub async fn calls_view<S: CallStore + ConnectionStore>(
    store: &S,
    tenant: &TenantId,
    state: Option<CallState>,
    limit: usize,
    cursor: Option<String>,
) -> Result<Value, StoreError> {
    let page = store
        .recent_calls(tenant, state, limit.clamp(1, MAX_CALLS_PAGE), cursor)
        .await?;
    page_view(store, tenant, page).await
}

/// The calls that need a person's attention (unmatched, or matched among several
/// candidates, each with its candidates), newest first, as [`calls_view`].
pub async fn calls_needing_attention_view<S: CallStore + ConnectionStore>(
    store: &S,
    tenant: &TenantId,
    limit: usize,
    cursor: Option<String>,
) -> Result<Value, StoreError> {
    let page = store
        .calls_needing_attention(tenant, limit.clamp(1, MAX_CALLS_PAGE), cursor)
        .await?;
    page_view(store, tenant, page).await
}

/// A page of calls as the API shows it: each with its Salesforce links.
async fn page_view<S: ConnectionStore>(
    store: &S,
    tenant: &TenantId,
    page: Page<CallOutcome>,
) -> Result<Value, StoreError> {
    let instance = instance_url(store, tenant).await?;
    let calls = page
        .items
        .into_iter()
        .map(|o| outcome_view(o, instance.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({ "calls": calls, "next": page.next }))
}

async fn instance_url<S: ConnectionStore>(
    store: &S,
    tenant: &TenantId,
) -> Result<Option<String>, StoreError> {
    Ok(store
        .get_connection(tenant)
        .await?
        .and_then(|c| c.instance_url))
}

/// Where a Salesforce record opens in Lightning Experience.
pub fn record_url(instance_url: &str, object: &str, id: &str) -> Option<String> {
    let plain =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (plain(object) && plain(id) && (id.len() == 15 || id.len() == 18)).then(|| {
        format!(
            "{}/lightning/r/{object}/{id}/view",
            instance_url.trim_end_matches('/')
        )
    })
}

fn outcome_view(mut outcome: CallOutcome, instance_url: Option<&str>) -> Result<Value, StoreError> {
    outcome.message = None;
    outcome.claimed_until = None;
    let task_url = match (instance_url, outcome.task_id.as_deref()) {
        (Some(instance), Some(task)) if !outcome.task_deleted => {
            record_url(instance, outcome.activity.object(), task)
        }
        _ => None,
    };
    let mut view =
        serde_json::to_value(&outcome).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(map) = view.as_object_mut() {
        map.shift_remove("version");
        if let Some(url) = task_url {
            map.insert("taskUrl".into(), Value::String(url));
        }
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_urls_open_lightning_and_refuse_odd_ids() {
        assert_eq!(
            record_url(
                "https://acme.my.salesforce.com",
                "Task",
                "00T5e00000AbCdEFGH"
            )
            .as_deref(),
            Some("https://acme.my.salesforce.com/lightning/r/Task/00T5e00000AbCdEFGH/view")
        );
        assert_eq!(
            record_url("http://127.0.0.1:8443/", "Task", "00T5e00000AbCdE").as_deref(),
            Some("http://127.0.0.1:8443/lightning/r/Task/00T5e00000AbCdE/view")
        );
        for bad in ["", "00T/../../x", "00T5e00000AbCdE?x=1", "00T"] {
            assert_eq!(
                record_url("https://a.my.salesforce.com", "Task", bad),
                None,
                "{bad}"
            );
        }
    }
}
