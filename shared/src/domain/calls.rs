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
    /// When the call started: re-matching looks this far back (issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Each time the call was matched again after it was logged, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rematches: Vec<Rematch>,
    /// Set by hand through the API: re-matching never overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_by_hand: Option<ManualLink>,
    /// When several contacts or leads matched: all of them, the chosen one first
    /// (the call needs a person's attention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<LinkedRecord>,
    /// The call's Salesforce Note (summaries as Notes, a tenant setting), when
    /// one was written for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<CallNote>,
    /// Why the call has no Note although the tenant asked for one, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note_problem: Option<String>,
    /// When the stored call (message and outcome) expires: its start plus the
    /// tenant's retention. Stored as DynamoDB TTL too (`ttl`, epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub version: u64,
}

/// The Note written for a call: its id (a ContentDocument id, `069…`) and the
/// digest of the title and content it was written with, to tell a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallNote {
    pub id: String,
    pub digest: String,
}

/// One re-match of a call: when, why, and what it was linked to before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rematch {
    pub at: DateTime<Utc>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_who_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_what_id: Option<String>,
}

/// Who linked a call by hand, when, and what it was linked to before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualLink {
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_who_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_what_id: Option<String>,
}

/// How well a call is matched, worst first: re-matching only ever moves a call up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchLevel {
    /// No record at all.
    Nothing,
    /// Only a related record (an account): no person.
    RelatedOnly,
    /// A lead.
    Lead,
    /// A contact.
    Contact,
}

impl MatchLevel {
    /// The level of a Who and What, by the Who's key prefix.
    pub fn of(who_id: Option<&str>, what_id: Option<&str>) -> Self {
        match (who_id.and_then(|w| w.get(..3)), what_id) {
            (Some("003"), _) => MatchLevel::Contact,
            (Some("00Q"), _) => MatchLevel::Lead,
            (Some(_), _) | (None, Some(_)) => MatchLevel::RelatedOnly,
            (None, None) => MatchLevel::Nothing,
        }
    }
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
            started_at: None,
            rematches: Vec::new(),
            linked_by_hand: None,
            candidates: Vec::new(),
            note: None,
            note_problem: None,
            expires_at: None,
            updated_at: now,
            version: 0,
        }
    }

    /// Whether a later sync may still find a better match (issue 19): the call
    /// was left unmatched, or Modjo created its Task on an account or a lead only
    /// and nobody re-pointed it in Salesforce. Dialer Tasks are never re-pointed.
    pub fn can_improve(&self) -> bool {
        if self.linked_by_hand.is_some() {
            return false;
        }
        match self.state {
            CallState::Unmatched => true,
            // Re-pointing updates a Task's Who and What; an Event Modjo
            // created keeps the match it was logged with.
            CallState::Created => {
                self.activity == Activity::Task
                    && !self.task_deleted
                    && self.modjo_match.is_none()
                    && self.level() < MatchLevel::Contact
            }
            _ => false,
        }
    }

    /// How well the call's Task is matched now.
    pub fn level(&self) -> MatchLevel {
        MatchLevel::of(self.who_id.as_deref(), self.what_id.as_deref())
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

    #[test]
    fn only_calls_that_can_get_better_are_re_matched() {
        let now = Utc::now();
        let created = |who: Option<&str>, what: Option<&str>| CallOutcome {
            who_id: who.map(str::to_string),
            what_id: what.map(str::to_string),
            ..CallOutcome::new("c", CallState::Created, now)
        };
        assert!(CallOutcome::new("c", CallState::Unmatched, now).can_improve());
        assert!(created(None, Some("001A")).can_improve(), "account only");
        assert!(created(Some("00QA"), None).can_improve(), "lead");
        assert!(
            !created(Some("003A"), Some("001A")).can_improve(),
            "contact"
        );
        let repointed = CallOutcome {
            modjo_match: Some(ModjoMatch {
                who_id: None,
                what_id: Some("001A".into()),
                linked: vec![],
                reason: "changed in Salesforce".into(),
            }),
            ..created(Some("00QB"), None)
        };
        assert!(
            !repointed.can_improve(),
            "someone re-pointed it in Salesforce"
        );
        let deleted = CallOutcome {
            task_deleted: true,
            ..created(None, Some("001A"))
        };
        assert!(!deleted.can_improve());
        let dialer = CallOutcome {
            who_id: None,
            ..CallOutcome::new("c", CallState::Enriched, now)
        };
        assert!(!dialer.can_improve(), "a dialer's Task is never re-pointed");
        let by_hand = CallOutcome {
            linked_by_hand: Some(ManualLink {
                by: "usr_1".into(),
                at: now,
                from_who_id: None,
                from_what_id: None,
            }),
            ..CallOutcome::new("c", CallState::Unmatched, now)
        };
        assert!(!by_hand.can_improve(), "a manual link is never overridden");
        for state in [CallState::Waiting, CallState::Failed, CallState::InProgress] {
            assert!(!CallOutcome::new("c", state, now).can_improve());
        }
    }

    #[test]
    fn levels_rank_contact_over_lead_over_account() {
        assert!(MatchLevel::of(Some("0031"), None) > MatchLevel::of(Some("00Q1"), None));
        assert!(MatchLevel::of(Some("00Q1"), None) > MatchLevel::of(None, Some("0011")));
        assert!(MatchLevel::of(None, Some("0061")) > MatchLevel::of(None, None));
    }
}
