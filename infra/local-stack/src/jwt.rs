//! The local stand-in for API Gateway's JWT authorizer: tokens are signed with a
//! key made for this run, and checked for signature, issuer, audience and expiry
//! before a request reaches integration-api. An admin route is never open.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

pub const ISSUER: &str = "https://auth.modjo.local/";
pub const AUDIENCE: &str = "salesforce-integration";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub tenant_id: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct Authorizer {
    secret: Vec<u8>,
}

impl Default for Authorizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Authorizer {
    /// A fresh random signing key.
    pub fn new() -> Self {
        Self {
            secret: (0..32).map(|_| rand::random::<u8>()).collect(),
        }
    }

    /// A token for `user` of `tenant` with `role`, valid for `hours`.
    pub fn token(&self, tenant: &str, user: &str, role: &str, hours: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.into(),
            tenant_id: tenant.into(),
            role: role.into(),
            iat: now,
            exp: now + hours * 3600,
        };
        EncodingKey::from_secret(&self.secret)
            .and_then(|key| encode(&Header::new(Algorithm::HS256), &claims, &key))
            .unwrap_or_default()
    }

    /// The claims as API Gateway puts them in the request context (strings), or
    /// `None` when the token is missing, forged, expired, or for another issuer or audience.
    pub fn verify(&self, authorization: Option<&str>) -> Option<HashMap<String, String>> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let key = DecodingKey::from_secret(&self.secret).ok()?;
        let data = decode::<Claims>(token, &key, &validation).ok()?;
        let c = data.claims;
        Some(HashMap::from([
            ("iss".to_string(), c.iss),
            ("aud".to_string(), c.aud),
            ("sub".to_string(), c.sub),
            ("tenant_id".to_string(), c.tenant_id),
            ("role".to_string(), c.role),
            ("iat".to_string(), c.iat.to_string()),
            ("exp".to_string(), c.exp.to_string()),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_signature_issuer_audience_and_expiry() {
        let a = Authorizer::new();
        let token = a.token("acme", "usr_1", "admin", 1);
        let claims = a.verify(Some(&format!("Bearer {token}"))).expect("valid");
        assert_eq!(claims["tenant_id"], "acme");
        assert_eq!(claims["role"], "admin");
        // Another key, an expired token, garbage, nothing.
        assert!(
            Authorizer::new()
                .verify(Some(&format!("Bearer {token}")))
                .is_none()
        );
        assert!(
            a.verify(Some(&format!(
                "Bearer {}",
                a.token("acme", "usr_1", "admin", -2)
            )))
            .is_none()
        );
        assert!(a.verify(Some("Bearer not.a.jwt")).is_none());
        assert!(
            a.verify(Some(&token)).is_none(),
            "the Bearer scheme is required"
        );
        assert!(a.verify(None).is_none());
        // A token whose payload was edited keeps its old signature: refused.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert!(
            a.verify(Some(&format!("Bearer {}", parts.join("."))))
                .is_none()
        );
    }
}
