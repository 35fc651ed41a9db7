//! A tenant's purge (`disconnect` with `purge: true`): every item of the tenant
//! but its audit trail, in steps; the response tells the progress and a second
//! call goes on. The secret is deleted by the disconnect itself (at once, without
//! a recovery window: the refresh token is revoked first, and a reconnect must be
//! able to create the secret again).

use crate::domain::TenantId;
use crate::ports::StoreResult;
use crate::ports::{ErasureStore, PurgeProgress};

/// Reads one purge request spends at most (each deletes up to a page of items).
pub const READS_PER_REQUEST: usize = 40;

/// Removes the tenant's items, as far as one request goes.
pub struct Purger<'a, S> {
    store: &'a S,
    reads: usize,
}

impl<'a, S: ErasureStore> Purger<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Self {
            store,
            reads: READS_PER_REQUEST,
        }
    }

    /// At most `reads` reads per request (tests make it small to see a resume).
    pub fn reads_per_request(mut self, reads: usize) -> Self {
        self.reads = reads.max(1);
        self
    }

    pub async fn purge(&self, tenant: &TenantId) -> StoreResult<PurgeProgress> {
        self.store.purge_step(tenant, self.reads).await
    }
}
