//! call-logger's Lambda entry point: an SQS batch in, a partial batch response
//! out. Retryable failures are reported as item failures with an exponential
//! back-off on their visibility; everything else is acknowledged (logged,
//! recorded as failed, parked, or dead-lettered).

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;

use super::{CallLogger, Delivery, Verdict};
use crate::app::Store;
use crate::ports::{JobQueue, SecretStore};
use crate::sync::handler::deadline_instant;
use crate::telemetry::Metrics;

/// Seconds before the Lambda deadline at which Salesforce requests must have ended.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Back-off before SQS redelivers a failed call: 30 s, 1 min, 2 min, … up to 15 min.
pub fn backoff(receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(5);
    Duration::from_secs((30u64 << exponent).min(900))
}

/// `source_queue` is the queue the batch came from (for the back-off).
pub async fn handle<S: Store, K: SecretStore, Q: JobQueue>(
    logger: &CallLogger<'_, S, K, Q>,
    source_queue: &Q,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let deadline = deadline_instant(event.context.deadline)
        .checked_sub(DEADLINE_MARGIN)
        .unwrap_or_else(tokio::time::Instant::now);
    let deliveries: Vec<Delivery> = event
        .payload
        .records
        .into_iter()
        .map(|r| Delivery {
            receive_count: r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            message_id: r.message_id.unwrap_or_default(),
            receipt_handle: r.receipt_handle.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
        })
        .collect();
    let calls_before = logger.app.salesforce.counters().total();
    let verdicts = logger.log_batch(&deliveries, deadline).await;
    let mut response = SqsBatchResponse::default();
    for (d, verdict) in deliveries.iter().zip(&verdicts) {
        if *verdict == Verdict::Retry {
            if let Err(e) = source_queue
                .retry_after(&d.receipt_handle, backoff(d.receive_count))
                .await
            {
                tracing::warn!(message_id = %d.message_id, error = %e, "back-off not set; SQS uses the visibility timeout");
            }
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = d.message_id.clone();
            response.batch_item_failures.push(failure);
        }
    }
    let api_calls = logger.app.salesforce.counters().total() - calls_before;
    let mut metrics = Metrics::new(logger.app.config.metrics_namespace.clone())
        .dimension("Function", "call-logger")
        .dimension("Stage", logger.app.config.stage.clone());
    metrics
        .count("CallsReceived", deliveries.len() as u64)
        .count("CallsRetried", response.batch_item_failures.len() as u64)
        .count("SalesforceApiCalls", api_calls);
    metrics.emit();
    tracing::info!(
        calls = deliveries.len(),
        retried = response.batch_item_failures.len(),
        api_calls,
        "call batch done"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(4), Duration::from_secs(240));
        assert_eq!(backoff(50), Duration::from_secs(900));
        assert_eq!(backoff(0), Duration::from_secs(30));
    }
}
