//! In the place of Lambda's SQS event source mappings and the EventBridge
//! schedule: pollers receive from a queue and invoke the function with an SQS
//! event shaped as Lambda sends it, deleting only what the partial batch
//! response did not report as failed; a ticker sends the scheduled event.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::functions::FunctionProcess;
use crate::provision::QueueSpec;

/// Lambda's SQS event source mapping, for one queue and one function: batches
/// of up to `spec.batch_size` messages, gathered for up to the batching window.
pub fn poll(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    function: Arc<FunctionProcess>,
    spec: QueueSpec,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let queue_name = queue_url.rsplit('/').next().unwrap_or("queue").to_string();
        loop {
            if *stop.borrow() {
                return;
            }
            let messages = tokio::select! {
                m = gather(&sqs, &queue_url, &queue_name, spec) => m,
                _ = stop.changed() => return,
            };
            if messages.is_empty() {
                continue;
            }
            let records: Vec<Value> = messages
                .iter()
                .map(|m| {
                    let attributes: serde_json::Map<String, Value> = m
                        .attributes
                        .as_ref()
                        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone()))).collect())
                        .unwrap_or_default();
                    json!({
                        "messageId": m.message_id,
                        "receiptHandle": m.receipt_handle,
                        "body": m.body,
                        "attributes": attributes,
                        "messageAttributes": {},
                        "md5OfBody": m.md5_of_body,
                        "eventSource": "aws:sqs",
                        "eventSourceARN": format!("arn:aws:sqs:eu-west-1:000000000000:{queue_name}"),
                        "awsRegion": "eu-west-1",
                    })
                })
                .collect();
            let answer = function
                .invoke(json!({ "Records": records }), timeout)
                .await;
            let failed: Vec<String> = match &answer {
                Ok(v) => v
                    .get("batchItemFailures")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|f| f.get("itemIdentifier")?.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                Err(e) => {
                    // The whole batch failed: every message returns after its visibility timeout.
                    tracing::warn!(function = function.name(), error = %e, "batch failed");
                    continue;
                }
            };
            let entries: Vec<DeleteMessageBatchRequestEntry> = messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.message_id.as_ref().is_some_and(|id| !failed.contains(id)))
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            // DeleteMessageBatch takes at most 10 entries.
            for chunk in entries.chunks(10) {
                if let Err(e) = sqs
                    .delete_message_batch()
                    .queue_url(&queue_url)
                    .set_entries(Some(chunk.to_vec()))
                    .send()
                    .await
                {
                    tracing::warn!(queue = %queue_name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "delete failed");
                }
            }
        }
    })
}

/// One batch: the first messages within a second, then more until the batch is
/// full or its window has passed.
async fn gather(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    queue_name: &str,
    spec: QueueSpec,
) -> Vec<Message> {
    let window = Duration::from_secs(spec.batching_window_seconds);
    let mut batch: Vec<Message> = Vec::new();
    let mut first_at: Option<tokio::time::Instant> = None;
    loop {
        let left = first_at.map(|t| window.saturating_sub(t.elapsed()));
        if batch.len() >= spec.batch_size || left.is_some_and(|l| l.is_zero()) {
            return batch;
        }
        let wait = left.map_or(1, |l| l.as_secs().min(1) as i32);
        let want = (spec.batch_size - batch.len()).clamp(1, 10) as i32;
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(want)
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        match received {
            Ok(out) => {
                let got = out.messages.unwrap_or_default();
                if got.is_empty() && first_at.is_none() {
                    return batch;
                }
                if got.is_empty() && wait == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                first_at.get_or_insert_with(tokio::time::Instant::now);
                batch.extend(got);
            }
            Err(e) => {
                tracing::debug!(queue = %queue_name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receive failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
                return batch;
            }
        }
    }
}

/// The scheduled event EventBridge sends for a `rate(…)` rule.
pub fn scheduled_event() -> Value {
    let now = chrono::Utc::now();
    json!({
        "version": "0",
        "id": format!("{:032x}", rand::random::<u128>()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "eu-west-1",
        "resources": ["arn:aws:events:eu-west-1:000000000000:rule/modjo-local-sync-schedule"],
        "detail": {}
    })
}

/// The 15-minute schedule, on a shorter period.
pub fn schedule(
    function: Arc<FunctionProcess>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = function
                .invoke(scheduled_event(), Duration::from_secs(60))
                .await
            {
                tracing::warn!(error = %e, "scheduled sync failed");
            }
        }
    })
}
