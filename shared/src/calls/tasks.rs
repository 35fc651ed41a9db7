//! Phase 7: the Task writes. Every call still being worked gets its Task: ours
//! refreshed (found by `CallObject` after a crash), the dialer's enriched with the
//! Modjo block, or a new one created. The batch's creates and updates go in one
//! request (two sObject Collections in a composite: one API call); each row's
//! result ends its own call.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::claim::Claimed;
use super::dialer::{self, Task};
use super::outcomes::{End, Row, TaskLinks, end_rows};
use crate::domain::block;
use crate::domain::matching::Decision;
use crate::domain::text;
use crate::domain::{Activity, CallState, Connection};
use crate::ports::SalesforceApi;
use crate::salesforce::{NewRecord, RecordUpdate};
use crate::work::WorkError;

/// A write planned for one call.
struct Planned {
    call: usize,
    state: CallState,
    /// The Task's links; for a created Task, known once it exists.
    task: TaskLinks,
}

pub(super) async fn write<C: SalesforceApi>(
    session: &C,
    connection: &Connection,
    work: &mut [Claimed],
) -> Result<(), WorkError> {
    for w in work.iter_mut().filter(|w| w.end.is_none() && !w.matched()) {
        let reason = w
            .decision
            .as_ref()
            .map_or("no participant to match".to_string(), |d| d.reason.clone());
        w.end = Some(End::Unmatched(reason));
    }
    let open: Vec<usize> = (0..work.len()).filter(|&i| work[i].end.is_none()).collect();
    if open.is_empty() {
        return Ok(());
    }
    let existing = {
        let refs: Vec<&Claimed> = open.iter().map(|&i| &work[i]).collect();
        dialer::existing_tasks(session, &refs).await?
    };

    let mut creates: Vec<(Planned, NewRecord)> = Vec::new();
    let mut updates: Vec<(Planned, RecordUpdate)> = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    for &i in &open {
        let w = &work[i];
        let Some(decision) = w.decision.clone() else {
            continue;
        };
        // Created before (the outcome write was lost): refresh its block only.
        if let Some(ours) = dialer::ours(&existing, w) {
            work[i].written_before = true;
            let w = &work[i];
            let planned = planned(i, CallState::Created, ours);
            taken.insert(planned.task.id.clone());
            let current = dialer::text(ours, "Description");
            match block::merge_description(current, &w.call, &w.comments) {
                Some(m) if Some(m.as_str()) != current => {
                    updates.push((planned, description_update(ours, m)))
                }
                _ => {
                    work[i].end = Some(End::Logged {
                        state: planned.state,
                        task: planned.task,
                    })
                }
            }
            continue;
        }
        let region = connection.phone_region.as_str();
        if let Some(dialer) = dialer::dialer_task(&existing, w, &decision, &taken, region) {
            let planned = planned(i, CallState::Enriched, dialer);
            taken.insert(planned.task.id.clone());
            let current = dialer::text(dialer, "Description");
            match block::merge_description(current, &w.call, &w.comments) {
                Some(merged) => updates.push((planned, description_update(dialer, merged))),
                None => {
                    work[i].end = Some(End::Unmatched(
                        "the dialer's Task has no room left for the Modjo block".into(),
                    ))
                }
            }
            continue;
        }
        let description = block::merge_description(None, &w.call, &w.comments).unwrap_or_default();
        let task = TaskLinks {
            id: String::new(),
            who_id: decision.who.as_ref().map(|c| c.id.clone()),
            what_id: decision.what.as_ref().map(|(id, _)| id.clone()),
        };
        creates.push((
            Planned {
                call: i,
                state: CallState::Created,
                task,
            },
            NewRecord {
                object: "Task",
                fields: task_fields(w, &decision, description),
            },
        ));
    }

    if creates.is_empty() && updates.is_empty() {
        return Ok(());
    }
    let new: Vec<NewRecord> = creates.iter().map(|(_, r)| r.clone()).collect();
    let changed: Vec<RecordUpdate> = updates.iter().map(|(_, u)| u.clone()).collect();
    let written = session.write_many(&new, &changed).await?;
    let row = |p: Planned| Row {
        call: p.call,
        state: p.state,
        links: p.task,
    };
    end_rows(
        Activity::Task,
        work,
        written,
        creates.into_iter().map(|(p, _)| row(p)).collect(),
        updates.into_iter().map(|(p, _)| row(p)).collect(),
    )
}

fn planned(call: usize, state: CallState, task: &Task) -> Planned {
    let field = |k: &str| dialer::text(task, k).map(str::to_string);
    Planned {
        call,
        state,
        task: TaskLinks {
            id: field("Id").unwrap_or_default(),
            who_id: field("WhoId"),
            what_id: field("WhatId"),
        },
    }
}

fn description_update(task: &Task, description: String) -> RecordUpdate {
    let mut fields = Map::new();
    fields.insert("Description".into(), Value::String(description));
    RecordUpdate {
        object: "Task",
        id: dialer::text(task, "Id").unwrap_or_default().to_string(),
        fields,
    }
}

/// The Task we create for a call (DESIGN §6, step 3).
fn task_fields(w: &Claimed, decision: &Decision, description: String) -> Map<String, Value> {
    let who_name = decision.who.as_ref().and_then(|c| c.name.clone());
    let subject = w
        .call
        .title
        .as_deref()
        .map(block::one_line)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| match &who_name {
            Some(n) => format!("{} with {}", w.call.direction.label(), block::one_line(n)),
            None => w.call.direction.label().to_string(),
        });
    let mut fields = Map::new();
    fields.insert(
        "Subject".into(),
        json!(text::shorten(&subject, text::SUBJECT_LIMIT)),
    );
    fields.insert("TaskSubtype".into(), json!("Call"));
    if let Some(t) = w.call.direction.call_type() {
        fields.insert("CallType".into(), json!(t));
    }
    fields.insert(
        "CallDurationInSeconds".into(),
        json!(w.call.duration_seconds),
    );
    fields.insert("CallObject".into(), json!(w.call.call_object()));
    fields.insert(
        "ActivityDate".into(),
        json!(w.call.started_at.format("%Y-%m-%d").to_string()),
    );
    fields.insert("Status".into(), json!("Completed"));
    if let Some(who) = &decision.who {
        fields.insert("WhoId".into(), json!(who.id));
    }
    if let Some((what, _)) = &decision.what {
        fields.insert("WhatId".into(), json!(what));
    }
    if let Some(owner) = &w.owner {
        fields.insert("OwnerId".into(), json!(owner.id));
    }
    fields.insert("Description".into(), json!(description));
    fields
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::domain::TenantId;
    use crate::domain::call_event::CallEvent;
    use crate::domain::matching::{Candidate, Kind};
    use crate::ports::fake::{FakeSalesforce, Reply, Sent};
    use crate::salesforce::{ApiError, RecordResult, SalesforceError, Written};

    fn call(id: &str) -> CallEvent {
        call_at(id, "2026-11-28T10:00:00Z")
    }

    fn call_at(id: &str, started_at: &str) -> CallEvent {
        CallEvent::parse(
            &json!({
                "version": 1, "tenantId": "acme", "callId": id,
                "url": format!("https://app.modjo.ai/calls/{id}"), "title": "Discovery call",
                "direction": "outbound", "startedAt": started_at,
                "durationSeconds": 754, "hostUserId": "usr_12",
                "participants": [{"role": "external", "name": "Jane Doe", "phone": "+33 6 12 34 56 78"}]
            })
            .to_string(),
        )
        .expect("a valid call event")
    }

    /// A call claimed and matched to `contact`.
    fn matched(id: &str, contact: &str) -> Claimed {
        matched_call(call(id), contact)
    }

    fn matched_call(call: CallEvent, contact: &str) -> Claimed {
        let mut w = Claimed::rematching(call, 1);
        w.decision = Some(Decision {
            who: Some(Candidate {
                id: contact.into(),
                kind: Kind::Contact,
                name: Some("Jane Doe".into()),
                account_id: None,
                owner_id: None,
                last_modified: None,
            }),
            what: None,
            reason: "one contact has the number".into(),
            others: Vec::new(),
        });
        w
    }

    fn connection() -> Connection {
        Connection::new(TenantId::parse("acme").expect("valid"), Utc::now())
    }

    fn ok(id: &str) -> RecordResult {
        RecordResult {
            id: Some(id.into()),
            success: true,
            errors: Vec::new(),
        }
    }

    fn refused(code: &str) -> RecordResult {
        RecordResult {
            id: None,
            success: false,
            errors: vec![ApiError {
                message: "refused".into(),
                code: code.into(),
                fields: Vec::new(),
            }],
        }
    }

    const JANE: &str = "003000000000001AAA";
    const JOHN: &str = "003000000000002AAA";
    const JIM: &str = "003000000000003AAA";

    #[tokio::test]
    async fn each_row_of_the_batch_write_ends_its_own_call() {
        let sf = FakeSalesforce::new(
            "acme",
            [
                Reply::Rows(Vec::new()),
                Reply::Written(Written {
                    created: Ok(vec![
                        ok("00T000000000001AAA"),
                        refused("UNABLE_TO_LOCK_ROW"),
                        refused("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                    ]),
                    updated: Ok(Vec::new()),
                }),
            ],
        );
        let mut work = [matched("c1", JANE), matched("c2", JOHN), matched("c3", JIM)];

        write(&sf, &connection(), &mut work).await.expect("written");

        assert_eq!(
            work[0].end,
            Some(End::Logged {
                state: CallState::Created,
                task: TaskLinks {
                    id: "00T000000000001AAA".into(),
                    who_id: Some(JANE.into()),
                    what_id: None,
                },
            })
        );
        assert_eq!(
            work[1].end,
            Some(End::Released("UNABLE_TO_LOCK_ROW: refused".into()))
        );
        assert_eq!(
            work[2].end,
            Some(End::Failed {
                reason: "Salesforce refused the Task: FIELD_CUSTOM_VALIDATION_EXCEPTION: refused"
                    .into(),
                dead_letter: true,
            })
        );
    }

    #[tokio::test]
    async fn the_batch_costs_one_query_and_one_write() {
        let sf = FakeSalesforce::new(
            "acme",
            [
                Reply::Rows(Vec::new()),
                Reply::Written(Written {
                    created: Ok(vec![ok("00T000000000001AAA"), ok("00T000000000002AAA")]),
                    updated: Ok(Vec::new()),
                }),
            ],
        );
        let mut work = [matched("c1", JANE), matched("c2", JOHN)];

        write(&sf, &connection(), &mut work).await.expect("written");

        let sent = sf.sent();
        assert!(
            matches!(&sent[..], [Sent::Query(_), Sent::WriteMany { creates, updates }]
            if creates.len() == 2 && updates.is_empty()),
            "{sent:?}"
        );
    }

    #[tokio::test]
    async fn a_task_written_before_a_crash_is_refreshed_not_created_again() {
        let ours = json!({
            "Id": "00T000000000009AAA", "WhoId": JANE, "WhatId": null,
            "CallObject": "modjo:c1", "Description": "the rep's words",
            "Subject": "Discovery call", "CreatedDate": "2026-11-28T10:13:00.000+0000"
        });
        let Value::Object(ours) = ours else {
            unreachable!()
        };
        let sf = FakeSalesforce::new(
            "acme",
            [
                Reply::Rows(vec![ours]),
                Reply::Written(Written {
                    created: Ok(Vec::new()),
                    updated: Ok(vec![ok("00T000000000009AAA")]),
                }),
            ],
        );
        let mut work = [matched("c1", JANE)];

        write(&sf, &connection(), &mut work).await.expect("written");

        let sent = sf.sent();
        let Some(Sent::WriteMany { creates, updates }) = sent.get(1) else {
            panic!("no write: {sent:?}");
        };
        assert!(creates.is_empty(), "{creates:?}");
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].id, "00T000000000009AAA");
        let description = updates[0].fields["Description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.starts_with("the rep's words"),
            "the rep's text comes first, kept: {description}"
        );
        assert!(work[0].written_before);
    }

    #[tokio::test]
    async fn a_write_refused_as_a_whole_leaves_its_calls_to_the_batch() {
        let busy = SalesforceError::from_response(
            503,
            br#"[{"errorCode":"SERVER_UNAVAILABLE","message":"busy"}]"#,
        );
        let sf = FakeSalesforce::new("acme", [Reply::Rows(Vec::new()), Reply::Error(busy)]);
        let mut work = [matched("c1", JANE)];

        let e = write(&sf, &connection(), &mut work)
            .await
            .expect_err("the write failed");

        assert!(
            matches!(&e, WorkError::Salesforce(sf) if sf.code() == Some("SERVER_UNAVAILABLE")),
            "{e:?}"
        );
        assert_eq!(work[0].end, None, "ended by the batch's error, not here");
    }

    #[tokio::test]
    async fn two_calls_with_one_contact_never_share_the_dialers_task() {
        let dialer = json!({
            "Id": "00T00000000000DAAA", "WhoId": JANE, "CallType": "Outbound",
            "Subject": "Call", "Description": "Aircall: outbound call",
            "CreatedDate": "2026-11-28T10:13:00.000+0000"
        });
        let Value::Object(dialer) = dialer else {
            unreachable!()
        };
        let sf = FakeSalesforce::new(
            "acme",
            [
                Reply::Rows(vec![dialer]),
                Reply::Written(Written {
                    created: Ok(vec![ok("00T000000000002AAA")]),
                    updated: Ok(vec![ok("00T00000000000DAAA")]),
                }),
            ],
        );
        let mut work = [
            matched_call(call_at("c1", "2026-11-28T10:00:00Z"), JANE),
            matched_call(call_at("c2", "2026-11-28T10:05:00Z"), JANE),
        ];

        write(&sf, &connection(), &mut work).await.expect("written");

        let ends: Vec<_> = work
            .iter()
            .map(|w| match &w.end {
                Some(End::Logged { state, task }) => (*state, task.id.clone()),
                other => panic!("not logged: {other:?}"),
            })
            .collect();
        assert_eq!(
            ends,
            [
                (CallState::Enriched, "00T00000000000DAAA".to_string()),
                (CallState::Created, "00T000000000002AAA".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn an_unmatched_call_costs_no_request() {
        let sf = FakeSalesforce::new("acme", []);
        let mut work = [Claimed::rematching(call("c1"), 1)];

        write(&sf, &connection(), &mut work)
            .await
            .expect("nothing to write");

        assert_eq!(
            work[0].end,
            Some(End::Unmatched("no participant to match".into()))
        );
        assert_eq!(sf.sent(), Vec::new());
    }
}
