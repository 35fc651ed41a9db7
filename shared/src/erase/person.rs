//! Who is being erased: the identifier an admin gives, and everything Modjo's
//! store knows that names the person (record ids, emails, numbers, names), to
//! find and redact it. Pure: no I/O.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::domain::{CrmRecord, IndexKind, normalize};

/// What replaces an erased value.
pub const ERASED: &str = "[erased]";

/// The body of `POST erasures`: exactly one identifier, and the `cursor` of the
/// previous answer when the erasure goes on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraseInput {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub record_id: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The identifier of an erasure, normalised as the index stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identifier {
    /// Lower-cased.
    Email(String),
    /// E.164.
    Phone(String),
    /// A Contact (003) or Lead (00Q) id.
    RecordId(String),
}

/// Why an erasure request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("give exactly one of email, phone or recordId")]
    NotExactlyOne,
    #[error("{0} is not a valid email address")]
    Email(&'static str),
    #[error("not a valid phone number (in the workspace's region or with a country code)")]
    Phone,
    #[error("a Contact (003…) or Lead (00Q…) id of 15 or 18 characters is expected")]
    RecordId,
}

impl IdentifierError {
    pub fn field(&self) -> &'static str {
        match self {
            IdentifierError::NotExactlyOne => "email",
            IdentifierError::Email(_) => "email",
            IdentifierError::Phone => "phone",
            IdentifierError::RecordId => "recordId",
        }
    }
}

impl Identifier {
    /// The identifier of `input`, normalised with the tenant's phone region.
    pub fn parse(input: &EraseInput, phone_region: &str) -> Result<Self, IdentifierError> {
        let given = [&input.email, &input.phone, &input.record_id]
            .iter()
            .filter(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
            .count();
        if given != 1 {
            return Err(IdentifierError::NotExactlyOne);
        }
        if let Some(email) = input.email.as_deref().filter(|v| !v.trim().is_empty()) {
            return normalize::email(email)
                .map(Identifier::Email)
                .ok_or(IdentifierError::Email("the value"));
        }
        if let Some(phone) = input.phone.as_deref().filter(|v| !v.trim().is_empty()) {
            return normalize::phone_e164(phone, phone_region)
                .map(Identifier::Phone)
                .ok_or(IdentifierError::Phone);
        }
        let id = input.record_id.as_deref().unwrap_or_default().trim();
        let person = id.starts_with("003") || id.starts_with("00Q");
        if person
            && (id.len() == 15 || id.len() == 18)
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            Ok(Identifier::RecordId(id.to_string()))
        } else {
            Err(IdentifierError::RecordId)
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Email(_) => "email",
            Identifier::Phone(_) => "phone",
            Identifier::RecordId(_) => "recordId",
        }
    }

    fn value(&self) -> &str {
        match self {
            Identifier::Email(v) | Identifier::Phone(v) | Identifier::RecordId(v) => v,
        }
    }

    /// HMAC-SHA256 of the identifier under a key of the tenant (hex): the audit
    /// trail can tell that the same identifier was erased twice, and a holder of
    /// the key can check a given identifier, but the trail itself names no one.
    pub fn keyed_hash(&self, tenant_key: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(tenant_key)
            .unwrap_or_else(|_| unreachable_hmac());
        mac.update(self.kind().as_bytes());
        mac.update(b":");
        mac.update(self.value().as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// HMAC accepts keys of any length; this never runs.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

/// A tenant's erasure key, derived from the stack's state-signing secret:
/// HMAC(secret, "erasure-audit:" + tenant). One key per tenant, so hashes of the
/// same address in two workspaces differ.
pub fn tenant_key(stack_secret: &[u8], tenant: &str) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(stack_secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(b"erasure-audit:");
    mac.update(tenant.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything that names the person in Modjo's store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Their Contact and Lead ids.
    pub ids: BTreeSet<String>,
    /// Lower-cased emails.
    pub emails: BTreeSet<String>,
    /// E.164 numbers.
    pub phones: BTreeSet<String>,
    /// Numbers as typed in Salesforce (`06 12 34 56 78`), found as text.
    pub phone_texts: BTreeSet<String>,
    /// First, last and full names (3 characters or more: shorter ones would
    /// redact unrelated words).
    pub names: BTreeSet<String>,
}

/// Fields of a Contact or Lead that name the person.
const NAME_FIELDS: &[&str] = &["FirstName", "LastName", "Name"];
const PHONE_FIELDS: &[&str] = &[
    "Phone",
    "MobilePhone",
    "HomePhone",
    "OtherPhone",
    "AssistantPhone",
    "Fax",
];

impl Person {
    /// The person an identifier names, with what their stored records say.
    pub fn from_records(identifier: &Identifier, records: &[CrmRecord]) -> Self {
        let mut p = Person::default();
        match identifier {
            Identifier::Email(e) => {
                p.emails.insert(e.clone());
            }
            Identifier::Phone(n) => {
                p.phones.insert(n.clone());
            }
            Identifier::RecordId(id) => {
                p.ids.insert(id.clone());
            }
        }
        for r in records {
            p.ids.insert(r.id.clone());
            for key in &r.index_keys {
                match key.kind {
                    IndexKind::Email => p.emails.insert(key.value.clone()),
                    IndexKind::Phone => p.phones.insert(key.value.clone()),
                    _ => false,
                };
            }
            let text = |f: &str| r.fields.get(f).and_then(Value::as_str).map(str::trim);
            for f in NAME_FIELDS {
                if let Some(name) = text(f).filter(|n| n.chars().count() >= 3) {
                    p.names.insert(name.to_string());
                }
            }
            if let (Some(first), Some(last)) = (text("FirstName"), text("LastName")) {
                p.names.insert(format!("{first} {last}"));
            }
            for f in PHONE_FIELDS {
                if let Some(n) = text(f).filter(|n| !n.is_empty()) {
                    p.phone_texts.insert(n.to_string());
                }
            }
            if let Some(email) = text("Email").and_then(normalize::email) {
                p.emails.insert(email);
            }
        }
        p
    }

    /// Whether a whole value is one of the person's emails or numbers.
    pub fn is_identifier(&self, value: &str, phone_region: &str) -> bool {
        let v = value.trim();
        if v.is_empty() {
            return false;
        }
        if normalize::email(v).is_some_and(|e| self.emails.contains(&e)) {
            return true;
        }
        if self.phone_texts.contains(v) || self.phones.contains(v) {
            return true;
        }
        normalize::phone_e164(v, phone_region).is_some_and(|n| self.phones.contains(&n))
    }

    /// `text` with every email, number and name of the person replaced by
    /// [`ERASED`] (ASCII case ignored).
    pub fn redact_text(&self, text: &str) -> String {
        let mut needles: Vec<&str> = self
            .emails
            .iter()
            .chain(&self.phones)
            .chain(&self.phone_texts)
            .chain(&self.names)
            .map(String::as_str)
            .collect();
        // Longest first: "Jane Doe" goes before "Jane".
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = text.to_string();
        for needle in needles {
            out = replace_ignore_ascii_case(&out, needle, ERASED);
        }
        out
    }
}

fn replace_ignore_ascii_case(haystack: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return haystack.to_string();
    }
    let lower = haystack.to_ascii_lowercase();
    let target = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(haystack.len());
    let mut rest = 0;
    while let Some(found) = lower[rest..].find(&target) {
        let at = rest + found;
        out.push_str(&haystack[rest..at]);
        out.push_str(with);
        rest = at + target.len();
    }
    out.push_str(&haystack[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IndexKey;
    use chrono::Utc;

    fn input(email: Option<&str>, phone: Option<&str>, id: Option<&str>) -> EraseInput {
        EraseInput {
            email: email.map(str::to_string),
            phone: phone.map(str::to_string),
            record_id: id.map(str::to_string),
            cursor: None,
        }
    }

    #[test]
    fn identifiers_are_normalised_as_the_index_stores_them() {
        assert_eq!(
            Identifier::parse(&input(Some(" Jane@ACME.com "), None, None), "FR"),
            Ok(Identifier::Email("jane@acme.com".into()))
        );
        assert_eq!(
            Identifier::parse(&input(None, Some("06 12 34 56 78"), None), "FR"),
            Ok(Identifier::Phone("+33612345678".into()))
        );
        assert_eq!(
            Identifier::parse(&input(None, None, Some("003000000000001AAA")), "FR"),
            Ok(Identifier::RecordId("003000000000001AAA".into()))
        );
    }

    #[test]
    fn bad_identifiers_are_refused() {
        let refused = |i: EraseInput| Identifier::parse(&i, "FR").unwrap_err();
        assert_eq!(
            refused(input(None, None, None)),
            IdentifierError::NotExactlyOne
        );
        assert_eq!(
            refused(input(Some("a@b.co"), Some("0612345678"), None)),
            IdentifierError::NotExactlyOne
        );
        assert_eq!(refused(input(Some("nobody"), None, None)).field(), "email");
        assert_eq!(
            refused(input(None, Some("12"), None)),
            IdentifierError::Phone
        );
        // An account is not a person; an id with a quote never reaches a query.
        for id in ["001000000000001AAA", "003000000000001'A", "003"] {
            assert_eq!(
                refused(input(None, None, Some(id))),
                IdentifierError::RecordId
            );
        }
    }

    #[test]
    fn the_keyed_hash_hides_the_identifier_and_depends_on_the_tenant() {
        let id = Identifier::Email("jane@acme.com".into());
        let a = id.keyed_hash(&tenant_key(b"stack-secret-of-32-bytes-or-more!", "acme"));
        let b = id.keyed_hash(&tenant_key(b"stack-secret-of-32-bytes-or-more!", "globex"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("jane"));
        assert_ne!(a, b, "per tenant");
        assert_eq!(
            a,
            id.keyed_hash(&tenant_key(b"stack-secret-of-32-bytes-or-more!", "acme")),
            "stable"
        );
    }

    #[test]
    fn a_person_is_redacted_from_free_text() {
        let record = CrmRecord {
            object: "Contact".into(),
            id: "003A".into(),
            system_modstamp: Utc::now(),
            fields: serde_json::from_value(serde_json::json!({
                "FirstName": "Jane", "LastName": "Doe", "Phone": "06 12 34 56 78",
                "Email": "Jane@Acme.com"
            }))
            .unwrap(),
            index_keys: vec![IndexKey {
                kind: IndexKind::Phone,
                value: "+33612345678".into(),
            }],
        };
        let p = Person::from_records(&Identifier::Email("jane@acme.com".into()), &[record]);
        assert!(p.ids.contains("003A"));
        assert_eq!(
            p.redact_text(
                "Call with JANE DOE (jane@acme.com, +33612345678, 06 12 34 56 78) about Acme"
            ),
            "Call with [erased] ([erased], [erased], [erased]) about Acme"
        );
        assert!(p.is_identifier("+33 6 12 34 56 78", "FR"));
        assert!(!p.is_identifier("+33 6 00 00 00 00", "FR"));
    }
}
