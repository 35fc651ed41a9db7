//! Which Salesforce Event a meeting belongs on (issue 20). Pure: no I/O.
//!
//! - **Ours**: an Event whose Modjo block carries the call's link. Events have
//!   no `CallObject`; the block is how a retry after a crash between the
//!   Salesforce write and the outcome write finds the Event it wrote.
//! - **The calendar's**: owned by the mapped host, starting within
//!   [`START_TOLERANCE`] of the calendar event's start, with the calendar's
//!   title as subject once case, spaces and punctuation are set aside, not
//!   carrying another Modjo call. Among several, one with a matched contact as
//!   its Who, then the closest start.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::domain::block;
use crate::domain::call_event::{CalendarEvent, CallEvent};
use crate::salesforce::id::same_id;
use crate::salesforce::keyset::parse_datetime;

/// How far an Event's start may be from the calendar event's.
pub const START_TOLERANCE: Duration = Duration::minutes(5);

/// The fields read of an Event.
pub const EVENT_FIELDS: &[&str] = &[
    "Id",
    "Subject",
    "StartDateTime",
    "EndDateTime",
    "WhoId",
    "WhatId",
    "OwnerId",
    "Description",
];

/// An Event as read from Salesforce, with the fields the matching reads.
#[derive(Debug, Clone, PartialEq)]
pub struct SfEvent {
    pub id: String,
    pub subject: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub who_id: Option<String>,
    pub what_id: Option<String>,
    pub owner_id: Option<String>,
    pub description: Option<String>,
}

impl SfEvent {
    /// `None` for a row without an id.
    pub fn from_record(record: &Map<String, Value>) -> Option<SfEvent> {
        let text = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_string);
        Some(SfEvent {
            id: text("Id")?,
            subject: text("Subject"),
            start: record
                .get("StartDateTime")
                .and_then(Value::as_str)
                .and_then(parse_datetime),
            who_id: text("WhoId"),
            what_id: text("WhatId"),
            owner_id: text("OwnerId"),
            description: text("Description"),
        })
    }

    /// The call link in the Event's Modjo block, if it has one.
    fn linked_call(&self) -> Option<String> {
        self.description.as_deref().and_then(block::linked_call_url)
    }
}

/// A title as compared: lower case, punctuation and symbols as spaces, runs of
/// spaces as one.
pub fn normalize_subject(title: &str) -> String {
    title
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Event we wrote for this call before, if any.
pub fn ours<'e>(events: &'e [SfEvent], call: &CallEvent) -> Option<&'e SfEvent> {
    let url = call.url.trim();
    events
        .iter()
        .find(|e| e.linked_call().as_deref() == Some(url))
}

/// The calendar's Event for this meeting, owned by `host`, not `taken`.
pub fn calendar_event<'e>(
    events: &'e [SfEvent],
    calendar: &CalendarEvent,
    host: &str,
    attendee: Option<&str>,
    taken: &HashSet<String>,
) -> Option<&'e SfEvent> {
    let title = normalize_subject(&calendar.title);
    events
        .iter()
        .filter(|e| !taken.contains(&e.id))
        .filter(|e| e.owner_id.as_deref().is_some_and(|o| same_id(o, host)))
        .filter(|e| {
            e.start
                .is_some_and(|s| (s - calendar.start).abs() <= START_TOLERANCE)
        })
        .filter(|e| e.subject.as_deref().map(normalize_subject).as_deref() == Some(&title))
        .filter(|e| e.linked_call().is_none())
        .min_by_key(|e| {
            let with_attendee = match (e.who_id.as_deref(), attendee) {
                (Some(theirs), Some(ours)) => same_id(theirs, ours),
                _ => false,
            };
            let distance = e
                .start
                .map(|s| (s - calendar.start).num_seconds().abs())
                .unwrap_or(i64::MAX);
            (!with_attendee, distance)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar() -> CalendarEvent {
        CalendarEvent {
            title: "Acme / Modjo — Security review".into(),
            start: "2026-11-28T14:00:00Z".parse().unwrap(),
            end: "2026-11-28T14:45:00Z".parse().unwrap(),
            organizer_email: None,
        }
    }

    fn event(id: &str, subject: &str, start: &str, owner: &str) -> SfEvent {
        SfEvent {
            id: id.into(),
            subject: Some(subject.into()),
            start: Some(start.parse().unwrap()),
            who_id: None,
            what_id: None,
            owner_id: Some(owner.into()),
            description: None,
        }
    }

    const HOST: &str = "005000000000001AAA";

    #[test]
    fn subjects_compare_without_case_spaces_or_punctuation() {
        assert_eq!(
            normalize_subject("  Acme / Modjo — SECURITY   review!"),
            "acme modjo security review"
        );
        assert_eq!(normalize_subject("Démo: Élan"), "démo élan");
        assert_ne!(
            normalize_subject("Acme review"),
            normalize_subject("Acme reviews")
        );
    }

    #[test]
    fn finds_the_hosts_event_at_that_time_with_that_title() {
        let events = vec![
            event(
                "a",
                "acme/modjo: security review",
                "2026-11-28T14:04:00Z",
                HOST,
            ),
            event(
                "other_owner",
                "Acme / Modjo — Security review",
                "2026-11-28T14:00:00Z",
                "005000000000002AAA",
            ),
            event(
                "too_late",
                "Acme / Modjo — Security review",
                "2026-11-28T14:06:00Z",
                HOST,
            ),
            event("other_title", "Acme sync", "2026-11-28T14:00:00Z", HOST),
        ];
        let found = calendar_event(
            &events,
            &calendar(),
            "005000000000001",
            None,
            &HashSet::new(),
        );
        assert_eq!(
            found.map(|e| e.id.as_str()),
            Some("a"),
            "15- and 18-character ids are the same user"
        );
        let taken: HashSet<String> = ["a".to_string()].into();
        assert_eq!(
            calendar_event(&events, &calendar(), HOST, None, &taken),
            None
        );
    }

    #[test]
    fn prefers_the_event_with_a_matched_attendee_then_the_closest() {
        let mut with_jane = event(
            "jane",
            "Acme / Modjo — Security review",
            "2026-11-28T14:03:00Z",
            HOST,
        );
        with_jane.who_id = Some("003000000000009AAA".into());
        let events = vec![
            event(
                "close",
                "Acme / Modjo — Security review",
                "2026-11-28T14:00:00Z",
                HOST,
            ),
            with_jane,
            event(
                "closer_still",
                "Acme / Modjo — Security review",
                "2026-11-28T13:59:30Z",
                HOST,
            ),
        ];
        let pick = |attendee| {
            calendar_event(&events, &calendar(), HOST, attendee, &HashSet::new())
                .map(|e| e.id.clone())
        };
        assert_eq!(pick(Some("003000000000009")).as_deref(), Some("jane"));
        assert_eq!(pick(None).as_deref(), Some("close"));
    }

    #[test]
    fn an_event_carrying_a_modjo_call_is_ours_or_not_the_calendars() {
        let call = CallEvent::parse(
            &serde_json::json!({
                "version": 1, "tenantId": "acme", "callId": "c1", "url": "https://app.modjo.ai/calls/c1",
                "direction": "meeting", "startedAt": "2026-11-28T14:00:00Z", "durationSeconds": 60,
            })
            .to_string(),
        )
        .unwrap();
        let block = block::merge_description(Some("agenda"), &call, &[]).unwrap();
        let mut mine = event(
            "mine",
            "Acme / Modjo — Security review",
            "2026-11-28T14:00:00Z",
            HOST,
        );
        mine.description = Some(block.replace("/c1", "/c2"));
        assert_eq!(ours(std::slice::from_ref(&mine), &call), None);
        assert_eq!(
            calendar_event(
                std::slice::from_ref(&mine),
                &calendar(),
                HOST,
                None,
                &HashSet::new()
            ),
            None,
            "another Modjo call's Event"
        );
        mine.description = Some(block);
        assert_eq!(
            ours(std::slice::from_ref(&mine), &call).map(|e| e.id.as_str()),
            Some("mine")
        );
    }
}
