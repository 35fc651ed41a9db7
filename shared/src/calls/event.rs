//! The call event (DESIGN §3), parsed and validated. Unknown fields are ignored;
//! a missing or invalid required field is a permanent error naming it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{TenantId, validate_external_id};

/// Largest message accepted (SQS allows 256 KiB; anything near that is not a call).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
const MAX_DURATION_SECONDS: u64 = 48 * 3600;
const MAX_PARTICIPANTS: usize = 500;

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
        Ok(())
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
