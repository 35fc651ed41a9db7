//! Adapters: one per external system, each implementing the ports of [`crate::ports`].

pub mod dynamo;
pub mod secrets;
pub mod sqs;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::StoreError;

/// Error codes AWS services use for throttling and transient faults.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "InternalServerError",
    "InternalFailure",
    "InternalServiceError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "RequestThrottled",
];

/// Maps an SDK error to the adapter error: condition failures are conflicts,
/// throttling and transport failures are transient, the rest is a rejection.
pub(crate) fn map_sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = err.code().map(str::to_string);
    let message = format!("{operation}: {}", DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(_) => match code.as_deref() {
            Some("ConditionalCheckFailedException") => StoreError::Conflict(message),
            Some(c) if TRANSIENT_CODES.contains(&c) => StoreError::Unavailable(message),
            _ => StoreError::Rejected(message),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(message)
        }
        _ => StoreError::Rejected(message),
    }
}

/// Exponential back-off with full jitter: attempt 0 → up to 50 ms, capped at 2 s.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let cap_ms = (50u64 << attempt.min(6)).min(2_000);
    std::time::Duration::from_millis(rand::thread_rng().gen_range(0..=cap_ms))
}
