//! scheduled-sync's Lambda entry point: the EventBridge schedule fans out, the
//! sync-jobs queue runs tenants' jobs (SQS partial batch response).

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument;

use super::{JobOutcome, SyncJob, SyncStore, Syncer, fan_out};
use crate::app::App;
use crate::batch::deadline_instant;
use crate::error::{Classify, ErrorClass};
use crate::ports::{JobQueue, SalesforceSessions, SecretStore, StoreRequests};
use crate::telemetry::Metrics;

/// How close to the Lambda deadline a job may go.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Stop starting new pages this long before the deadline, and checkpoint.
    pub stop_before_deadline: Duration,
    /// Salesforce requests never run later than this before the deadline.
    pub requests_end_before_deadline: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            stop_before_deadline: Duration::from_secs(120),
            requests_end_before_deadline: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("unrecognised event: neither a schedule nor an SQS batch")]
    UnknownEvent,
    #[error("fan-out failed: {0}")]
    FanOut(#[from] crate::ports::StoreError),
}

pub async fn handle<
    S: SyncStore + StoreRequests,
    K: SecretStore,
    C: SalesforceSessions,
    Q: JobQueue,
>(
    app: &App<S, K>,
    syncer: &Syncer<'_, S, C, Q>,
    event: LambdaEvent<Value>,
    options: SyncOptions,
) -> Result<Value, HandlerError> {
    let deadline = deadline_instant(event.context.deadline);
    let payload = event.payload;
    if payload.get("Records").is_some() {
        let sqs: SqsEvent =
            serde_json::from_value(payload).map_err(|_| HandlerError::UnknownEvent)?;
        let response = run_jobs(app, syncer, sqs, deadline, options).await;
        return Ok(serde_json::to_value(response).unwrap_or_else(|_| json!({})));
    }
    let scheduled = payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        || payload.get("source").and_then(Value::as_str) == Some("aws.events");
    if !scheduled {
        return Err(HandlerError::UnknownEvent);
    }
    let tally = fan_out(&app.store, syncer.jobs).await?;
    tracing::info!(
        queued = tally.queued,
        skipped = tally.skipped,
        "sync fan-out"
    );
    let mut metrics = metrics(app);
    metrics
        .count("SyncJobsQueued", tally.queued as u64)
        .count("TenantsSkipped", tally.skipped as u64);
    metrics.emit();
    Ok(json!({ "queued": tally.queued, "skipped": tally.skipped }))
}

fn metrics<S, K: SecretStore>(app: &App<S, K>) -> Metrics {
    app.metrics("scheduled-sync")
}

async fn run_jobs<
    S: SyncStore + StoreRequests,
    K: SecretStore,
    C: SalesforceSessions,
    Q: JobQueue,
>(
    app: &App<S, K>,
    syncer: &Syncer<'_, S, C, Q>,
    event: SqsEvent,
    deadline: Instant,
    options: SyncOptions,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let stop_at = deadline
        .checked_sub(options.stop_before_deadline)
        .unwrap_or_else(Instant::now);
    let hard = deadline
        .checked_sub(options.requests_end_before_deadline)
        .unwrap_or_else(Instant::now);
    for record in event.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or("");
        let job = match SyncJob::parse(body) {
            Ok(job) => job,
            Err(reason) => {
                // Permanent: retrying cannot fix it. To the DLQ with its reason; if
                // that send fails, SQS delivers it again rather than lose it.
                tracing::error!(message_id, reason, "sync job refused");
                let sent = match syncer.dead_letters {
                    Some(dlq) => dlq.dead_letter(body, &reason).await,
                    None => Ok(()),
                };
                if let Err(e) = sent {
                    tracing::error!(message_id, error = %e, "dead-letter send failed; SQS redelivers the job");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = message_id;
                    response.batch_item_failures.push(failure);
                }
                continue;
            }
        };
        let span = tracing::info_span!("sync_job", tenant_id = %job.tenant_id, message_id = %message_id, reason = %job.reason);
        let started = Instant::now();
        let calls_before = app.salesforce.counters().total();
        let store_before = app.store.requests_by_operation();
        let result = syncer
            .run(&job, stop_at, hard)
            .instrument(span.clone())
            .await;
        let _entered = span.enter();
        let mut m = metrics(app).property("tenantId", job.tenant_id.as_str());
        m.count(
            "SalesforceApiCalls",
            app.salesforce.counters().total() - calls_before,
        )
        .put(
            "SyncJobDuration",
            crate::telemetry::Unit::Milliseconds,
            started.elapsed().as_millis() as f64,
        )
        .store_requests(&store_before, &app.store.requests_by_operation());
        match &result {
            Ok(outcome) => {
                tracing::info!(outcome = ?outcome, "sync job finished");
                m.count(
                    match outcome {
                        JobOutcome::Completed => "SyncCompleted",
                        JobOutcome::Continued => "SyncContinued",
                        JobOutcome::Paused { .. } => "SyncPaused",
                        JobOutcome::AlreadyRunning | JobOutcome::Skipped(_) => "SyncSkipped",
                    },
                    1,
                );
            }
            Err(e) => {
                m.count("SyncFailed", 1);
                match e.class() {
                    ErrorClass::Retryable => {
                        tracing::warn!(error = %e, "sync job failed; SQS will retry it");
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = message_id;
                        response.batch_item_failures.push(failure);
                    }
                    ErrorClass::NeedsReauth => {
                        tracing::warn!(error = %e, "sync job stopped: the tenant must reconnect");
                    }
                    ErrorClass::Permanent => {
                        tracing::error!(error = %e, "sync job failed permanently")
                    }
                }
            }
        }
        m.emit();
    }
    response
}
