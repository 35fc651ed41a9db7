//! Merges and Lead conversions (issue 19): calls linked to a record Salesforce
//! merged away, or to a lead it converted, follow the surviving record.
//!
//! The index needs nothing more: a merged loser arrives deleted (its entries go)
//! and a converted lead is no longer indexed, while the survivor is indexed as
//! itself. Salesforce moves the Tasks itself (a merge re-parents the losers'
//! activities to the master; a conversion moves the lead's to the contact, and to
//! the opportunity or account where they had no related record): Modjo does not
//! write them, it only brings its own record of each call in line.
//!
//! Finding the calls reads the tenant's call listing once per page of merges
//! (filtered on the losers' ids): merges are rare, and the read costs about one
//! read unit per 8 KB of call records; no Salesforce call.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{Map, Value};

use crate::domain::{CallOutcome, LinkedRecord, Rematch, TenantId};
use crate::ports::{CallStore, StoreError};

/// Where a record went: the survivor of a merge, or what a lead became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survivor {
    pub id: String,
    /// A converted lead's opportunity, else its account: the related record its
    /// Tasks without one were given.
    pub related: Option<String>,
    pub why: &'static str,
}

/// The records of a page Salesforce merged away or converted, with their survivors.
pub fn survivors(object: &str, records: &[Map<String, Value>]) -> HashMap<String, Survivor> {
    let text =
        |r: &Map<String, Value>, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = HashMap::new();
    for r in records {
        let Some(id) = text(r, "Id") else { continue };
        if r.get("IsDeleted") == Some(&Value::Bool(true)) {
            if let Some(master) = text(r, "MasterRecordId") {
                out.insert(
                    id,
                    Survivor {
                        id: master,
                        related: None,
                        why: "merged in Salesforce",
                    },
                );
            }
        } else if object == "Lead" && r.get("IsConverted") == Some(&Value::Bool(true)) {
            if let Some(contact) = text(r, "ConvertedContactId") {
                out.insert(
                    id,
                    Survivor {
                        id: contact,
                        related: text(r, "ConvertedOpportunityId")
                            .or_else(|| text(r, "ConvertedAccountId")),
                        why: "lead converted in Salesforce",
                    },
                );
            }
        }
    }
    out
}

/// The call's outcome pointing at the survivors, when it pointed at a loser.
pub fn follow(outcome: &CallOutcome, moved: &HashMap<String, Survivor>) -> Option<CallOutcome> {
    let who = outcome.who_id.as_ref().and_then(|w| moved.get(w));
    let what = outcome.what_id.as_ref().and_then(|w| moved.get(w));
    if who.is_none() && what.is_none() {
        return None;
    }
    let mut after = outcome.clone();
    let mut why = "";
    if let Some(s) = who {
        after.who_id = Some(s.id.clone());
        if after.what_id.is_none() {
            after.what_id = s.related.clone();
        }
        why = s.why;
    }
    if let Some(s) = what {
        after.what_id = Some(s.id.clone());
        why = s.why;
    }
    let object = |id: &str| match id.get(..3) {
        Some("003") => "Contact",
        Some("00Q") => "Lead",
        Some("001") => "Account",
        Some("006") => "Opportunity",
        _ => "Record",
    };
    let keep_name = |id: &str| {
        outcome
            .linked
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| l.name.clone())
    };
    after.linked = [&after.who_id, &after.what_id]
        .into_iter()
        .flatten()
        .map(|id| LinkedRecord {
            id: id.clone(),
            object: object(id).to_string(),
            name: keep_name(id),
        })
        .collect();
    after.rematches.push(Rematch {
        at: Utc::now(),
        reason: format!("{why}: the call follows the surviving record"),
        from_who_id: outcome.who_id.clone(),
        from_what_id: outcome.what_id.clone(),
    });
    after.updated_at = Utc::now();
    Some(after)
}

/// Points the tenant's calls linked to merged or converted records at their
/// survivors. A call written meanwhile is read again and followed once more.
pub async fn follow_survivors<S: CallStore>(
    store: &S,
    tenant: &TenantId,
    moved: &HashMap<String, Survivor>,
) -> Result<usize, StoreError> {
    if moved.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = moved.keys().cloned().collect();
    let mut followed = 0;
    for chunk in ids.chunks(crate::ports::MAX_LINKED_IDS) {
        let mut cursor = None;
        loop {
            let page = store.calls_linked_to(tenant, chunk, cursor).await?;
            let mut changed: Vec<CallOutcome> =
                page.items.iter().filter_map(|o| follow(o, moved)).collect();
            for _ in 0..2 {
                if changed.is_empty() {
                    break;
                }
                let results = store.save_outcomes(tenant, &changed).await?;
                let mut lost = Vec::new();
                for (o, r) in changed.iter().zip(results) {
                    match r {
                        Ok(_) => followed += 1,
                        Err(StoreError::Conflict(_)) => lost.push(o.call_id.clone()),
                        Err(e) => return Err(e),
                    }
                }
                changed = store
                    .get_outcomes(tenant, &lost)
                    .await?
                    .iter()
                    .filter_map(|o| follow(o, moved))
                    .collect();
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    if followed > 0 {
        tracing::info!(tenant_id = %tenant, calls = followed, "calls follow merged or converted records");
    }
    Ok(followed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallState;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn merged_losers_and_converted_leads_name_their_survivors() {
        let found = survivors(
            "Lead",
            &[
                map(json!({"Id": "00QA", "IsDeleted": true, "MasterRecordId": "00QB"})),
                map(json!({"Id": "00QC", "IsDeleted": true})),
                map(
                    json!({"Id": "00QD", "IsConverted": true, "ConvertedContactId": "003D", "ConvertedAccountId": "001D"}),
                ),
                map(json!({"Id": "00QE", "IsConverted": false})),
            ],
        );
        assert_eq!(found.len(), 2);
        assert_eq!(found["00QA"].id, "00QB");
        assert_eq!(found["00QD"].id, "003D");
        assert_eq!(found["00QD"].related.as_deref(), Some("001D"));
    }

    #[test]
    fn a_call_on_a_converted_lead_follows_its_contact_and_account() {
        let moved = survivors(
            "Lead",
            &[map(
                json!({"Id": "00QD", "IsConverted": true, "ConvertedContactId": "003D", "ConvertedAccountId": "001D", "ConvertedOpportunityId": "006D"}),
            )],
        );
        let on_lead = CallOutcome {
            who_id: Some("00QD".into()),
            ..CallOutcome::new("c", CallState::Created, Utc::now())
        };
        let after = follow(&on_lead, &moved).unwrap();
        assert_eq!(after.who_id.as_deref(), Some("003D"));
        assert_eq!(after.what_id.as_deref(), Some("006D"));
        assert_eq!(after.rematches[0].from_who_id.as_deref(), Some("00QD"));
        let elsewhere = CallOutcome {
            who_id: Some("003X".into()),
            ..on_lead
        };
        assert_eq!(follow(&elsewhere, &moved), None);
    }
}
