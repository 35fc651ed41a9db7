//! The OAuth `state` parameter: an HMAC-signed, expiring token naming the tenant,
//! the user and a nonce. The signature proves we issued it; the nonce, stored
//! server-side with the PKCE verifier and consumed atomically, makes it single-use.
//!
//! The signing key can be rotated (a new version of its secret) without breaking
//! the connects in flight: states are signed with the current key, and a state
//! signed with the previous one stays valid while states signed just before the
//! rotation can still be alive ([`previous_key_accepted_until`]).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use std::sync::Arc;

use tokio::time::Instant;

use crate::domain::{SigningKeys, TenantId};
use crate::ports::{SecretStore, StoreError};

const VERSION: &str = "v1";

/// How long a function keeps the signing keys it read before reading them
/// again: after a rotation, a function may sign with the replaced key this long.
pub const KEY_REFRESH: Duration = Duration::from_secs(300);

/// What a state token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    #[serde(rename = "t")]
    pub tenant: TenantId,
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "n")]
    pub nonce: String,
    /// Expiry, epoch seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state parameter is malformed")]
    Malformed,
    #[error("the state parameter's signature is invalid")]
    BadSignature,
    #[error("the state parameter has expired")]
    Expired,
}

fn mac(key: &SecretString, payload: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(VERSION.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac
}

/// `v1.<base64url(json claims)>.<base64url(hmac-sha256)>`, signed with the current key.
pub fn sign(keys: &SigningKeys, claims: &StateClaims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(mac(&keys.current, &payload).finalize().into_bytes());
    format!("{VERSION}.{payload}.{signature}")
}

/// Until when a state signed with the key replaced at `rotated_at` is accepted:
/// functions may sign with it for [`KEY_REFRESH`] after the rotation, and what
/// they signed lives `state_ttl`. Not forever: a key rotated because it leaked
/// must stop opening connects.
pub fn previous_key_accepted_until(
    rotated_at: DateTime<Utc>,
    state_ttl: Duration,
) -> DateTime<Utc> {
    let grace = chrono::Duration::from_std(KEY_REFRESH + state_ttl)
        .unwrap_or_else(|_| chrono::Duration::hours(1));
    rotated_at + grace
}

/// Checks the signature (in constant time) against the current key, then the
/// previous one while it is accepted (`state_ttl`: the lifetime of a state),
/// and the expiry.
pub fn verify(
    keys: &SigningKeys,
    token: &str,
    now: DateTime<Utc>,
    state_ttl: Duration,
) -> Result<StateClaims, StateError> {
    if token.len() > 2048 {
        return Err(StateError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(VERSION), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(StateError::Malformed);
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| StateError::Malformed)?;
    let signed_by = |key: &SecretString| mac(key, payload).verify_slice(&signature).is_ok();
    let previous_ok = keys.previous.as_ref().is_some_and(|(key, rotated_at)| {
        now < previous_key_accepted_until(*rotated_at, state_ttl) && signed_by(key)
    });
    if !signed_by(&keys.current) && !previous_ok {
        return Err(StateError::BadSignature);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| StateError::Malformed)?;
    let claims: StateClaims = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
    if claims.expires_at <= now.timestamp() {
        return Err(StateError::Expired);
    }
    Ok(claims)
}

/// A state that no key this container holds verifies may have been signed with
/// a key rotated in since: the keys are read again, at most this often.
const KEY_RELOAD_AFTER_MISS: Duration = Duration::from_secs(1);

/// The state-signing keys a container holds, read from Secrets Manager.
pub struct SigningKeyCache {
    /// The secret holding the keys; `None` in functions without the OAuth flow.
    secret_id: Option<String>,
    /// The keys and when they were read. Held across a read: concurrent
    /// requests wait for one read.
    cached: tokio::sync::Mutex<Option<(Instant, Arc<SigningKeys>)>>,
}

impl SigningKeyCache {
    pub fn new(secret_id: Option<String>) -> Self {
        Self {
            secret_id,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The keys, read again every [`KEY_REFRESH`] so that a rotation reaches
    /// every container.
    pub async fn current<K: SecretStore>(
        &self,
        secrets: &K,
    ) -> Result<Arc<SigningKeys>, StoreError> {
        self.read(secrets, KEY_REFRESH).await
    }

    /// The keys read again, unless they were read in the last
    /// [`KEY_RELOAD_AFTER_MISS`]: for a state none of the held keys verifies,
    /// which a container started after a rotation may have signed.
    pub async fn reload<K: SecretStore>(
        &self,
        secrets: &K,
    ) -> Result<Arc<SigningKeys>, StoreError> {
        self.read(secrets, KEY_RELOAD_AFTER_MISS).await
    }

    async fn read<K: SecretStore>(
        &self,
        secrets: &K,
        max_age: Duration,
    ) -> Result<Arc<SigningKeys>, StoreError> {
        let id = self.secret_id.as_deref().ok_or_else(|| {
            StoreError::Rejected("this function has no OAuth configuration".into())
        })?;
        // Held across the read: concurrent requests wait for one read.
        let mut cached = self.cached.lock().await;
        if let Some((read_at, keys)) = cached.as_ref() {
            if read_at.elapsed() < max_age {
                return Ok(keys.clone());
            }
        }
        match (secrets.signing_keys(id).await, cached.take()) {
            (Ok(keys), _) => {
                let keys = Arc::new(keys);
                *cached = Some((Instant::now(), keys.clone()));
                Ok(keys)
            }
            // Secrets Manager failing is no reason to stop using the keys held:
            // keep them, and try again `max_age` later.
            (Err(e), Some((_, held))) => {
                tracing::warn!(error = %e, "state-signing keys not read again; keeping those held");
                *cached = Some((Instant::now(), held.clone()));
                Ok(held)
            }
            (Err(e), None) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const TTL: Duration = Duration::from_secs(600);

    fn key() -> SecretString {
        SecretString::from("k".repeat(48))
    }

    fn keys() -> SigningKeys {
        SigningKeys::new(key())
    }

    fn claims() -> StateClaims {
        StateClaims {
            tenant: TenantId::parse("acme").unwrap(),
            user_id: "usr_1".into(),
            nonce: "n0nce".into(),
            expires_at: 1_800_000_600,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[test]
    fn round_trip() {
        let token = sign(&keys(), &claims());
        assert!(token.starts_with("v1."));
        assert_eq!(
            verify(&keys(), &token, at(1_800_000_000), TTL),
            Ok(claims())
        );
    }

    /// The keys after a rotation at `rotated_at`: a new current key, `key()` previous.
    fn rotated(rotated_at: i64) -> SigningKeys {
        SigningKeys {
            current: SecretString::from("n".repeat(48)),
            previous: Some((key(), at(rotated_at))),
        }
    }

    #[test]
    fn a_state_signed_before_a_rotation_stays_valid_for_its_lifetime() {
        let token = sign(&keys(), &claims());
        // Signed at the last moment an old container could: KEY_REFRESH after
        // the rotation, and checked just before it expires.
        let rotation = 1_800_000_600 - 600 - 300;
        assert_eq!(
            verify(&rotated(rotation), &token, at(1_800_000_599), TTL),
            Ok(claims())
        );
    }

    #[test]
    fn the_previous_key_stops_working_once_its_states_are_dead() {
        // A state forged with a leaked, rotated key, whatever expiry it claims.
        let forged = sign(
            &keys(),
            &StateClaims {
                expires_at: 1_900_000_000,
                ..claims()
            },
        );
        let rotation = 1_800_000_000;
        let after = rotation + 600 + 300;
        assert_eq!(
            verify(&rotated(rotation), &forged, at(after), TTL),
            Err(StateError::BadSignature)
        );
        assert!(verify(&rotated(rotation), &forged, at(after - 1), TTL).is_ok());
    }

    #[test]
    fn states_are_signed_with_the_current_key() {
        let keys = rotated(1_800_000_000);
        let token = sign(&keys, &claims());
        let only_current = SigningKeys::new(keys.current.clone());
        assert_eq!(
            verify(&only_current, &token, at(1_800_000_000), TTL),
            Ok(claims())
        );
    }

    #[test]
    fn refuses_forgeries_and_expired_tokens() {
        let token = sign(&keys(), &claims());
        assert_eq!(
            verify(&keys(), &token, at(1_800_000_600), TTL),
            Err(StateError::Expired)
        );
        assert_eq!(
            verify(
                &SigningKeys::new(SecretString::from("other-key")),
                &token,
                at(0),
                TTL
            ),
            Err(StateError::BadSignature)
        );
        // Another tenant's claims with the original signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = StateClaims {
            tenant: TenantId::parse("evil").unwrap(),
            ..claims()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap());
        let forged = format!("v1.{forged_payload}.{}", parts[2]);
        assert_eq!(
            verify(&keys(), &forged, at(0), TTL),
            Err(StateError::BadSignature)
        );
        for bad in [
            "",
            "v1",
            "v1.a.b.c",
            "v2.a.b",
            "v1.!!.??",
            &"v1.".repeat(1000),
        ] {
            assert!(verify(&keys(), bad, at(0), TTL).is_err(), "{bad}");
        }
        // A signed but malformed payload.
        let payload = URL_SAFE_NO_PAD.encode(b"{\"t\":\"a#b\"}");
        let sig = URL_SAFE_NO_PAD.encode(mac(&key(), &payload).finalize().into_bytes());
        assert_eq!(
            verify(&keys(), &format!("v1.{payload}.{sig}"), at(0), TTL),
            Err(StateError::Malformed)
        );
    }
}
