//! Phase 6: the Tasks that already exist for the batch's calls, found by one
//! query: ours (by `CallObject`, after a crash between the Salesforce write and
//! the outcome write) and the dialers' call Tasks (DESIGN §6, step 3).

use std::collections::HashSet;

use chrono::Utc;
use serde_json::{Map, Value};

use super::claim::Claimed;
use crate::domain::block;
use crate::domain::call_event::Role;
use crate::domain::matching::Decision;
use crate::domain::normalize;
use crate::ports::SalesforceApi;
use crate::salesforce::id::same_id;
use crate::salesforce::keyset::parse_datetime;
use crate::salesforce::soql::{Cond, Literal, Select};
use crate::work::WorkError;

/// Dialer Tasks are looked for from this long before the call starts...
const DIALER_BEFORE: i64 = 10 * 60;
/// ...to this long after it ends (Aircall updates its Task ~30 s after hang-up).
const DIALER_AFTER: i64 = 15 * 60;

/// The fields read of an existing Task.
const TASK_FIELDS: &[&str] = &[
    "Id",
    "Subject",
    "WhoId",
    "WhatId",
    "OwnerId",
    "CallObject",
    "CallType",
    "CallDisposition",
    "Description",
    "CreatedDate",
];

/// A Task read from Salesforce.
pub(super) type Task = Map<String, Value>;

pub(super) fn text<'t>(task: &'t Task, key: &str) -> Option<&'t str> {
    task.get(key).and_then(Value::as_str)
}

/// One query for the batch (cut into several when its URI would exceed
/// Salesforce's limit): our Tasks (CallObject) and candidate dialer Tasks.
pub(super) async fn existing_tasks<C: SalesforceApi>(
    session: &C,
    work: &[&Claimed],
) -> Result<Vec<Task>, WorkError> {
    let call_objects: Vec<String> = work.iter().map(|w| w.call.call_object()).collect();
    let whos: Vec<String> = work
        .iter()
        .filter_map(|w| w.decision.as_ref()?.who.as_ref().map(|c| c.id.clone()))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let owners = super::claim::owners(work);
    let from = work
        .iter()
        .map(|w| w.call.started_at)
        .min()
        .unwrap_or_else(Utc::now)
        - chrono::Duration::seconds(DIALER_BEFORE);
    let to = work
        .iter()
        .map(|w| w.call.started_at + chrono::Duration::seconds(w.call.duration_seconds as i64))
        .max()
        .unwrap_or_else(Utc::now)
        + chrono::Duration::seconds(DIALER_AFTER);
    let mut dialer_links = Vec::new();
    if !whos.is_empty() {
        dialer_links.push(Cond::is_in("WhoId", whos));
    }
    if !owners.is_empty() {
        dialer_links.push(Cond::and([
            Cond::eq("WhoId", Literal::Null),
            Cond::is_in("OwnerId", owners),
        ]));
    }
    let mut any = vec![Cond::is_in("CallObject", call_objects)];
    if !dialer_links.is_empty() {
        any.push(Cond::and([
            Cond::eq("TaskSubtype", "Call"),
            Cond::ge("CreatedDate", from),
            Cond::le("CreatedDate", to),
            Cond::or(dialer_links),
        ]));
    }
    let select = Select::new("Task", TASK_FIELDS).filter(Cond::or(any));
    Ok(session.query_select(&select, false).await?)
}

/// The Task we created for this call before, if any.
pub(super) fn ours<'t>(tasks: &'t [Task], w: &Claimed) -> Option<&'t Task> {
    let call_object = w.call.call_object();
    tasks
        .iter()
        .find(|t| text(t, "CallObject") == Some(call_object.as_str()))
}

/// The dialer's Task for this call: a call Task created around the call's start,
/// on the same Who (or, without one, with the call's number in its text, owned
/// by the same rep), in the same direction, not linked to another Modjo call.
pub(super) fn dialer_task<'t>(
    tasks: &'t [Task],
    w: &Claimed,
    decision: &Decision,
    taken: &HashSet<String>,
    region: &str,
) -> Option<&'t Task> {
    let start = w.call.started_at;
    let from = start - chrono::Duration::seconds(DIALER_BEFORE);
    let to = start
        + chrono::Duration::seconds(w.call.duration_seconds as i64)
        + chrono::Duration::seconds(DIALER_AFTER);
    let digits: Vec<String> = w
        .call
        .participants
        .iter()
        .filter(|p| p.role == Role::External)
        .filter_map(|p| p.phone.as_deref())
        .flat_map(|p| match normalize::phone_e164(p, region) {
            Some(e) => normalize::phone_search_variants(&e),
            None => vec![p.chars().filter(char::is_ascii_digit).collect()],
        })
        .filter(|d| d.len() >= 6)
        .collect();
    let who = decision.who.as_ref().map(|c| c.id.as_str());
    let owner = w.owner.as_ref().map(|o| o.id.as_str());
    let our_url = w.call.url.trim();
    tasks
        .iter()
        .filter(|t| {
            let id = text(t, "Id").unwrap_or_default();
            if taken.contains(id) || text(t, "CallObject").is_some_and(|c| c.starts_with("modjo:"))
            {
                return false;
            }
            let Some(created) = text(t, "CreatedDate").and_then(parse_datetime) else {
                return false;
            };
            if created < from || created > to {
                return false;
            }
            if let (Some(theirs), Some(ours)) = (text(t, "CallType"), w.call.direction.call_type())
            {
                if theirs != ours {
                    return false;
                }
            }
            if let Some(url) = text(t, "Description").and_then(block::linked_call_url) {
                if url != our_url {
                    return false; // another Modjo call's Task
                }
            }
            match (text(t, "WhoId"), who) {
                (Some(theirs), Some(ours)) => same_id(theirs, ours),
                (None, _) => {
                    let haystack: String = [
                        text(t, "Subject"),
                        text(t, "CallDisposition"),
                        text(t, "Description"),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                    owner.is_some()
                        && text(t, "OwnerId")
                            .zip(owner)
                            .is_some_and(|(a, b)| same_id(a, b))
                        && digits.iter().any(|d| haystack.contains(d.as_str()))
                }
                _ => false,
            }
        })
        .min_by_key(|t| {
            text(t, "CreatedDate")
                .and_then(parse_datetime)
                .map(|c| (c - start).num_seconds().abs())
                .unwrap_or(i64::MAX)
        })
}
