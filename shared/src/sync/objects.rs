//! What the sync reads from each object, and the index entries each record
//! yields. Pure: no I/O, unit tested.

use serde_json::{Map, Value};

use crate::domain::normalize;
use crate::domain::{CONTACT_PHONES, CrmRecord, IndexEntry, IndexKey, IndexKind, LEAD_PHONES};
use crate::salesforce::keyset::{KeysetQuery, Position, parse_datetime};
use crate::salesforce::soql::Cond;

/// One synced sObject: its fields (named explicitly), an optional filter, and
/// whether deletions are read through `queryAll`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncObject {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    /// `queryAll` and `IsDeleted` (User has neither).
    pub deletable: bool,
    /// The status and cursor name (Task is synced for its Email subtype only).
    pub key: &'static str,
    /// `field = value` that every synced record meets.
    pub only: Option<(&'static str, &'static str)>,
}

impl SyncObject {
    /// The keyset query that reads this object's changes.
    pub fn keyset_query(&self) -> KeysetQuery {
        let query = KeysetQuery::new(self.name, self.fields).include_deleted(self.deletable);
        match self.only {
            Some((field, value)) => query.filter(Cond::eq(field, value)),
            None => query,
        }
    }
}

pub const USER: SyncObject = SyncObject {
    name: "User",
    key: "User",
    only: None,
    fields: &[
        "Id",
        "Name",
        "Email",
        "Username",
        "IsActive",
        "UserType",
        "SystemModstamp",
    ],
    deletable: false,
};
pub const ACCOUNT: SyncObject = SyncObject {
    name: "Account",
    key: "Account",
    only: None,
    fields: &[
        "Id",
        "Name",
        "Phone",
        "Website",
        "OwnerId",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
        "MasterRecordId",
    ],
    deletable: true,
};
pub const CONTACT: SyncObject = SyncObject {
    name: "Contact",
    key: "Contact",
    only: None,
    fields: &[
        "Id",
        "FirstName",
        "LastName",
        "Name",
        "Email",
        "Phone",
        "MobilePhone",
        "HomePhone",
        "OtherPhone",
        "AssistantPhone",
        "AccountId",
        "OwnerId",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
        "MasterRecordId",
    ],
    deletable: true,
};
pub const LEAD: SyncObject = SyncObject {
    name: "Lead",
    key: "Lead",
    only: None,
    fields: &[
        "Id",
        "Name",
        "Email",
        "Phone",
        "MobilePhone",
        "Company",
        "IsConverted",
        "ConvertedContactId",
        "ConvertedAccountId",
        "ConvertedOpportunityId",
        "OwnerId",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
        "MasterRecordId",
    ],
    deletable: true,
};
pub const OPPORTUNITY: SyncObject = SyncObject {
    name: "Opportunity",
    key: "Opportunity",
    only: None,
    fields: &[
        "Id",
        "Name",
        "AccountId",
        "StageName",
        "Amount",
        "CloseDate",
        "IsClosed",
        "IsWon",
        "OwnerId",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
        "IsDeleted",
    ],
    deletable: true,
};
pub const OPPORTUNITY_CONTACT_ROLE: SyncObject = SyncObject {
    name: "OpportunityContactRole",
    key: "OpportunityContactRole",
    only: None,
    fields: &[
        "Id",
        "OpportunityId",
        "ContactId",
        "Role",
        "IsPrimary",
        "SystemModstamp",
        "IsDeleted",
    ],
    deletable: true,
};
pub const EMAIL_MESSAGE: SyncObject = SyncObject {
    name: "EmailMessage",
    key: "EmailMessage",
    only: None,
    fields: &[
        "Id",
        "Subject",
        "FromAddress",
        "FromName",
        "ToAddress",
        "CcAddress",
        "MessageDate",
        "Incoming",
        "Status",
        "ActivityId",
        "RelatedToId",
        "SystemModstamp",
        "IsDeleted",
    ],
    deletable: true,
};
pub const EMAIL_MESSAGE_RELATION: SyncObject = SyncObject {
    name: "EmailMessageRelation",
    key: "EmailMessageRelation",
    only: None,
    fields: &[
        "Id",
        "EmailMessageId",
        "RelationId",
        "RelationType",
        "RelationAddress",
        "SystemModstamp",
        "IsDeleted",
    ],
    deletable: true,
};
pub const EMAIL_TASK: SyncObject = SyncObject {
    name: "Task",
    key: "EmailTask",
    only: Some(("TaskSubtype", "Email")),
    fields: &[
        "Id",
        "Subject",
        "TaskSubtype",
        "WhoId",
        "WhatId",
        "AccountId",
        "OwnerId",
        "ActivityDate",
        "Status",
        "CreatedDate",
        "SystemModstamp",
        "IsDeleted",
    ],
    deletable: true,
};

/// Every synced object, in dependency order: emails after the records they link
/// to, relations after their emails.
/// The calendar's meetings (and the Events Modjo logs): the timeline of the
/// records they are linked to.
pub const EVENT: SyncObject = SyncObject {
    name: "Event",
    key: "Event",
    only: None,
    fields: &[
        "Id",
        "Subject",
        "StartDateTime",
        "EndDateTime",
        "WhoId",
        "WhatId",
        "AccountId",
        "OwnerId",
        "CreatedDate",
        "SystemModstamp",
        "IsDeleted",
    ],
    deletable: true,
};

pub const ALL: [SyncObject; 10] = [
    USER,
    ACCOUNT,
    CONTACT,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_CONTACT_ROLE,
    EMAIL_MESSAGE,
    EMAIL_MESSAGE_RELATION,
    EMAIL_TASK,
    EVENT,
];

pub fn by_key(key: &str) -> Option<SyncObject> {
    ALL.iter().copied().find(|o| o.key == key)
}

fn text<'a>(record: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    record
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The fields copied into index entries, so that matching a call needs no second read.
fn projection(record: &Map<String, Value>, fields: &[&str]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| {
            record
                .get(*f)
                .filter(|v| !v.is_null())
                .map(|v| (f.to_string(), v.clone()))
        })
        .collect()
}

const MATCH_FIELDS: &[&str] = &[
    "Name",
    "AccountId",
    "OwnerId",
    "LastModifiedDate",
    "IsConverted",
    "ConvertedContactId",
];
const TIMELINE_FIELDS: &[&str] = &[
    "Subject",
    "FromAddress",
    "FromName",
    "ToAddress",
    "MessageDate",
    "Incoming",
    "Status",
    "ActivityDate",
    "TaskSubtype",
    "CreatedDate",
];

/// A record as read from Salesforce, turned into what is stored: the record and
/// the index entries that point at it.
pub fn derive(
    object: &SyncObject,
    raw: &Map<String, Value>,
    phone_region: &str,
    email_of_relation: Option<&CrmRecord>,
) -> Option<(CrmRecord, Vec<IndexEntry>)> {
    let position = Position::of(raw)?;
    let mut fields = raw.clone();
    fields.shift_remove("attributes");
    let mut entries: Vec<IndexEntry> = Vec::new();
    let mut add = |kind: IndexKind, value: String, data: Map<String, Value>| {
        let key = IndexKey { kind, value };
        if !entries.iter().any(|e| e.key == key) {
            entries.push(IndexEntry {
                key,
                object: object.name.to_string(),
                record_id: position.id.clone(),
                data,
            });
        }
    };
    let phones = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .filter_map(|f| text(raw, f))
            .filter_map(|p| normalize::phone_e164(p, phone_region))
            .collect()
    };
    match object.name {
        "Contact" => {
            let data = projection(raw, MATCH_FIELDS);
            for p in phones(CONTACT_PHONES) {
                add(IndexKind::Phone, p, data.clone());
            }
            if let Some(email) = text(raw, "Email").and_then(normalize::email) {
                if let (Some(domain), Some(_)) =
                    (normalize::email_domain(&email), text(raw, "AccountId"))
                {
                    add(IndexKind::Domain, domain, data.clone());
                }
                add(IndexKind::Email, email, data.clone());
            }
        }
        // A converted lead lives on as its contact: only open leads are matched.
        "Lead" if raw.get("IsConverted") != Some(&Value::Bool(true)) => {
            let data = projection(raw, MATCH_FIELDS);
            for p in phones(LEAD_PHONES) {
                add(IndexKind::Phone, p, data.clone());
            }
            if let Some(email) = text(raw, "Email").and_then(normalize::email) {
                add(IndexKind::Email, email, data.clone());
            }
        }
        "Account" => {
            let data = projection(raw, MATCH_FIELDS);
            for p in phones(&["Phone"]) {
                add(IndexKind::Phone, p, data.clone());
            }
            if let Some(domain) = text(raw, "Website").and_then(normalize::website_domain) {
                add(IndexKind::Domain, domain, data.clone());
            }
        }
        "User" => {
            if let Some(email) = text(raw, "Email").and_then(normalize::email) {
                add(
                    IndexKind::Email,
                    email,
                    projection(raw, &["Name", "IsActive", "UserType"]),
                );
            }
        }
        "OpportunityContactRole" => {
            if let Some(contact) = text(raw, "ContactId") {
                add(
                    IndexKind::ContactOpportunity,
                    contact.to_string(),
                    projection(raw, &["OpportunityId", "IsPrimary", "Role"]),
                );
            }
        }
        "EmailMessage" => {
            let data = timeline_data(raw, "MessageDate");
            for link in ["RelatedToId"] {
                if let Some(id) = text(raw, link) {
                    add(IndexKind::Timeline, id.to_string(), data.clone());
                }
            }
        }
        "EmailMessageRelation" => {
            let relation =
                text(raw, "RelationId").filter(|id| id.starts_with("003") || id.starts_with("00Q"));
            if let (Some(id), Some(email)) = (relation, email_of_relation) {
                let mut data = timeline_data(&email.fields, "MessageDate");
                data.insert("EmailMessageId".into(), Value::String(email.id.clone()));
                add(IndexKind::Timeline, id.to_string(), data);
            }
        }
        "Event" => {
            let mut data = timeline_data(raw, "StartDateTime");
            data.extend(projection(
                raw,
                &["StartDateTime", "EndDateTime", "OwnerId"],
            ));
            for link in ["WhoId", "WhatId", "AccountId"] {
                if let Some(id) = text(raw, link) {
                    add(IndexKind::Timeline, id.to_string(), data.clone());
                }
            }
        }
        "Task" => {
            let data = timeline_data(raw, "ActivityDate");
            for link in ["WhoId", "WhatId", "AccountId"] {
                if let Some(id) = text(raw, link) {
                    add(IndexKind::Timeline, id.to_string(), data.clone());
                }
            }
        }
        _ => {}
    }
    let record = CrmRecord {
        object: object.name.to_string(),
        id: position.id,
        system_modstamp: position.system_modstamp,
        fields,
        index_keys: entries.iter().map(|e| e.key.clone()).collect(),
    };
    Some((record, entries))
}

/// Timeline entry data: the email's summary and when it happened (`occurredAt`).
fn timeline_data(raw: &Map<String, Value>, date_field: &str) -> Map<String, Value> {
    let mut data = projection(raw, TIMELINE_FIELDS);
    let occurred = text(raw, date_field)
        .or_else(|| text(raw, "CreatedDate"))
        .and_then(|d| {
            parse_datetime(d).or_else(|| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .ok()
                    .and_then(|n| n.and_hms_opt(0, 0, 0))
                    .map(|n| n.and_utc())
            })
        });
    if let Some(at) = occurred {
        data.insert("occurredAt".into(), Value::String(at.to_rfc3339()));
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_go_on_the_timeline_of_their_who_what_and_account() {
        let raw: Map<String, Value> = serde_json::from_value(json!({
            "attributes": {"type": "Event"}, "Id": "00U000000000001AAA", "Subject": "Security review",
            "StartDateTime": "2026-11-28T14:00:00.000+0000", "EndDateTime": "2026-11-28T14:45:00.000+0000",
            "WhoId": "003000000000001AAA", "WhatId": "006000000000001AAA", "AccountId": "001000000000001AAA",
            "OwnerId": "005000000000001AAA", "SystemModstamp": "2026-11-28T15:00:00.000+0000"
        }))
        .unwrap();
        let (record, entries) = derive(&EVENT, &raw, "FR", None).unwrap();
        assert_eq!(record.object, "Event");
        let linked: Vec<&str> = entries.iter().map(|e| e.key.value.as_str()).collect();
        assert_eq!(
            linked,
            [
                "003000000000001AAA",
                "006000000000001AAA",
                "001000000000001AAA"
            ]
        );
        assert!(entries.iter().all(|e| e.key.kind == IndexKind::Timeline));
        let data = &entries[0].data;
        assert_eq!(data["Subject"], "Security review");
        assert_eq!(data["OwnerId"], "005000000000001AAA");
        assert_eq!(data["occurredAt"], "2026-11-28T14:00:00+00:00");
    }

    #[test]
    fn only_email_tasks_are_read() {
        let tasks = EMAIL_TASK.keyset_query().render(None).unwrap();
        assert!(
            tasks.contains("FROM Task WHERE TaskSubtype = 'Email'"),
            "{tasks}"
        );
        let contacts = CONTACT.keyset_query().render(None).unwrap();
        assert!(!contacts.contains("WHERE"), "{contacts}");
    }

    fn raw(v: Value) -> Map<String, Value> {
        let mut m = v.as_object().cloned().unwrap();
        m.insert(
            "SystemModstamp".into(),
            json!("2026-11-01T10:00:00.000+0000"),
        );
        m.insert("attributes".into(), json!({"type": "X"}));
        m
    }

    fn keys(entries: &[IndexEntry]) -> Vec<(IndexKind, String)> {
        let mut k: Vec<_> = entries
            .iter()
            .map(|e| (e.key.kind, e.key.value.clone()))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn contact_indexes_every_phone_email_and_domain() {
        let contact = raw(json!({
            "Id": "0035g0000000001AAA", "Name": "Jane Doe", "Email": "Jane@Acme.com",
            "Phone": "06 12 34 56 78", "MobilePhone": "+33 6 12 34 56 78", "HomePhone": "01.42.68.53.00",
            "OtherPhone": "n/a", "AssistantPhone": null, "AccountId": "0015g0000000001AAA", "OwnerId": "0055g0000000001AAA"
        }));
        let (record, entries) = derive(&CONTACT, &contact, "FR", None).unwrap();
        assert_eq!(
            keys(&entries),
            vec![
                (IndexKind::Phone, "+33142685300".into()),
                (IndexKind::Phone, "+33612345678".into()),
                (IndexKind::Email, "jane@acme.com".into()),
                (IndexKind::Domain, "acme.com".into()),
            ]
        );
        assert!(!record.fields.contains_key("attributes"));
        assert_eq!(record.index_keys.len(), entries.len());
        let phone = entries
            .iter()
            .find(|e| e.key.kind == IndexKind::Phone)
            .unwrap();
        assert_eq!(phone.data["AccountId"], "0015g0000000001AAA");
        assert_eq!(phone.data["Name"], "Jane Doe");
    }

    #[test]
    fn converted_leads_and_free_mail_are_not_indexed_for_matching() {
        let lead = raw(
            json!({"Id": "00Q5g0000000001AAA", "Phone": "06 12 34 56 78", "IsConverted": true}),
        );
        assert!(derive(&LEAD, &lead, "FR", None).unwrap().1.is_empty());
        let contact = raw(
            json!({"Id": "0035g0000000002AAA", "Email": "x@gmail.com", "AccountId": "0015g0000000001AAA"}),
        );
        assert_eq!(
            keys(&derive(&CONTACT, &contact, "FR", None).unwrap().1),
            vec![(IndexKind::Email, "x@gmail.com".into())]
        );
    }

    #[test]
    fn accounts_roles_and_timelines() {
        let account = raw(
            json!({"Id": "0015g0000000001AAA", "Website": "https://www.acme.com/fr", "Phone": "(415) 555-0132"}),
        );
        assert_eq!(
            keys(&derive(&ACCOUNT, &account, "US", None).unwrap().1),
            vec![
                (IndexKind::Phone, "+14155550132".into()),
                (IndexKind::Domain, "acme.com".into())
            ]
        );
        let role = raw(
            json!({"Id": "00K5g0000000001AAA", "ContactId": "0035g0000000001AAA", "OpportunityId": "0065g0000000001AAA", "IsPrimary": true}),
        );
        let (_, entries) = derive(&OPPORTUNITY_CONTACT_ROLE, &role, "FR", None).unwrap();
        assert_eq!(entries[0].key.kind, IndexKind::ContactOpportunity);
        assert_eq!(entries[0].data["OpportunityId"], "0065g0000000001AAA");
        assert_eq!(entries[0].data["IsPrimary"], true);

        let task = raw(
            json!({"Id": "00T5g0000000001AAA", "Subject": "Re: pricing", "TaskSubtype": "Email",
            "WhoId": "0035g0000000001AAA", "WhatId": "0065g0000000001AAA", "AccountId": "0015g0000000001AAA", "ActivityDate": "2026-10-30"}),
        );
        let (_, entries) = derive(&EMAIL_TASK, &task, "FR", None).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|e| e.key.kind == IndexKind::Timeline
            && e.data["occurredAt"] == "2026-10-30T00:00:00+00:00"));

        let email = raw(
            json!({"Id": "02s5g0000000001AAA", "Subject": "Proposal", "MessageDate": "2026-10-29T08:00:00.000+0000", "RelatedToId": "0065g0000000001AAA"}),
        );
        let (email_record, entries) = derive(&EMAIL_MESSAGE, &email, "FR", None).unwrap();
        assert_eq!(
            keys(&entries),
            vec![(IndexKind::Timeline, "0065g0000000001AAA".into())]
        );
        let relation = raw(
            json!({"Id": "0EM5g0000000001AAA", "EmailMessageId": "02s5g0000000001AAA", "RelationId": "0035g0000000001AAA", "RelationType": "ToAddress"}),
        );
        let (_, entries) = derive(
            &EMAIL_MESSAGE_RELATION,
            &relation,
            "FR",
            Some(&email_record),
        )
        .unwrap();
        assert_eq!(entries[0].key.value, "0035g0000000001AAA");
        assert_eq!(entries[0].data["Subject"], "Proposal");
        assert_eq!(entries[0].data["EmailMessageId"], "02s5g0000000001AAA");
        // A relation to a user is not on a CRM record's timeline.
        let to_user = raw(
            json!({"Id": "0EM5g0000000002AAA", "EmailMessageId": "02s5g0000000001AAA", "RelationId": "0055g0000000001AAA"}),
        );
        assert!(
            derive(&EMAIL_MESSAGE_RELATION, &to_user, "FR", Some(&email_record))
                .unwrap()
                .1
                .is_empty()
        );
    }

    #[test]
    fn records_without_position_are_refused() {
        let mut r = raw(json!({"Id": "0035g0000000001AAA"}));
        r.remove("SystemModstamp");
        assert!(derive(&CONTACT, &r, "FR", None).is_none());
    }
}
