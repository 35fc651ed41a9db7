//! A pending OAuth authorisation: what the callback needs to finish the flow.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Stored server-side when an admin clicks "connect", consumed exactly once by the
/// callback. The PKCE verifier never leaves the backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAuthorization {
    /// Random id carried (signed) in the `state` parameter.
    pub nonce: String,
    /// The Modjo user who started the flow.
    pub user_id: String,
    #[serde(serialize_with = "crate::secret_serde::serialize")]
    pub pkce_verifier: SecretString,
    pub expires_at: DateTime<Utc>,
}
