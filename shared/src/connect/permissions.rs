//! The permissions check against Salesforce (one Describe Global) and the
//! store (the last sync's statuses); its result is kept on the connection.

use chrono::Utc;

use super::{Connect, ConnectError, ConnectSalesforce, ConnectStore};
use crate::domain::TenantId;
use crate::domain::permissions::{PermissionCheck, api_disabled, from_describe, from_sync};
use crate::ports::{SalesforceReads, SecretStore};
use crate::work::update_connection;

/// Salesforce API calls one check spends.
pub const API_CALLS: u32 = 1;

impl<S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'_, S, K, C> {
    /// Checks what the connected user may do, and keeps the result on the connection.
    pub(super) async fn run_permissions_check(
        &self,
        tenant: &TenantId,
    ) -> Result<PermissionCheck, ConnectError> {
        let session = self.session(tenant);
        let mut missing = match session.describe_global().await {
            Ok(describe) => from_describe(&describe),
            Err(e) if e.is_api_access_off() => vec![api_disabled()],
            Err(e) => return Err(e.into()),
        };
        match self.store.sync_statuses(tenant).await {
            Ok(statuses) => missing.extend(from_sync(&statuses)),
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "sync statuses not read: Change Data Capture not checked")
            }
        }
        let check = PermissionCheck::new(Utc::now(), API_CALLS, missing);
        update_connection(self.store, tenant, |c| {
            c.permissions = Some(check.clone());
            true
        })
        .await?;
        let gaps: Vec<String> = check
            .missing
            .iter()
            .map(|m| format!("{:?}:{}", m.gap, m.object.as_deref().unwrap_or("-")))
            .collect();
        tracing::info!(tenant_id = %tenant, ok = check.ok, missing = ?gaps, "permissions checked");
        Ok(check)
    }
}
