//! The sync's jobs: the message of the sync-jobs queue, and the fan-out that
//! sends one job per connected tenant every 15 minutes.

use super::*;

/// A message of the sync-jobs queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncJob {
    pub version: u32,
    pub tenant_id: TenantId,
    /// `schedule`, or `continuation` when a job carries on where the previous stopped.
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "schedule".to_string()
}

impl SyncJob {
    pub fn new(tenant_id: TenantId, reason: &str) -> Self {
        Self {
            version: 1,
            tenant_id,
            reason: reason.to_string(),
        }
    }

    pub fn parse(body: &str) -> Result<Self, String> {
        let job: SyncJob =
            serde_json::from_str(body).map_err(|e| format!("invalid sync job: {e}"))?;
        if job.version != 1 {
            return Err(format!("unsupported sync job version {}", job.version));
        }
        Ok(job)
    }

    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a tenant's job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Every object is up to date.
    Completed,
    /// Stopped before the deadline; a continuation job was queued.
    Continued,
    /// API usage reached the pause threshold.
    Paused { used_percent: u8 },
    /// Another job of this tenant holds the lease.
    AlreadyRunning,
    /// The tenant is not connected (or no longer).
    Skipped(String),
}

/// The fan-out's tally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanOut {
    pub queued: usize,
    pub skipped: usize,
}

/// One job per connected tenant onto the sync-jobs queue; tenants waiting for a
/// reconnect are skipped with a log line.
pub async fn fan_out<S: ConnectionStore, Q: JobQueue>(
    store: &S,
    jobs: &Q,
) -> Result<FanOut, StoreError> {
    let mut tally = FanOut::default();
    let mut token = None;
    loop {
        let page = store
            .tenants_with_status(ConnectionStatus::Connected, token)
            .await?;
        let messages: Vec<TenantMessage> = page
            .items
            .iter()
            .map(|t| TenantMessage::new(t, SyncJob::new(t.clone(), &default_reason()).to_body()))
            .collect();
        jobs.send_all(&messages).await?;
        tally.queued += messages.len();
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let mut token = None;
    loop {
        let page = store
            .tenants_with_status(ConnectionStatus::NeedsReauth, token)
            .await?;
        for tenant in &page.items {
            tracing::info!(tenant_id = %tenant, "sync skipped: the tenant must reconnect Salesforce");
        }
        tally.skipped += page.items.len();
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    Ok(tally)
}
