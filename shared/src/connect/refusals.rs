//! What Salesforce refusing a tenant's access means for its connection: the
//! tenant needs re-authorising. The status says why, in words an admin acts on,
//! and parked work is replayed once an admin reconnects. Salesforce sessions
//! report refusals through [`AccessRefusals`]; this is the one place that
//! decides.

use crate::domain::{ConnectionStatus, TenantId};
use crate::ports::{AccessRefusal, AccessRefusals, ConnectionStore, StoreResult};
use crate::work::update_connection;

impl<T: ConnectionStore> AccessRefusals for T {
    async fn access_refused(&self, tenant: &TenantId, refusal: &AccessRefusal) -> StoreResult<()> {
        let reason = reason(refusal);
        let updated = update_connection(self, tenant, |c| {
            // Only a working connection is marked: one disconnected or still
            // pending keeps its own status.
            if c.status != ConnectionStatus::Connected {
                return false;
            }
            c.status = ConnectionStatus::NeedsReauth;
            c.status_reason = Some(reason.clone());
            true
        })
        .await?;
        if updated.is_some_and(|c| c.status == ConnectionStatus::NeedsReauth) {
            tracing::warn!(tenant_id = %tenant, reason, "connection needs re-authorisation");
        }
        Ok(())
    }
}

/// The status reason shown to the tenant's admin.
fn reason(refusal: &AccessRefusal) -> String {
    match refusal {
        AccessRefusal::Api { code } => format!(
            "Salesforce refused API access ({code}); an administrator must enable API access for the connected user, then reconnect"
        ),
        AccessRefusal::Authorisation { code } => {
            format!("Salesforce refused the stored authorisation ({code}); reconnect the org")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_tells_the_admin_what_to_do() {
        let api = reason(&AccessRefusal::Api {
            code: "API_DISABLED_FOR_ORG".into(),
        });
        assert_eq!(
            api,
            "Salesforce refused API access (API_DISABLED_FOR_ORG); an administrator must enable API access for the connected user, then reconnect"
        );
        let grant = reason(&AccessRefusal::Authorisation {
            code: "invalid_grant".into(),
        });
        assert_eq!(
            grant,
            "Salesforce refused the stored authorisation (invalid_grant); reconnect the org"
        );
    }
}
