//! comment-sync's Lambda entry point: an SQS batch in, a partial batch response
//! out, classified as in the call logger.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;

use super::CommentSync;
use crate::app::Store;
use crate::batch::{deliveries, requests_deadline, respond};
use crate::ports::{JobQueue, SecretStore};

pub async fn handle<S: Store, K: SecretStore, Q: JobQueue>(
    sync: &CommentSync<'_, S, K, Q>,
    source_queue: &Q,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let deadline = requests_deadline(event.context.deadline);
    let deliveries = deliveries(event.payload);
    let calls_before = sync.app.salesforce.counters().total();
    let store_before = sync.app.store.requests_by_operation();
    let verdicts = sync.sync_batch(&deliveries, deadline).await;
    let response = respond(&deliveries, &verdicts, source_queue).await;
    let api_calls = sync.app.salesforce.counters().total() - calls_before;
    let mut metrics = sync.app.metrics("comment-sync");
    metrics
        .count("CommentsReceived", deliveries.len() as u64)
        .count("CommentsRetried", response.batch_item_failures.len() as u64)
        .count("SalesforceApiCalls", api_calls);
    metrics.store_requests(&store_before, &sync.app.store.requests_by_operation());
    metrics.emit();
    response
}
