//! SQS batches as the call logger and comment-sync see them: deliveries in,
//! a verdict per delivery out, and the partial batch response with back-off.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::app::App;
use crate::backoff::Backoff;
use crate::ports::{JobQueue, SecretStore, StoreRequests};
use crate::telemetry::Metrics;

/// A queue function's Salesforce requests must have ended this long before the
/// Lambda deadline.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// The Lambda deadline (epoch milliseconds) as an `Instant`.
pub fn deadline_instant(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// When a queue batch's Salesforce requests must have ended: [`DEADLINE_MARGIN`]
/// before the Lambda deadline (epoch milliseconds).
pub fn requests_deadline(deadline_ms: u64) -> Instant {
    deadline_instant(deadline_ms)
        .checked_sub(DEADLINE_MARGIN)
        .unwrap_or_else(Instant::now)
}

/// One SQS record to process.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
}

/// What to answer SQS for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledge: done, recorded as failed, parked, or a duplicate.
    Done,
    /// Report as a batch item failure: SQS redelivers it after a back-off.
    Retry,
    /// Report as a batch item failure, redelivered no sooner than this: what it
    /// waits for (another invocation's claim) cannot end earlier.
    RetryAfter(Duration),
}

impl Verdict {
    pub fn is_retry(self) -> bool {
        self != Verdict::Done
    }
}

pub fn deliveries(event: SqsEvent) -> Vec<Delivery> {
    event
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
        .collect()
}

/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// Back-off before SQS redelivers a failed item: 30 s, 1 min, 2 min, … up to 15 min.
pub fn backoff(receive_count: u32) -> Duration {
    Backoff::SQS_REDELIVERY.delay(receive_count.saturating_sub(1))
}

/// The partial batch response; retried items get their back-off on `source`.
pub async fn respond<Q: JobQueue>(
    deliveries: &[Delivery],
    verdicts: &[Verdict],
    source: &Q,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for (d, verdict) in deliveries.iter().zip(verdicts) {
        let delay = match *verdict {
            Verdict::Done => continue,
            Verdict::Retry => backoff(d.receive_count),
            Verdict::RetryAfter(at_least) => at_least.clamp(Duration::from_secs(1), MAX_VISIBILITY),
        };
        if let Err(e) = source.retry_after(&d.receipt_handle, delay).await {
            tracing::warn!(message_id = %d.message_id, error = %e, "back-off not set; SQS uses the visibility timeout");
        }
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = d.message_id.clone();
        response.batch_item_failures.push(failure);
    }
    response
}

/// One queue function's batch between its event and its answer: the
/// deliveries and their requests deadline, and the counters read before the
/// work, so that [`Batch::finish`] can tell what the work spent.
pub struct Batch {
    pub deliveries: Vec<Delivery>,
    /// When the batch's Salesforce requests must have ended.
    pub deadline: Instant,
    calls_before: u64,
    store_before: std::collections::BTreeMap<String, u64>,
}

/// What one batch came to, for its function's metrics and log line.
pub struct Consumed {
    pub response: SqsBatchResponse,
    /// Deliveries in the batch.
    pub received: u64,
    /// Deliveries reported as failures, to be redelivered.
    pub retried: u64,
    /// Salesforce API calls the batch spent.
    pub api_calls: u64,
}

impl Batch {
    pub fn start<S: StoreRequests, K: SecretStore>(
        app: &App<S, K>,
        event: LambdaEvent<SqsEvent>,
    ) -> Self {
        Self {
            deadline: requests_deadline(event.context.deadline),
            deliveries: deliveries(event.payload),
            calls_before: app.salesforce.counters().total(),
            store_before: app.store.requests_by_operation(),
        }
    }

    /// The partial batch response for `verdicts` (one per delivery; the retried
    /// items' back-off set on `source`). `metrics` receives the batch's
    /// Salesforce API calls and store requests; the caller adds its own counts
    /// and emits.
    pub async fn finish<S: StoreRequests, K: SecretStore, Q: JobQueue>(
        self,
        app: &App<S, K>,
        verdicts: &[Verdict],
        source: &Q,
        metrics: &mut Metrics,
    ) -> Consumed {
        let response = respond(&self.deliveries, verdicts, source).await;
        let api_calls = app.salesforce.counters().total() - self.calls_before;
        metrics.count("SalesforceApiCalls", api_calls);
        metrics.store_requests(&self.store_before, &app.store.requests_by_operation());
        Consumed {
            received: self.deliveries.len() as u64,
            retried: response.batch_item_failures.len() as u64,
            api_calls,
            response,
        }
    }
}

/// Tenants whose deliveries one invocation works on at once.
const TENANT_CONCURRENCY: usize = 8;

/// Runs each tenant's work (its deliveries' verdicts, by index), a few tenants
/// at once, and sets each verdict at its delivery's place.
pub async fn settle_by_tenant<F>(verdicts: &mut [Verdict], work: impl IntoIterator<Item = F>)
where
    F: std::future::Future<Output = Vec<(usize, Verdict)>>,
{
    use futures::StreamExt;
    let results: Vec<Vec<(usize, Verdict)>> = futures::stream::iter(work)
        .buffer_unordered(TENANT_CONCURRENCY)
        .collect()
        .await;
    for (i, verdict) in results.into_iter().flatten() {
        verdicts[i] = verdict;
    }
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
