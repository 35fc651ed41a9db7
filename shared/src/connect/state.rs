//! The OAuth `state` parameter: an HMAC-signed, expiring token naming the tenant,
//! the user and a nonce. The signature proves we issued it; the nonce, stored
//! server-side with the PKCE verifier and consumed atomically, makes it single-use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::TenantId;

const VERSION: &str = "v1";

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

/// `v1.<base64url(json claims)>.<base64url(hmac-sha256)>`
pub fn sign(key: &SecretString, claims: &StateClaims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(mac(key, &payload).finalize().into_bytes());
    format!("{VERSION}.{payload}.{signature}")
}

/// Checks the signature (in constant time) and the expiry.
pub fn verify(
    key: &SecretString,
    token: &str,
    now: DateTime<Utc>,
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
    mac(key, payload)
        .verify_slice(&signature)
        .map_err(|_| StateError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| StateError::Malformed)?;
    let claims: StateClaims = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
    if claims.expires_at <= now.timestamp() {
        return Err(StateError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key() -> SecretString {
        SecretString::from("k".repeat(48))
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
        let token = sign(&key(), &claims());
        assert!(token.starts_with("v1."));
        assert_eq!(verify(&key(), &token, at(1_800_000_000)), Ok(claims()));
    }

    #[test]
    fn refuses_forgeries_and_expired_tokens() {
        let token = sign(&key(), &claims());
        assert_eq!(
            verify(&key(), &token, at(1_800_000_600)),
            Err(StateError::Expired)
        );
        assert_eq!(
            verify(&SecretString::from("other-key"), &token, at(0)),
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
            verify(&key(), &forged, at(0)),
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
            assert!(verify(&key(), bad, at(0)).is_err(), "{bad}");
        }
        // A signed but malformed payload.
        let payload = URL_SAFE_NO_PAD.encode(b"{\"t\":\"a#b\"}");
        let sig = URL_SAFE_NO_PAD.encode(mac(&key(), &payload).finalize().into_bytes());
        assert_eq!(
            verify(&key(), &format!("v1.{payload}.{sig}"), at(0)),
            Err(StateError::Malformed)
        );
    }
}
