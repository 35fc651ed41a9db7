//! Phase 7a: meetings on their calendar Events (issue 20). A meeting with a
//! calendar event is logged on the Salesforce Event the calendar sync created
//! (enriched with the Modjo block, the user's text kept), or on an Event
//! created for it; never as a Task. Runs before the Task writes, which then
//! leave these calls alone.
//!
//! Salesforce calls for the whole batch: one query for the hosts' Events in the
//! batch's time window (ours, after a crash, and the calendar's), and the
//! creates and updates as two sObject Collections in one composite request.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::calendar::{self, EVENT_FIELDS, SfEvent};
use super::claim::Claimed;
use super::outcomes::{End, Row, TaskLinks, end_rows};
use crate::domain::block;
use crate::domain::call_event::{CalendarEvent, Direction};
use crate::domain::text;
use crate::domain::{Activity, CallState};
use crate::ports::SalesforceApi;
use crate::salesforce::soql::{Cond, Select};
use crate::salesforce::{NewRecord, RecordUpdate};
use crate::work::WorkError;

/// What a meeting's Event write will be.
enum Write {
    Create(NewRecord),
    Update(RecordUpdate),
}

struct Planned {
    call: usize,
    state: CallState,
    links: TaskLinks,
    write: Write,
}

/// The calendar event of a call logged as an Event.
fn calendar_of(w: &Claimed) -> Option<&CalendarEvent> {
    (w.call.direction == Direction::Meeting)
        .then_some(w.call.calendar_event.as_ref())
        .flatten()
}

pub(super) async fn write<C: SalesforceApi>(
    session: &C,
    work: &mut [Claimed],
) -> Result<(), WorkError> {
    let open: Vec<usize> = (0..work.len())
        .filter(|&i| work[i].end.is_none() && calendar_of(&work[i]).is_some())
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    for &i in &open {
        work[i].activity = Activity::Event;
    }
    let events = {
        let refs: Vec<&Claimed> = open.iter().map(|&i| &work[i]).collect();
        existing_events(session, &refs).await?
    };
    let mut planned: Vec<Planned> = Vec::new();
    let mut taken: HashSet<String> = HashSet::new();
    for &i in &open {
        let w = &work[i];
        let Some(cal) = calendar_of(w) else { continue };
        let decision = w.decision.as_ref();
        if let Some(ours) = calendar::ours(&events, &w.call) {
            // Written before (the outcome write was lost): refresh its block only.
            work[i].written_before = true;
            let w = &work[i];
            taken.insert(ours.id.clone());
            let current = ours.description.as_deref();
            let kept = current.map(block::user_text).unwrap_or_default();
            let state = if kept.is_empty() {
                CallState::Created
            } else {
                CallState::Enriched
            };
            match block::merge_description(current, &w.call, &w.comments) {
                Some(m) if Some(m.as_str()) != current => {
                    planned.push(update(i, state, ours, m));
                }
                _ => {
                    work[i].end = Some(End::Logged {
                        state,
                        task: links_of(ours),
                    })
                }
            }
            continue;
        }
        let attendee = decision.and_then(|d| d.who.as_ref()).map(|c| c.id.as_str());
        let found = w
            .host()
            .and_then(|host| calendar::calendar_event(&events, cal, host, attendee, &taken));
        if let Some(found) = found {
            taken.insert(found.id.clone());
            match block::merge_description(found.description.as_deref(), &w.call, &w.comments) {
                Some(m) => planned.push(update(i, CallState::Enriched, found, m)),
                None => {
                    work[i].end = Some(End::Unmatched(
                        "the calendar's Event has no room left for the Modjo block".into(),
                    ))
                }
            }
            continue;
        }
        let Some(decision) = decision.filter(|_| w.matched()) else {
            let reason =
                decision.map_or("no participant to match".to_string(), |d| d.reason.clone());
            work[i].end = Some(End::Unmatched(reason));
            continue;
        };
        let description = block::merge_description(None, &w.call, &w.comments).unwrap_or_default();
        let who = decision.who.as_ref().map(|c| c.id.clone());
        let what = decision.what.as_ref().map(|(id, _)| id.clone());
        let mut fields = Map::new();
        let subject = text::shorten(&block::one_line(&cal.title), text::SUBJECT_LIMIT);
        fields.insert("Subject".into(), json!(subject));
        fields.insert("StartDateTime".into(), json!(sf_datetime(cal.start)));
        fields.insert("EndDateTime".into(), json!(sf_datetime(cal.end)));
        if let Some(who) = &who {
            fields.insert("WhoId".into(), json!(who));
        }
        if let Some(what) = &what {
            fields.insert("WhatId".into(), json!(what));
        }
        if let Some(owner) = &w.owner {
            fields.insert("OwnerId".into(), json!(owner.id));
        }
        fields.insert("Description".into(), json!(description));
        planned.push(Planned {
            call: i,
            state: CallState::Created,
            links: TaskLinks {
                id: String::new(),
                who_id: who,
                what_id: what,
            },
            write: Write::Create(NewRecord {
                object: "Event",
                fields,
            }),
        });
    }

    let (creates, updates): (Vec<Planned>, Vec<Planned>) = planned
        .into_iter()
        .partition(|p| matches!(p.write, Write::Create(_)));
    if creates.is_empty() && updates.is_empty() {
        return Ok(());
    }
    let new: Vec<NewRecord> = creates
        .iter()
        .filter_map(|p| match &p.write {
            Write::Create(r) => Some(r.clone()),
            Write::Update(_) => None,
        })
        .collect();
    let changed: Vec<RecordUpdate> = updates
        .iter()
        .filter_map(|p| match &p.write {
            Write::Update(u) => Some(u.clone()),
            Write::Create(_) => None,
        })
        .collect();
    // Both sides in one composite request, as the Task writes.
    let written = session.write_many(&new, &changed).await?;
    let row = |p: Planned| Row {
        call: p.call,
        state: p.state,
        links: p.links,
    };
    end_rows(
        Activity::Event,
        work,
        written,
        creates.into_iter().map(row).collect(),
        updates.into_iter().map(row).collect(),
    )
}

/// One query: the Events of the batch's meetings' owners that start within the
/// tolerance of any of their calendar events.
async fn existing_events<C: SalesforceApi>(
    session: &C,
    work: &[&Claimed],
) -> Result<Vec<SfEvent>, WorkError> {
    let owners = super::claim::owners(work);
    let starts: Vec<DateTime<Utc>> = work
        .iter()
        .filter_map(|w| calendar_of(w).map(|c| c.start))
        .collect();
    let (Some(first), Some(last)) = (starts.iter().min(), starts.iter().max()) else {
        return Ok(Vec::new());
    };
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let select = Select::new("Event", EVENT_FIELDS).filter(Cond::and([
        Cond::is_in("OwnerId", owners),
        Cond::ge("StartDateTime", *first - calendar::START_TOLERANCE),
        Cond::le("StartDateTime", *last + calendar::START_TOLERANCE),
    ]));
    Ok(session
        .query_select(&select, false)
        .await?
        .iter()
        .filter_map(SfEvent::from_record)
        .collect())
}

fn links_of(e: &SfEvent) -> TaskLinks {
    TaskLinks {
        id: e.id.clone(),
        who_id: e.who_id.clone(),
        what_id: e.what_id.clone(),
    }
}

fn update(call: usize, state: CallState, e: &SfEvent, description: String) -> Planned {
    let mut fields = Map::new();
    fields.insert("Description".into(), Value::String(description));
    Planned {
        call,
        state,
        links: links_of(e),
        write: Write::Update(RecordUpdate {
            object: "Event",
            id: e.id.clone(),
            fields,
        }),
    }
}

/// Salesforce's dateTime format, in UTC.
fn sf_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
