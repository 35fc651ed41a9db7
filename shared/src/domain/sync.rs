//! Sync position and leases.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Position of the incremental sync of one object: the last `(SystemModstamp, Id)`
/// durably stored. The next query reads strictly after it, in that order, so ties on
/// one timestamp neither lose nor repeat records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncCursor {
    pub object: String,
    pub system_modstamp: DateTime<Utc>,
    pub last_id: String,
    pub updated_at: DateTime<Utc>,
}

/// A time-bounded exclusive hold on a named resource of a tenant (its sync job,
/// its token refresh). Whoever holds an unexpired lease owns the resource;
/// an expired one can be taken over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}
