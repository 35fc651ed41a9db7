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
    /// The pass that saved it read to the end. The next pass then starts a
    /// little before it, to catch what changed in the cursor's own second (the
    /// timestamp has second precision) or committed late; a pass cut short
    /// resumes exactly where it stopped.
    #[serde(default)]
    pub caught_up: bool,
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

/// How the last run of one object's sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Read everything there was to read.
    UpToDate,
    /// Stopped before the Lambda deadline; a continuation job carries on.
    Continuing,
    /// The org's daily API usage reached the pause threshold.
    Paused,
    /// The last run failed; see `last_error`.
    Failed,
}

/// Where an object's changes were read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// SOQL queries from the stored cursor (REST API calls).
    Polling,
    /// Change Data Capture events from the Pub/Sub API (no REST API calls).
    Cdc,
}

/// Why an object's changes came from where they did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceReason {
    /// Change Data Capture is enabled for this object in the org.
    CdcEnabled,
    /// The product reads this object by polling (Change Data Capture is used
    /// only for Opportunity and Opportunity Contact Role).
    PolledByDesign,
    /// This deployment has no Pub/Sub API endpoint: every object is polled.
    PubSubOff,
    /// Change Data Capture is not enabled for this object in the org.
    CdcNotEnabled,
    /// The Pub/Sub API failed during this run: the object was polled instead.
    CdcFailed,
    /// Change Data Capture, after one read through SOQL: the first subscription,
    /// an expired position (72 h), or more changes than the event bus carries.
    CdcResynced,
}

/// Per tenant and object: what the last run did, and running totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    pub object: String,
    pub state: SyncState,
    /// For admins: why the state is what it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Where this run read the object's changes (absent in statuses saved
    /// before it was recorded, and in the tenant-wide pause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ChangeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_reason: Option<SourceReason>,
    pub records_read: u64,
    pub records_written: u64,
    pub records_deleted: u64,
    pub api_calls: u64,
    pub duration_ms: u64,
    pub finished_at: DateTime<Utc>,
    /// Since the tenant connected.
    #[serde(default)]
    pub total_records_read: u64,
    #[serde(default)]
    pub total_api_calls: u64,
}

impl SyncStatus {
    /// A status of `object` in `state`, finished now, with nothing counted.
    pub fn new(object: impl Into<String>, state: SyncState) -> Self {
        Self {
            object: object.into(),
            state,
            message: None,
            last_error: None,
            source: None,
            source_reason: None,
            records_read: 0,
            records_written: 0,
            records_deleted: 0,
            api_calls: 0,
            duration_ms: 0,
            finished_at: Utc::now(),
            total_records_read: 0,
            total_api_calls: 0,
        }
    }
}
