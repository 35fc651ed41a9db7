//! The error taxonomy of DESIGN §7.
//!
//! Every layer has its own error type (store, secrets, queue, Salesforce, …);
//! each says which [`ErrorClass`] it belongs to ([`Classify`]); the use
//! cases' own error, which holds either, is `work::WorkError`. Handlers map the class once, at
//! the boundary: a retryable error becomes an SQS item failure, a permanent one
//! is recorded and acknowledged, a needs-reauth one parks the work.
//!
//! The storage ports' error, [`StoreError`], lives here (the ports re-export
//! it): Salesforce's error wraps it (a token the store could not read), and the
//! port speaks Salesforce's error, so neither module imports the other.

use serde::Serialize;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: timeouts, 5xx, throttling, `UNABLE_TO_LOCK_ROW`, `REQUEST_LIMIT_EXCEEDED`.
    /// Try again later, with back-off.
    Retryable,
    /// The tenant's Salesforce authorisation is gone (`invalid_grant`): the admin must
    /// reconnect. Work waits in DynamoDB and is replayed after reconnect.
    NeedsReauth,
    /// Retrying cannot help: invalid message, unknown tenant, validation rule.
    /// Record it clearly and acknowledge it; never retry forever.
    Permanent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        self == ErrorClass::Retryable
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::NeedsReauth => "needs_reauth",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type of the project.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

/// The error of every storage adapter (DynamoDB, Secrets Manager, SQS).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: someone else changed the item first.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Throttling, timeouts, 5xx, connection failures.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The request is wrong and will stay wrong (validation, missing table, item too large).
    #[error("storage rejected the request: {0}")]
    Rejected(String),
    /// A stored item or secret could not be decoded.
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Conflict(_) | StoreError::Unavailable(_) => ErrorClass::Retryable,
            StoreError::Rejected(_) | StoreError::Corrupt(_) => ErrorClass::Permanent,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_are_classified() {
        assert_eq!(
            StoreError::Conflict("x".into()).class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            StoreError::Unavailable("x".into()).class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            StoreError::Rejected("x".into()).class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            StoreError::Corrupt("x".into()).class(),
            ErrorClass::Permanent
        );
    }
}
