//! A pending OAuth authorisation: what the callback needs to finish the flow,
//! and the keys that sign the flow's `state`.

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

/// The keys that sign OAuth `state` tokens: the secret's current version and,
/// once it was rotated, the version it replaced with the time of the rotation.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    /// Signs new states.
    pub current: SecretString,
    /// The replaced key and when it was replaced: states it signed are still
    /// accepted for a while (`connect::state::previous_key_accepted_until`).
    pub previous: Option<(SecretString, DateTime<Utc>)>,
}

impl SigningKeys {
    /// A key that was never rotated.
    pub fn new(current: SecretString) -> Self {
        Self {
            current,
            previous: None,
        }
    }
}
