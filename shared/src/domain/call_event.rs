//! The call event (DESIGN §3), parsed and validated. Unknown fields are ignored;
//! a missing or invalid required field is a permanent error naming it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{TenantId, validate_external_id};

/// Largest message accepted (SQS allows 256 KiB; anything near that is not a call).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_DURATION_SECONDS: u64 = 48 * 3600;
const MAX_PARTICIPANTS: usize = 500;
/// Salesforce refuses an Event longer than 14 days (`EndDateTime - StartDateTime`).
const MAX_CALENDAR_EVENT_DAYS: i64 = 14;
/// Bounds on the insights lists and texts: far above any real call, low enough
/// that no field can crowd the others out of a 256 KiB message.
const MAX_LIST: usize = 200;
const MAX_ITEM_CHARS: usize = 1000;
const MAX_TEXT_CHARS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
    Meeting,
}

impl Direction {
    /// Task.CallType (meetings have none).
    pub fn call_type(self) -> Option<&'static str> {
        match self {
            Direction::Inbound => Some("Inbound"),
            Direction::Outbound => Some("Outbound"),
            Direction::Internal => Some("Internal"),
            Direction::Meeting => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "Inbound call",
            Direction::Outbound => "Outbound call",
            Direction::Internal => "Internal call",
            Direction::Meeting => "Meeting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    External,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallSource {
    pub provider: String,
    #[serde(default)]
    pub external_call_id: Option<String>,
}

/// A validated call event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallEvent {
    pub version: u32,
    pub tenant_id: TenantId,
    pub call_id: String,
    pub url: String,
    #[serde(default)]
    pub title: Option<String>,
    pub direction: Direction,
    pub started_at: DateTime<Utc>,
    pub duration_seconds: u64,
    #[serde(default)]
    pub host_user_id: Option<String>,
    #[serde(default)]
    pub source: Option<CallSource>,
    #[serde(default)]
    pub participants: Vec<Participant>,
    #[serde(default)]
    pub summary: Option<String>,
    /// When the call ended (optional; `startedAt + durationSeconds` without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The calendar event a meeting was recorded from (meetings only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_event: Option<CalendarEvent>,
    /// What the call was about, as Modjo detected it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Moments of the call worth a look, each at its second of the recording.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub highlights: Vec<Highlight>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The rep's own notes taken in Modjo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// The calendar event of a meeting (`calendarEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEvent {
    pub title: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer_email: Option<String>,
}

/// A highlight of the call (`highlights[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Highlight {
    pub at_second: u32,
    pub text: String,
}

/// Why a message was refused. `tenant` and `call_id` are set when they could be
/// read, so the refusal can be recorded against the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: String,
    pub tenant: Option<TenantId>,
    pub call_id: Option<String>,
}

impl CallEvent {
    pub fn parse(body: &str) -> Result<CallEvent, Invalid> {
        let mut invalid = Invalid {
            reason: String::new(),
            tenant: None,
            call_id: None,
        };
        if body.len() > MAX_MESSAGE_BYTES {
            invalid.reason = format!(
                "message of {} bytes exceeds {MAX_MESSAGE_BYTES}",
                body.len()
            );
            // Still try to say which call it was, for the record.
            identify(body, &mut invalid);
            return Err(invalid);
        }
        let value: serde_json::Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                invalid.reason = format!("not JSON: {e}");
                return Err(invalid);
            }
        };
        identify_value(&value, &mut invalid);
        let event: CallEvent = match serde_path_to_error::deserialize(value) {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().to_string();
                invalid.reason = if path == "." {
                    format!("invalid call event: {}", e.inner())
                } else {
                    format!("invalid call event: {path}: {}", e.inner())
                };
                return Err(invalid);
            }
        };
        if let Err(reason) = event.check() {
            invalid.reason = reason;
            return Err(invalid);
        }
        Ok(event)
    }

    fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("unsupported version {}", self.version));
        }
        if !validate_external_id(&self.call_id) {
            return Err("callId: expected 1-128 printable characters".into());
        }
        let url = url::Url::parse(&self.url).map_err(|_| "url: not an absolute URL".to_string())?;
        if url.scheme() != "https" || self.url.len() > 2048 {
            return Err("url: expected an https URL of at most 2048 characters".into());
        }
        if self.duration_seconds > MAX_DURATION_SECONDS {
            return Err(format!(
                "durationSeconds: {} is more than 48 hours",
                self.duration_seconds
            ));
        }
        let now = Utc::now();
        if self.started_at > now + chrono::Duration::days(1)
            || self.started_at.timestamp() < 946_684_800
        {
            return Err(format!(
                "startedAt: {} is not a plausible call time",
                self.started_at
            ));
        }
        if self.participants.len() > MAX_PARTICIPANTS {
            return Err(format!(
                "participants: {} is more than {MAX_PARTICIPANTS}",
                self.participants.len()
            ));
        }
        if let Some(host) = &self.host_user_id {
            if !validate_external_id(host) {
                return Err("hostUserId: expected 1-128 printable characters".into());
            }
        }
        for p in &self.participants {
            for (field, value) in [
                ("name", &p.name),
                ("phone", &p.phone),
                ("email", &p.email),
                ("userId", &p.user_id),
            ] {
                if value.as_ref().is_some_and(|v| v.chars().count() > 1000) {
                    return Err(format!("participants.{field}: longer than 1000 characters"));
                }
            }
        }
        self.check_insights()
    }

    /// The optional fields added to version 1 (`endedAt`, `calendarEvent`,
    /// `topics`, `highlights`, `tags`, `notes`).
    fn check_insights(&self) -> Result<(), String> {
        if let Some(ended) = self.ended_at {
            let longest = chrono::Duration::seconds(MAX_DURATION_SECONDS as i64);
            if ended < self.started_at || ended - self.started_at > longest {
                return Err(format!(
                    "endedAt: {ended} is not within 48 hours after startedAt"
                ));
            }
        }
        if let Some(cal) = &self.calendar_event {
            if cal.title.trim().is_empty() || cal.title.chars().count() > MAX_ITEM_CHARS {
                return Err(format!(
                    "calendarEvent.title: expected 1-{MAX_ITEM_CHARS} characters"
                ));
            }
            if cal.end < cal.start
                || cal.end - cal.start > chrono::Duration::days(MAX_CALENDAR_EVENT_DAYS)
            {
                return Err(format!(
                    "calendarEvent.end: expected from start to {MAX_CALENDAR_EVENT_DAYS} days after it"
                ));
            }
            if cal.start.timestamp() < 946_684_800 {
                return Err(format!(
                    "calendarEvent.start: {} is not a plausible meeting time",
                    cal.start
                ));
            }
            if cal
                .organizer_email
                .as_ref()
                .is_some_and(|e| e.chars().count() > MAX_ITEM_CHARS)
            {
                return Err(format!(
                    "calendarEvent.organizerEmail: longer than {MAX_ITEM_CHARS} characters"
                ));
            }
        }
        for (field, list) in [("topics", &self.topics), ("tags", &self.tags)] {
            if list.len() > MAX_LIST {
                return Err(format!("{field}: more than {MAX_LIST} entries"));
            }
            if list.iter().any(|t| t.chars().count() > MAX_ITEM_CHARS) {
                return Err(format!(
                    "{field}: an entry is longer than {MAX_ITEM_CHARS} characters"
                ));
            }
        }
        if self.highlights.len() > MAX_LIST {
            return Err(format!("highlights: more than {MAX_LIST} entries"));
        }
        if self
            .highlights
            .iter()
            .any(|h| u64::from(h.at_second) > MAX_DURATION_SECONDS)
        {
            return Err("highlights.atSecond: more than 48 hours into the call".into());
        }
        if self
            .highlights
            .iter()
            .any(|h| h.text.chars().count() > MAX_TEXT_CHARS)
        {
            return Err(format!(
                "highlights.text: longer than {MAX_TEXT_CHARS} characters"
            ));
        }
        if self
            .notes
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_TEXT_CHARS)
        {
            return Err(format!("notes: longer than {MAX_TEXT_CHARS} characters"));
        }
        Ok(())
    }

    /// When the call ended: `endedAt`, else `startedAt + durationSeconds`.
    pub fn ended_at(&self) -> DateTime<Utc> {
        self.ended_at.unwrap_or_else(|| {
            self.started_at + chrono::Duration::seconds(self.duration_seconds as i64)
        })
    }

    /// The call's provider (`source.provider`), for display.
    pub fn provider(&self) -> Option<&str> {
        self.source
            .as_ref()
            .map(|s| s.provider.trim())
            .filter(|p| !p.is_empty())
    }

    /// The Salesforce-side key of the call: `Task.CallObject` of the Task we create.
    pub fn call_object(&self) -> String {
        format!("modjo:{}", self.call_id)
    }
}

fn identify_value(value: &serde_json::Value, invalid: &mut Invalid) {
    invalid.tenant = value
        .get("tenantId")
        .and_then(|t| t.as_str())
        .and_then(|t| TenantId::parse(t).ok());
    invalid.call_id = value
        .get("callId")
        .and_then(|c| c.as_str())
        .filter(|c| validate_external_id(c))
        .map(str::to_string);
}

/// Best effort on an oversized body, without parsing it: the top-level string
/// fields (an escaped quote inside a string value cannot match the pattern).
fn identify(body: &str, invalid: &mut Invalid) {
    let field = |name: &str| -> Option<String> {
        let key = format!("\"{name}\":\"");
        let start = body.find(&key)? + key.len();
        let rest = body.get(start..)?;
        Some(rest[..rest.find('"')?].to_string())
    };
    invalid.tenant = field("tenantId").and_then(|t| TenantId::parse(&t).ok());
    invalid.call_id = field("callId").filter(|c| validate_external_id(c));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> serde_json::Value {
        json!({
            "version": 1, "tenantId": "acme", "callId": "call_8f2c",
            "url": "https://app.modjo.ai/calls/call_8f2c", "title": "Discovery call — Acme",
            "direction": "outbound", "startedAt": "2026-11-28T10:00:00Z", "durationSeconds": 754,
            "hostUserId": "usr_12", "source": {"provider": "aircall", "externalCallId": "1874923"},
            "participants": [
                {"role": "external", "name": "Jane Doe", "phone": "+33 6 12 34 56 78"},
                {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
            ],
            "summary": "optional", "somethingNew": {"ignored": true}
        })
    }

    #[test]
    fn parses_the_documented_event() {
        let e = CallEvent::parse(&valid().to_string()).unwrap();
        assert_eq!(e.call_id, "call_8f2c");
        assert_eq!(e.direction, Direction::Outbound);
        assert_eq!(e.participants.len(), 2);
        assert_eq!(e.call_object(), "modjo:call_8f2c");
    }

    #[test]
    fn refuses_bad_input_with_a_clear_reason() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!({"version": 1}), "invalid call event"),
            (
                {
                    let mut v = valid();
                    v["version"] = json!(2);
                    v
                },
                "unsupported version",
            ),
            (
                {
                    let mut v = valid();
                    v.as_object_mut().unwrap().remove("startedAt");
                    v
                },
                "startedAt",
            ),
            (
                {
                    let mut v = valid();
                    v["durationSeconds"] = json!(-5);
                    v
                },
                "durationSeconds",
            ),
            (
                {
                    let mut v = valid();
                    v["durationSeconds"] = json!(10_000_000);
                    v
                },
                "durationSeconds",
            ),
            (
                {
                    let mut v = valid();
                    v["startedAt"] = json!("2999-01-01T00:00:00Z");
                    v
                },
                "startedAt",
            ),
            (
                {
                    let mut v = valid();
                    v["direction"] = json!("sideways");
                    v
                },
                "direction",
            ),
            (
                {
                    let mut v = valid();
                    v["url"] = json!("javascript:alert(1)");
                    v
                },
                "url",
            ),
            (
                {
                    let mut v = valid();
                    v["callId"] = json!("");
                    v
                },
                "callId",
            ),
            (
                {
                    let mut v = valid();
                    v["tenantId"] = json!("a#b");
                    v
                },
                "tenant",
            ),
        ];
        for (body, expected) in cases {
            let err = CallEvent::parse(&body.to_string()).unwrap_err();
            assert!(err.reason.contains(expected), "{body}: {}", err.reason);
        }
        assert!(
            CallEvent::parse("{not json")
                .unwrap_err()
                .reason
                .starts_with("not JSON")
        );
    }

    #[test]
    fn version_1_senders_without_the_new_fields_still_parse() {
        let e = CallEvent::parse(&valid().to_string()).unwrap();
        assert_eq!(e.ended_at, None);
        assert_eq!(e.calendar_event, None);
        assert!(e.topics.is_empty() && e.highlights.is_empty() && e.tags.is_empty());
        assert_eq!(
            e.ended_at(),
            "2026-11-28T10:12:34Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(e.provider(), Some("aircall"));
    }

    fn meeting() -> serde_json::Value {
        let mut v = valid();
        v["direction"] = json!("meeting");
        v["endedAt"] = json!("2026-11-28T10:31:00Z");
        v["calendarEvent"] = json!({
            "title": "Acme / Modjo — demo", "start": "2026-11-28T10:00:00Z",
            "end": "2026-11-28T10:30:00Z", "organizerEmail": "bob@modjo.ai"
        });
        v["topics"] = json!(["Pricing", "Security"]);
        v["highlights"] = json!([{"atSecond": 95, "text": "Budget is 50k"}]);
        v["tags"] = json!(["hot"]);
        v["notes"] = json!("Call back Tuesday");
        v
    }

    #[test]
    fn parses_the_meeting_fields() {
        let e = CallEvent::parse(&meeting().to_string()).unwrap();
        let cal = e.calendar_event.as_ref().unwrap();
        assert_eq!(cal.title, "Acme / Modjo — demo");
        assert_eq!(cal.organizer_email.as_deref(), Some("bob@modjo.ai"));
        assert_eq!(
            e.highlights,
            vec![Highlight {
                at_second: 95,
                text: "Budget is 50k".into()
            }]
        );
        assert_eq!(e.tags, vec!["hot".to_string()]);
        assert_eq!(e.notes.as_deref(), Some("Call back Tuesday"));
        assert_eq!(
            e.ended_at(),
            "2026-11-28T10:31:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn refuses_bad_meeting_fields_naming_them() {
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("endedAt", json!("2026-11-28T09:00:00Z"), "endedAt"),
            ("endedAt", json!("2026-12-01T09:00:00Z"), "endedAt"),
            ("endedAt", json!("yesterday"), "endedAt"),
            (
                "calendarEvent",
                json!({"title": "x", "start": "2026-11-28T10:00:00Z", "end": "2026-11-28T09:00:00Z"}),
                "calendarEvent.end",
            ),
            (
                "calendarEvent",
                json!({"title": "x", "start": "2026-11-01T10:00:00Z", "end": "2026-11-16T10:00:01Z"}),
                "calendarEvent.end",
            ),
            (
                "calendarEvent",
                json!({"title": " ", "start": "2026-11-28T10:00:00Z", "end": "2026-11-28T10:30:00Z"}),
                "calendarEvent.title",
            ),
            ("calendarEvent", json!({"title": "x"}), "calendarEvent"),
            ("topics", json!("Pricing"), "topics"),
            ("topics", json!(vec!["t"; 201]), "topics"),
            ("tags", json!(["x".repeat(1001)]), "tags"),
            ("highlights", json!([{"text": "no time"}]), "highlights"),
            (
                "highlights",
                json!([{"atSecond": 200_000, "text": "late"}]),
                "highlights.atSecond",
            ),
            ("notes", json!("n".repeat(100_001)), "notes"),
        ];
        for (field, value, expected) in cases {
            let mut v = meeting();
            v[field] = value;
            let err = CallEvent::parse(&v.to_string()).unwrap_err();
            assert!(err.reason.contains(expected), "{field}: {}", err.reason);
            assert_eq!(err.call_id.as_deref(), Some("call_8f2c"));
        }
    }

    #[test]
    fn identifies_the_call_even_when_refusing_it() {
        let mut v = valid();
        v["durationSeconds"] = json!(-1);
        let err = CallEvent::parse(&v.to_string()).unwrap_err();
        assert_eq!(err.tenant.unwrap().as_str(), "acme");
        assert_eq!(err.call_id.as_deref(), Some("call_8f2c"));

        let mut big = valid();
        big["summary"] = json!("x".repeat(MAX_MESSAGE_BYTES));
        let err = CallEvent::parse(&big.to_string()).unwrap_err();
        assert!(err.reason.contains("exceeds"));
        assert_eq!(err.call_id.as_deref(), Some("call_8f2c"));
    }
}
