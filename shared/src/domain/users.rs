//! Modjo user ⇄ Salesforce user mapping.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a mapping was made. A manual mapping always wins over an automatic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingSource {
    /// Matched by case-insensitive email.
    Auto,
    /// Set by an admin.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMapping {
    pub modjo_user_id: String,
    pub sf_user_id: String,
    pub source: MappingSource,
    pub updated_at: DateTime<Utc>,
}

/// A member of the Modjo workspace, as the platform lists them for matching
/// (the directory the settings page shows next to the Salesforce users).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModjoUser {
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
