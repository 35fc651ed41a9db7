//! Tenant identity. The tenant id is part of every storage key, so it is
//! validated once, here, and carried as a type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Modjo workspace id: 1–64 characters of `[A-Za-z0-9_-]`.
///
/// The restricted alphabet keeps it safe inside composite keys (`T#<tenant>`),
/// Secrets Manager names and log lines.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {0:?}: expected 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct InvalidTenantId(pub String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidTenantId> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_string()))
        } else {
            Err(InvalidTenantId(raw.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

/// An opaque identifier from a message or Salesforce (call id, comment id, user id,
/// record id): 1–128 printable characters, no control characters.
pub fn validate_external_id(raw: &str) -> bool {
    !raw.is_empty() && raw.chars().count() <= 128 && !raw.chars().any(char::is_control)
}

/// Who is asking: from verified JWT claims, never from the path or the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant: TenantId,
    pub user_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for ok in ["acme", "ACME_2", "a-b", &"x".repeat(64)] {
            assert_eq!(TenantId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_ids_that_could_break_keys() {
        for bad in ["", "a#b", "a/b", "a b", "é", "a\n", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn deserialises_with_validation() {
        let t: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(t.as_str(), "acme");
        assert!(serde_json::from_str::<TenantId>("\"a#b\"").is_err());
    }

    #[test]
    fn external_ids() {
        assert!(validate_external_id("call_8f2c"));
        assert!(!validate_external_id(""));
        assert!(!validate_external_id("a\u{0}b"));
        assert!(!validate_external_id(&"x".repeat(129)));
    }
}
