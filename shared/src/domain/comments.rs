//! Comments written on a call in Modjo, as stored for rendering.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The latest known version of a comment. A delete is kept as a tombstone
/// (`deleted: true`) so that an older upsert arriving late cannot resurrect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredComment {
    pub call_id: String,
    pub comment_id: String,
    #[serde(default)]
    pub author_name: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub at_second: u32,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted: bool,
}
