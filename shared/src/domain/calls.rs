//! What happened to each call: the outcome served to the platform.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Being logged right now (claimed by an invocation).
    InProgress,
    /// The integration created the call's Task.
    Created,
    /// The dialer's Task existed; the Modjo link was added to it.
    Enriched,
    /// No Salesforce record matched; nothing was written to Salesforce.
    Unmatched,
    /// Parked: the tenant needs to reconnect, or the API budget is nearly spent.
    Waiting,
    /// A permanent error; `reason` says why.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOutcome {
    pub call_id: String,
    pub state: CallState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The original message, kept for waiting and failed calls so they can be replayed
    /// or inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub version: u64,
}
