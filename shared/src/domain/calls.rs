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

impl CallState {
    pub const ALL: [CallState; 6] = [
        CallState::InProgress,
        CallState::Created,
        CallState::Enriched,
        CallState::Unmatched,
        CallState::Waiting,
        CallState::Failed,
    ];

    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::InProgress => "in_progress",
            CallState::Created => "created",
            CallState::Enriched => "enriched",
            CallState::Unmatched => "unmatched",
            CallState::Waiting => "waiting",
            CallState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallOutcome {
    pub call_id: String,
    pub state: CallState,
    /// Which activity `task_id` names: a Task (calls) or an Event (meetings).
    #[serde(default)]
    pub activity: Activity,
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
    /// The CRM records the call's Task is linked to in Salesforce (Who, What), with
    /// their names. `who_id` and `what_id` are the Task's too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<LinkedRecord>,
    /// What Modjo matched, when the Task says otherwise (a dialer's Task keeps the
    /// Who and What its dialer set), with the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modjo_match: Option<ModjoMatch>,
    /// Comments changed but could not be shown on the Task yet (the tenant must
    /// reconnect, or the API budget is spent): the sync re-renders them later.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub comments_pending: bool,
    /// The Task was deleted in Salesforce: comments stay in Modjo only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub task_deleted: bool,
    /// While `InProgress`: the claim expires then (a crashed worker's claim can be
    /// taken over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<DateTime<Utc>>,
    /// The original message, kept for waiting and failed calls so they can be replayed
    /// or inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub version: u64,
}

/// Modjo's own match of a call, kept when the Task in Salesforce is linked to
/// other records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModjoMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linked: Vec<LinkedRecord>,
    pub reason: String,
}

/// A CRM record a call is linked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedRecord {
    pub id: String,
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The Salesforce activity a call is logged as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// A call Task (phone calls, and meetings without a calendar event).
    #[default]
    Task,
    /// The meeting's calendar Event.
    Event,
}

impl Activity {
    /// The sObject's API name.
    pub fn object(self) -> &'static str {
        match self {
            Activity::Task => "Task",
            Activity::Event => "Event",
        }
    }
}

impl CallOutcome {
    pub fn new(call_id: &str, state: CallState, now: DateTime<Utc>) -> Self {
        Self {
            call_id: call_id.to_string(),
            state,
            activity: Activity::Task,
            task_id: None,
            who_id: None,
            what_id: None,
            owner_id: None,
            reason: None,
            linked: Vec::new(),
            modjo_match: None,
            comments_pending: false,
            task_deleted: false,
            claimed_until: None,
            message: None,
            updated_at: now,
            version: 0,
        }
    }

    /// Created, enriched or unmatched: nothing more to do for this call.
    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            CallState::Created | CallState::Enriched | CallState::Unmatched
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_serialised_ones() {
        for state in CallState::ALL {
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
            assert_eq!(CallState::parse(state.as_str()), Some(state));
        }
        assert_eq!(CallState::parse("Created"), None);
    }
}
