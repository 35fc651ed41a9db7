//! SQS batches as the call logger and comment-sync see them: deliveries in,
//! a verdict per delivery out, and the partial batch response with back-off.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::ports::JobQueue;

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
