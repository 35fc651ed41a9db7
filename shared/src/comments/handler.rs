//! comment-sync's Lambda entry point: an SQS batch in, a partial batch response
//! out, classified as in the call logger.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;

use super::{CommentSync, CommentSyncStore};
use crate::app::App;
use crate::batch::Batch;
use crate::ports::{JobQueue, SalesforceSessions, SecretStore, StoreRequests};

pub async fn handle<
    S: CommentSyncStore + StoreRequests,
    K: SecretStore,
    C: SalesforceSessions,
    Q: JobQueue,
>(
    app: &App<S, K>,
    sync: &CommentSync<'_, S, C, Q>,
    source_queue: &Q,
    event: LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let batch = Batch::start(app, event);
    let verdicts = sync.sync_batch(&batch.deliveries, batch.deadline).await;
    let mut metrics = app.metrics("comment-sync");
    let batch = batch
        .finish(app, &verdicts, source_queue, &mut metrics)
        .await;
    metrics
        .count("CommentsReceived", batch.received)
        .count("CommentsRetried", batch.retried);
    metrics.emit();
    batch.response
}
