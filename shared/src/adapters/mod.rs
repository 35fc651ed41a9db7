//! Adapters: one per external system, each implementing the ports of [`crate::ports`].

pub mod dynamo;
pub mod salesforce;
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
