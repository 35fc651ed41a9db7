//! What an admin sees of the connection: its status and API usage, the
//! permissions check, and a sync asked for by hand.

use super::*;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub org_id: Option<String>,
    pub instance_url: Option<String>,
    pub salesforce_user: Option<SalesforceUserRef>,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub api_usage: Option<ApiUsageView>,
    /// The last permissions check; `null` before the first.
    pub permissions: Option<crate::domain::permissions::PermissionCheck>,
    /// Why summaries cannot be saved as Notes, with the fix (the setting is on
    /// and the last Note was refused); `null` otherwise.
    pub notes_problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SalesforceUserRef {
    pub id: String,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiUsageView {
    pub used: u64,
    pub max: u64,
    pub percent: f64,
    pub observed_at: DateTime<Utc>,
}

impl From<crate::domain::ApiUsage> for ApiUsageView {
    fn from(u: crate::domain::ApiUsage) -> Self {
        Self {
            used: u.used,
            max: u.max,
            percent: u.percent_shown(),
            observed_at: u.observed_at,
        }
    }
}

impl<S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'_, S, K, C> {
    /// `POST permissions/check`: checks again what the connected user may do.
    pub async fn check_permissions(
        &self,
        actor: &Actor,
    ) -> Result<crate::domain::permissions::PermissionCheck, ConnectError> {
        self.require_connected(&actor.tenant).await?;
        self.run_permissions_check(&actor.tenant).await
    }

    /// `GET status`.
    pub async fn status(&self, tenant: &TenantId) -> Result<StatusView, ConnectError> {
        let connection = self.store.get_connection(tenant).await?.ok_or_else(|| {
            ConnectError::NotFound("this workspace has no Salesforce connection".into())
        })?;
        Ok(StatusView {
            status: connection.status,
            status_reason: connection.status_reason,
            org_id: connection.org_id,
            instance_url: connection.instance_url,
            salesforce_user: connection.sf_user_id.map(|id| SalesforceUserRef {
                id,
                username: connection.sf_username,
            }),
            connected_at: connection.connected_at,
            last_sync_at: connection.last_sync_at,
            api_usage: connection.api_usage.map(ApiUsageView::from),
            permissions: connection.permissions,
            notes_problem: connection
                .notes_problem
                .filter(|_| connection.summaries_as_notes),
        })
    }

    /// `POST sync`: an admin asks for a sync now, rather than at the next
    /// 15-minute run: one job on the sync-jobs queue (the tenant's lease keeps it
    /// from overlapping a running sync). At most once a minute, since every run
    /// spends API calls of the org's allocation.
    pub async fn request_sync<Q: JobQueue>(
        &self,
        actor: &Actor,
        jobs: &Q,
    ) -> Result<DateTime<Utc>, ConnectError> {
        const MIN_INTERVAL: chrono::Duration = chrono::Duration::seconds(60);
        let now = Utc::now();
        let connection = self.require_connected(&actor.tenant).await?;
        if let Some(wait) = connection
            .sync_requested_at
            .map(|at| at + MIN_INTERVAL - now)
            .filter(|wait| *wait > chrono::Duration::zero())
        {
            return Err(ConnectError::TooSoon {
                message: "a sync was requested less than a minute ago".into(),
                retry_after: wait.num_seconds().max(1) as u64,
            });
        }
        let mut granted = false;
        update_connection(self.store, &actor.tenant, |c| {
            granted = c
                .sync_requested_at
                .is_none_or(|at| at + MIN_INTERVAL <= now);
            if granted {
                c.sync_requested_at = Some(now);
            }
            granted
        })
        .await?;
        if !granted {
            return Err(ConnectError::TooSoon {
                message: "a sync was requested less than a minute ago".into(),
                retry_after: MIN_INTERVAL.num_seconds() as u64,
            });
        }
        let job = crate::sync::SyncJob::new(actor.tenant.clone(), "manual");
        jobs.send_all(&[TenantMessage::new(&actor.tenant, job.to_body())])
            .await?;
        self.audit(actor, "sync_requested", None).await?;
        Ok(now)
    }
}
