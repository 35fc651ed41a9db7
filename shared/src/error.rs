//! The error taxonomy of DESIGN §7.
//!
//! Every layer has its own error type (store, secrets, queue, Salesforce, …);
//! each says which [`ErrorClass`] it belongs to ([`Classify`]); the use
//! cases' own error, which holds either, is `app::WorkError`. Handlers map the class once, at
//! the boundary: a retryable error becomes an SQS item failure, a permanent one
//! is recorded and acknowledged, a needs-reauth one parks the work.

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
