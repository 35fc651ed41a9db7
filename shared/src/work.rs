//! What every use case shares: its error ([`WorkError`], Salesforce's or the
//! store's) and the read-modify-write of a tenant's connection.

use crate::ports::{ConnectionStore, StoreError};
use crate::salesforce::SalesforceError;

/// Read-modify-write of a tenant's connection under optimistic concurrency:
/// `change` edits the current value (returning `false` to leave it as it is),
/// and runs again on the fresh value if another writer got there first.
/// Returns the stored connection, `None` when the tenant has none.
pub async fn update_connection<S: ConnectionStore>(
    store: &S,
    tenant: &crate::domain::TenantId,
    mut change: impl FnMut(&mut crate::domain::Connection) -> bool,
) -> Result<Option<crate::domain::Connection>, StoreError> {
    for _ in 0..8 {
        let Some(mut connection) = store.get_connection(tenant).await? else {
            return Ok(None);
        };
        if !change(&mut connection) {
            return Ok(Some(connection));
        }
        connection.updated_at = chrono::Utc::now();
        match store.save_connection(&connection).await {
            Ok(saved) => return Ok(Some(saved)),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict("the connection kept changing".into()))
}

/// A failure of the domain's work (sync, call logging, comments), which reads
/// and writes both Salesforce and the store.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl crate::error::Classify for WorkError {
    fn class(&self) -> crate::error::ErrorClass {
        match self {
            WorkError::Salesforce(e) => e.class(),
            WorkError::Store(e) => e.class(),
        }
    }
}
