//! call-logger's Lambda entry point: an SQS batch in, a partial batch response
//! out. Retryable failures are reported as item failures with an exponential
//! back-off on their visibility; everything else is acknowledged (logged,
//! recorded as failed, parked, or dead-lettered).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;

use super::{CallLogger, CallLoggerStore, Settled};
use crate::app::App;
use crate::batch::Batch;
use crate::domain::CallState;
use crate::ports::{JobQueue, SalesforceSessions, SecretStore, StoreRequests};

/// `source_queue` is the queue the batch came from (for the back-off).
pub async fn handle<
    S: CallLoggerStore + StoreRequests,
    K: SecretStore,
    C: SalesforceSessions,
    Q: JobQueue,
>(
    app: &App<S, K>,
    logger: &CallLogger<'_, S, C, Q>,
    source_queue: &Q,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let batch = Batch::start(app, event);
    let verdicts = logger.log_batch(&batch.deliveries, batch.deadline).await;
    let mut metrics = app.metrics("call-logger");
    let batch = batch
        .finish(app, &verdicts, source_queue, &mut metrics)
        .await;
    metrics
        .count("CallsReceived", batch.received)
        .count("CallsRetried", batch.retried);
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
        calls = batch.received,
        retried = batch.retried,
        api_calls = batch.api_calls,
        "call batch done"
    );
    batch.response
}
