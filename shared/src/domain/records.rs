//! CRM records imported from Salesforce, and the index entries that let a call be
//! matched without asking Salesforce.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The phone fields of a Contact: the sync indexes them, the call logger
/// checks which of them a searched number came from.
pub const CONTACT_PHONES: &[&str] = &[
    "Phone",
    "MobilePhone",
    "HomePhone",
    "OtherPhone",
    "AssistantPhone",
];

/// The phone fields of a Lead.
pub const LEAD_PHONES: &[&str] = &["Phone", "MobilePhone"];

/// An imported Salesforce record: its type, id, the fields we read, and its
/// `SystemModstamp`. The index keys derived from it are stored with it, so that a
/// later change can remove exactly the entries that no longer apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrmRecord {
    pub object: String,
    pub id: String,
    pub system_modstamp: DateTime<Utc>,
    pub fields: Map<String, Value>,
    #[serde(default)]
    pub index_keys: Vec<IndexKey>,
}

/// What an index maps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IndexKind {
    /// E.164 phone number → Contact / Lead / Account.
    Phone,
    /// Lower-case email → Contact / Lead / User.
    Email,
    /// Email or website domain → Account.
    Domain,
    /// Contact id → Opportunity (through OpportunityContactRole).
    ContactOpportunity,
    /// Contact / Lead / Account / Opportunity id → an email activity on its timeline
    /// (EmailMessage, EmailMessageRelation, Task of subtype Email).
    Timeline,
}

impl IndexKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IndexKind::Phone => "PHONE",
            IndexKind::Email => "EMAIL",
            IndexKind::Domain => "DOMAIN",
            IndexKind::ContactOpportunity => "CONTACTOPP",
            IndexKind::Timeline => "TIMELINE",
        }
    }
}

/// One index key, e.g. `(Phone, "+33612345678")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexKey {
    pub kind: IndexKind,
    pub value: String,
}

/// An index entry: the key points at this record. `data` carries the few fields
/// matching needs (e.g. `IsPrimary` of a contact role) so a lookup needs no second read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub key: IndexKey,
    pub object: String,
    pub record_id: String,
    #[serde(default)]
    pub data: Map<String, Value>,
}
