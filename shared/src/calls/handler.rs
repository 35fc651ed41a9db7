//! call-logger's Lambda entry point: an SQS batch in, a partial batch response
//! out. Retryable failures are reported as item failures with an exponential
//! back-off on their visibility; everything else is acknowledged (logged,
//! recorded as failed, parked, or dead-lettered).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;

use super::{CallLogger, Settled};
use crate::app::Store;
use crate::batch::{deliveries, requests_deadline, respond};
use crate::domain::CallState;
use crate::ports::{JobQueue, SecretStore};

/// `source_queue` is the queue the batch came from (for the back-off).
pub async fn handle<S: Store, K: SecretStore, Q: JobQueue>(
    logger: &CallLogger<'_, S, K, Q>,
    source_queue: &Q,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let deadline = requests_deadline(event.context.deadline);
    let deliveries = deliveries(event.payload);
    let calls_before = logger.app.salesforce.counters().total();
    let store_before = logger.app.store.requests_by_operation();
    let verdicts = logger.log_batch(&deliveries, deadline).await;
    let response = respond(&deliveries, &verdicts, source_queue).await;
    let api_calls = logger.app.salesforce.counters().total() - calls_before;
    let mut metrics = logger.app.metrics("call-logger");
    metrics
        .count("CallsReceived", deliveries.len() as u64)
        .count("CallsRetried", response.batch_item_failures.len() as u64)
        .count("SalesforceApiCalls", api_calls);
    metrics.store_requests(&store_before, &logger.app.store.requests_by_operation());
    // Where the batch's calls were left (the dashboard's calls by outcome).
    for (settled, n) in logger.take_settled() {
        metrics.count(
            match settled {
                Settled::State(CallState::Created) => "CallsCreated",
                Settled::State(CallState::Enriched) => "CallsEnriched",
                Settled::State(CallState::Unmatched) => "CallsUnmatched",
                Settled::State(CallState::Waiting) => "CallsWaiting",
                Settled::State(CallState::Failed) => "CallsFailed",
                Settled::State(CallState::InProgress) => continue,
                Settled::DeadLettered => "CallsDeadLettered",
            },
            n,
        );
    }
    metrics.emit();
    tracing::info!(
        calls = deliveries.len(),
        retried = response.batch_item_failures.len(),
        api_calls,
        "call batch done"
    );
    response
}
