//! Disconnecting a tenant: the tokens revoked at Salesforce, the secret
//! deleted, the connection marked disconnected; the audit trail kept.

use super::*;

impl<S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'_, S, K, C> {
    /// `DELETE connection`: revoke at Salesforce, delete the secret, mark
    /// disconnected, keep the audit trail (and the imported data's history).
    pub async fn disconnect(&self, actor: &Actor) -> Result<(), ConnectError> {
        if self.store.get_connection(&actor.tenant).await?.is_none() {
            return Err(ConnectError::NotFound(
                "this workspace has no Salesforce connection".into(),
            ));
        }
        if let Some(credentials) = self.secrets.get_credentials(&actor.tenant).await? {
            if let Some(refresh) = &credentials.refresh_token {
                let placeholder = Url::parse("https://invalid.invalid/")
                    .map_err(|e| SalesforceError::Decode(e.to_string()))?;
                let callback_url = self.callback_url().unwrap_or(&placeholder);
                match self
                    .salesforce
                    .revoke(&credentials, callback_url, refresh)
                    .await
                {
                    Ok(()) => {}
                    // Already revoked or expired: nothing left to revoke.
                    Err(SalesforceError::OAuth { error, .. })
                        if error == "invalid_token" || error == "unsupported_token_type" => {}
                    // Keep the secret so the revoke can be retried; never leave a live token behind.
                    Err(e) => return Err(e.into()),
                }
            }
            self.secrets.delete_credentials(&actor.tenant).await?;
        }
        self.salesforce.forget(&actor.tenant);
        update_connection(self.store, &actor.tenant, |c| {
            c.status = ConnectionStatus::Disconnected;
            c.status_reason = Some("disconnected by an admin".into());
            true
        })
        .await?;
        self.audit(actor, "disconnected", None).await?;
        Ok(())
    }
}
