//! SQS adapter: sends JSON jobs to one queue, batched, each in its tenant's
//! message group (fair queues).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::{backoff, map_sdk_error};
use crate::ports::{JobQueue, StoreError, StoreResult, TenantMessage};

/// SendMessageBatch takes at most 10 entries.
const SEND_BATCH: usize = 10;
const MAX_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

impl JobQueue for SqsQueue {
    async fn send_all(&self, messages: &[TenantMessage]) -> StoreResult<()> {
        for chunk in messages.chunks(SEND_BATCH) {
            // Entry ids are positions in the chunk, so failures map back to bodies.
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                let entries = pending
                    .iter()
                    .map(|&i| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(&chunk[i].body)
                            .message_group_id(chunk[i].tenant.as_str())
                            .build()
                            .map_err(|e| StoreError::Rejected(format!("SendMessageBatch: {e}")))
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("SendMessageBatch", e))?;
                if let Some(bad) = out.failed.iter().find(|f| f.sender_fault) {
                    return Err(StoreError::Rejected(format!(
                        "SendMessageBatch refused a message: {} {}",
                        bad.code,
                        bad.message.as_deref().unwrap_or("")
                    )));
                }
                pending = out
                    .failed
                    .iter()
                    .filter_map(|f| f.id.parse().ok())
                    .collect();
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "SendMessageBatch: {} messages not accepted after {MAX_ATTEMPTS} attempts",
                    pending.len()
                )));
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, body: &str, reason: &str) -> StoreResult<()> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value.chars().take(1000).collect::<String>())
                .build()
                .map_err(|e| StoreError::Rejected(format!("message attribute: {e}")))
        };
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_attributes("modjo-error", attribute(reason)?)
            .send()
            .await
            .map_err(|e| map_sdk_error("SendMessage (dead letter)", e))?;
        Ok(())
    }

    async fn retry_after(&self, receipt_handle: &str, delay: Duration) -> StoreResult<()> {
        // SQS caps visibility at 12 hours.
        let seconds = delay.as_secs().min(43_200) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| map_sdk_error("ChangeMessageVisibility", e))?;
        Ok(())
    }
}
