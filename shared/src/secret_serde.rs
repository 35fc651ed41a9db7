//! Serialising secrets on purpose. `secrecy` refuses to serialise a secret by
//! default; the few places that must persist one (Secrets Manager, the pending
//! OAuth authorisation) opt in through these helpers, so every exposure is greppable.

use secrecy::{ExposeSecret, SecretString};
use serde::Serializer;

pub fn serialize<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

pub fn serialize_opt<S: Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_some(v.expose_secret()),
        None => s.serialize_none(),
    }
}
