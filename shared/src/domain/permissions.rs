//! The permissions check (issue 20): what the setup guide's steps grant the
//! connecting user, read from what Salesforce says that user may do, and every
//! gap told in plain words with the Setup path that closes it (README, "In the
//! customer's Salesforce org").
//!
//! Cost: **one API call** — Describe Global (`GET sobjects/`), which lists the
//! objects available to the logged-in user with `createable`/`updateable`
//! (an object the user cannot read is not listed; ContentNote is not listed
//! while Notes are off). Without *API Enabled* that call itself is refused
//! (`API_DISABLED_FOR_ORG` / `API_CURRENTLY_DISABLED`). Change Data Capture is
//! read from the last sync's statuses (no API call).
//!
//! This module is pure; the connect use case (`connect/permissions.rs`) runs it against
//! Salesforce and the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{SourceReason, SyncStatus};

/// An object permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    Create,
    Edit,
}

impl Access {
    fn word(self) -> &'static str {
        match self {
            Access::Read => "Read",
            Access::Create => "Create",
            Access::Edit => "Edit",
        }
    }
}

/// What is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gap {
    /// The user's profile lacks *API Enabled* (or the org has no API access).
    ApiEnabled,
    /// Object permissions on one object.
    ObjectAccess,
    /// Notes are not enabled in the org (ContentNote is not available).
    Notes,
    /// Change Data Capture is not selected for an object.
    ChangeDataCapture,
}

/// One missing permission, told to an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Missing {
    pub gap: Gap,
    /// The object concerned (API name), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The permissions missing on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<Access>,
    /// Whether calls cannot be logged without it (else: a feature is reduced).
    pub mandatory: bool,
    /// What is missing and what it breaks, in plain words.
    pub problem: String,
    /// Where to fix it in Setup, as the guide says.
    pub fix: String,
}

/// The result of a check, kept on the connection and shown in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionCheck {
    pub checked_at: DateTime<Utc>,
    /// Salesforce API calls the check spent.
    pub api_calls: u32,
    /// Every mandatory permission is there.
    pub ok: bool,
    pub missing: Vec<Missing>,
}

impl PermissionCheck {
    pub fn new(checked_at: DateTime<Utc>, api_calls: u32, missing: Vec<Missing>) -> Self {
        Self {
            checked_at,
            api_calls,
            ok: !missing.iter().any(|m| m.mandatory),
            missing,
        }
    }

    /// Whether the org's Notes are known to be off.
    pub fn notes_disabled(&self) -> bool {
        self.missing.iter().any(|m| m.gap == Gap::Notes)
    }
}

/// The object permissions the guide's step 3 grants, and what each serves.
struct Need {
    object: &'static str,
    label: &'static str,
    access: &'static [Access],
    mandatory: bool,
    serves: &'static str,
}

const READ: &[Access] = &[Access::Read];
const WRITE: &[Access] = &[Access::Read, Access::Create, Access::Edit];

const NEEDS: &[Need] = &[
    Need {
        object: "Account",
        label: "Accounts",
        access: READ,
        mandatory: true,
        serves: "calls cannot be linked to accounts",
    },
    Need {
        object: "Contact",
        label: "Contacts",
        access: READ,
        mandatory: true,
        serves: "calls cannot be matched to contacts",
    },
    Need {
        object: "Lead",
        label: "Leads",
        access: READ,
        mandatory: true,
        serves: "calls cannot be matched to leads",
    },
    Need {
        object: "Opportunity",
        label: "Opportunities",
        access: READ,
        mandatory: true,
        serves: "calls cannot be linked to opportunities",
    },
    Need {
        object: "OpportunityContactRole",
        label: "Opportunity Contact Roles",
        access: READ,
        mandatory: false,
        serves: "a contact's opportunities cannot be found",
    },
    Need {
        object: "EmailMessage",
        label: "Email Messages",
        access: READ,
        mandatory: false,
        serves: "emails are not shown next to calls",
    },
    Need {
        object: "Task",
        label: "Tasks (Activities)",
        access: WRITE,
        mandatory: true,
        serves: "calls cannot be logged",
    },
    Need {
        object: "Event",
        label: "Events (Activities)",
        access: WRITE,
        mandatory: true,
        serves: "meetings cannot be logged on their calendar events",
    },
    Need {
        object: "ContentNote",
        label: "Notes",
        access: WRITE,
        mandatory: false,
        serves: "meeting summaries cannot be saved as Notes",
    },
];

/// The objects Change Data Capture should feed (guide step 2).
pub const CDC_OBJECTS: &[(&str, &str)] = &[
    ("Opportunity", "Opportunity"),
    ("OpportunityContactRole", "Opportunity Contact Role"),
];

/// The missing permission when Salesforce refuses API access altogether.
pub fn api_disabled() -> Missing {
    Missing {
        gap: Gap::ApiEnabled,
        object: None,
        access: Vec::new(),
        mandatory: true,
        problem: "The connected user cannot use the Salesforce API: nothing can be read or logged."
            .into(),
        fix: "Guide step 5: Setup → Profiles → the connecting user's profile → System \
              Permissions → API Enabled (or a permission set with it), then reconnect."
            .into(),
    }
}

/// What Describe Global's answer (`GET sobjects/`) says is missing.
pub fn from_describe(describe: &Value) -> Vec<Missing> {
    let listed = describe
        .get("sobjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let entry = |name: &str| {
        listed
            .iter()
            .find(|o| o.get("name").and_then(Value::as_str) == Some(name))
    };
    let mut missing = Vec::new();
    for need in NEEDS {
        let Some(found) = entry(need.object) else {
            if need.object == "ContentNote" {
                missing.push(Missing {
                    gap: Gap::Notes,
                    object: Some(need.object.into()),
                    access: Vec::new(),
                    mandatory: false,
                    problem: "Notes are not enabled in the org: meeting summaries cannot be \
                              saved as Notes (calls are still logged)."
                        .into(),
                    fix: "Guide step 4: Setup → Notes Settings → Enable Notes.".into(),
                });
                continue;
            }
            missing.push(object_gap(need, need.access.to_vec()));
            continue;
        };
        let flag = |key: &str| found.get(key).and_then(Value::as_bool).unwrap_or(false);
        let lacking: Vec<Access> = need
            .access
            .iter()
            .copied()
            .filter(|a| match a {
                Access::Read => !flag("queryable"),
                Access::Create => !flag("createable"),
                Access::Edit => !flag("updateable"),
            })
            .collect();
        if !lacking.is_empty() {
            missing.push(object_gap(need, lacking));
        }
    }
    missing
}

fn object_gap(need: &Need, lacking: Vec<Access>) -> Missing {
    let words: Vec<&str> = lacking.iter().map(|a| a.word()).collect();
    let verbs: Vec<String> = lacking
        .iter()
        .map(|a| a.word().to_ascii_lowercase())
        .collect();
    Missing {
        gap: Gap::ObjectAccess,
        object: Some(need.object.into()),
        mandatory: need.mandatory,
        problem: format!(
            "The connected user cannot {} {}: {}.",
            join_words(&verbs),
            need.label,
            need.serves
        ),
        fix: format!(
            "Guide step 3: Setup → Profiles (or Permission Sets) → the connecting user's \
             profile → Object Settings → {}: {}.",
            need.label,
            words.join(", ")
        ),
        access: lacking,
    }
}

fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// What the last sync's statuses say about Change Data Capture (nothing when
/// the deployment has no Pub/Sub API or no sync has run yet).
pub fn from_sync(statuses: &[SyncStatus]) -> Vec<Missing> {
    CDC_OBJECTS
        .iter()
        .filter(|(object, _)| {
            statuses.iter().any(|s| {
                s.object == *object && s.source_reason == Some(SourceReason::CdcNotEnabled)
            })
        })
        .map(|(object, label)| Missing {
            gap: Gap::ChangeDataCapture,
            object: Some((*object).into()),
            access: Vec::new(),
            mandatory: false,
            problem: format!(
                "Change Data Capture is not selected for {label}: its changes are polled, \
                 which spends API calls."
            ),
            fix: format!("Guide step 2: Setup → Change Data Capture → select {label}."),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn describe(entries: &[(&str, bool, bool)]) -> Value {
        json!({"sobjects": entries.iter().map(|(name, create, edit)| json!({
            "name": name, "queryable": true, "createable": create, "updateable": edit
        })).collect::<Vec<_>>()})
    }

    fn everything() -> Vec<(&'static str, bool, bool)> {
        NEEDS.iter().map(|n| (n.object, true, true)).collect()
    }

    #[test]
    fn everything_granted_is_ok() {
        assert_eq!(from_describe(&describe(&everything())), vec![]);
    }

    #[test]
    fn an_unlisted_object_is_an_object_the_user_cannot_read() {
        let entries: Vec<_> = everything()
            .into_iter()
            .filter(|(n, _, _)| *n != "Lead")
            .collect();
        let missing = from_describe(&describe(&entries));
        assert_eq!(missing.len(), 1);
        let m = &missing[0];
        assert_eq!(
            (m.gap, m.object.as_deref(), m.access.as_slice(), m.mandatory),
            (Gap::ObjectAccess, Some("Lead"), &[Access::Read][..], true)
        );
        assert_eq!(
            m.problem,
            "The connected user cannot read Leads: calls cannot be matched to leads."
        );
        assert!(
            m.fix.starts_with("Guide step 3: Setup → Profiles"),
            "{}",
            m.fix
        );
        assert!(
            m.fix.ends_with("Object Settings → Leads: Read."),
            "{}",
            m.fix
        );
    }

    #[test]
    fn create_and_edit_are_told_together() {
        let entries: Vec<_> = everything()
            .into_iter()
            .map(|(n, c, e)| {
                if n == "Event" {
                    (n, false, false)
                } else {
                    (n, c, e)
                }
            })
            .collect();
        let missing = from_describe(&describe(&entries));
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].access, vec![Access::Create, Access::Edit]);
        assert_eq!(
            missing[0].problem,
            "The connected user cannot create or edit Events (Activities): meetings cannot be logged on their calendar events."
        );
    }

    #[test]
    fn notes_off_is_said_as_such_and_is_not_mandatory() {
        let entries: Vec<_> = everything()
            .into_iter()
            .filter(|(n, _, _)| *n != "ContentNote")
            .collect();
        let check = PermissionCheck::new(Utc::now(), 1, from_describe(&describe(&entries)));
        assert!(check.ok);
        assert!(check.notes_disabled());
        assert_eq!(
            check.missing[0].fix,
            "Guide step 4: Setup → Notes Settings → Enable Notes."
        );
    }

    #[test]
    fn an_answer_without_objects_misses_everything_mandatory() {
        let check = PermissionCheck::new(Utc::now(), 1, from_describe(&json!({})));
        assert!(!check.ok);
        assert_eq!(check.missing.len(), NEEDS.len());
    }
}
