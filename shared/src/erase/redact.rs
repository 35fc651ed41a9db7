//! Redaction of a person inside a stored call: its message (the call event as
//! received) and its outcome (linked records' names, candidates, reasons). The
//! call itself, its ids and its Salesforce links are kept. Pure: no I/O.

use serde_json::Value;

use super::person::{ERASED, Person};
use crate::domain::{CallOutcome, LinkedRecord};

/// Keys of a participant that say what it is, not who: kept.
const KEPT_KEYS: &[&str] = &["role", "userId"];

/// `outcome` with the person redacted, or `None` when nothing of them is in it.
pub fn redact_outcome(
    outcome: &CallOutcome,
    person: &Person,
    phone_region: &str,
) -> Option<CallOutcome> {
    let mut out = outcome.clone();
    let names = |list: &mut Vec<LinkedRecord>| {
        for r in list.iter_mut() {
            if person.ids.contains(&r.id) && r.name.is_some() {
                r.name = Some(ERASED.to_string());
            } else if let Some(name) = &r.name {
                r.name = Some(person.redact_text(name));
            }
        }
    };
    names(&mut out.linked);
    names(&mut out.candidates);
    if let Some(m) = out.modjo_match.as_mut() {
        names(&mut m.linked);
        m.reason = person.redact_text(&m.reason);
    }
    out.reason = out.reason.as_deref().map(|r| person.redact_text(r));
    for r in &mut out.rematches {
        r.reason = person.redact_text(&r.reason);
    }
    out.message = out
        .message
        .as_deref()
        .map(|m| redact_message(m, person, phone_region));
    (out != *outcome).then_some(out)
}

/// A call message with the person redacted: as JSON (an object that holds one of
/// their emails or numbers is a participant: every value of it but its role
/// goes), else as text.
pub fn redact_message(message: &str, person: &Person, phone_region: &str) -> String {
    match serde_json::from_str::<Value>(message) {
        Ok(mut json) => {
            redact_value(&mut json, person, phone_region);
            json.to_string()
        }
        Err(_) => person.redact_text(message),
    }
}

fn redact_value(value: &mut Value, person: &Person, phone_region: &str) {
    match value {
        Value::String(s) => {
            if person.is_identifier(s, phone_region) {
                *s = ERASED.to_string();
            } else {
                let redacted = person.redact_text(s);
                if redacted != *s {
                    *s = redacted;
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_value(v, person, phone_region)),
        Value::Object(map) => {
            let is_them = map.values().any(|v| {
                v.as_str()
                    .is_some_and(|s| person.is_identifier(s, phone_region))
            });
            for (k, v) in map.iter_mut() {
                if is_them && v.is_string() && !KEPT_KEYS.contains(&k.as_str()) {
                    *v = Value::String(ERASED.to_string());
                } else {
                    redact_value(v, person, phone_region);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CallState;
    use crate::erase::person::Identifier;
    use chrono::Utc;
    use serde_json::json;

    fn jane() -> Person {
        let mut p = Person::from_records(&Identifier::Phone("+33612345678".into()), &[]);
        p.ids.insert("003JANE".into());
        p.names.insert("Jane Doe".into());
        p
    }

    #[test]
    fn a_participant_is_erased_whole_and_the_call_kept() {
        let message = json!({"callId": "c1", "title": "Call with Jane Doe", "participants": [
            {"role": "external", "name": "Someone", "phone": "06 12 34 56 78"},
            {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
        ]})
        .to_string();
        let redacted: Value =
            serde_json::from_str(&redact_message(&message, &jane(), "FR")).unwrap();
        assert_eq!(
            redacted,
            json!({"callId": "c1", "title": "Call with [erased]", "participants": [
                {"role": "external", "name": "[erased]", "phone": "[erased]"},
                {"role": "internal", "userId": "usr_12", "email": "bob@modjo.ai"}
            ]})
        );
    }

    #[test]
    fn an_outcome_keeps_ids_and_loses_names() {
        let outcome = CallOutcome {
            who_id: Some("003JANE".into()),
            linked: vec![
                LinkedRecord {
                    id: "003JANE".into(),
                    object: "Contact".into(),
                    name: Some("Jane Doe".into()),
                },
                LinkedRecord {
                    id: "001ACME".into(),
                    object: "Account".into(),
                    name: Some("Acme".into()),
                },
            ],
            ..CallOutcome::new("c1", CallState::Created, Utc::now())
        };
        let out = redact_outcome(&outcome, &jane(), "FR").unwrap();
        assert_eq!(out.who_id.as_deref(), Some("003JANE"));
        assert_eq!(out.linked[0].name.as_deref(), Some(ERASED));
        assert_eq!(out.linked[1].name.as_deref(), Some("Acme"));
        let other = CallOutcome::new("c2", CallState::Unmatched, Utc::now());
        assert_eq!(redact_outcome(&other, &jane(), "FR"), None, "untouched");
    }
}
