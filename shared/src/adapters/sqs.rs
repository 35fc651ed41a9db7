//! SQS adapter: sends JSON jobs to one queue, batched, each in its tenant's
//! message group (fair queues).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::map_sdk_error;
use crate::backoff::Backoff;
use crate::ports::{JobQueue, StoreError, StoreResult, TenantMessage};

/// SendMessageBatch takes at most 10 entries, and at most 256 KiB of bodies in all.
const SEND_BATCH: usize = 10;
const SEND_BATCH_BYTES: usize = 256 * 1024;
const MAX_ATTEMPTS: u32 = 5;
/// A dead letter's body stays within the DLQ's 1 MiB with its reason attribute
/// (at most 1,000 characters). Only a message larger than any queue carries
/// (refused for that) is cut, its head kept for whoever inspects it.
const DEAD_LETTER_BODY_BYTES: usize = 1024 * 1024 - 8 * 1024;

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

/// Consecutive runs of messages within SendMessageBatch's count and size limits.
fn send_batches(messages: &[TenantMessage]) -> Vec<&[TenantMessage]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        if i > start && (i - start == SEND_BATCH || bytes + m.body.len() > SEND_BATCH_BYTES) {
            batches.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.body.len();
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    batches
}

impl JobQueue for SqsQueue {
    async fn send_all(&self, messages: &[TenantMessage]) -> StoreResult<()> {
        for chunk in send_batches(messages) {
            // Entry ids are positions in the chunk, so failures map back to bodies.
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
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
        let body = if body.len() > DEAD_LETTER_BODY_BYTES {
            let mut end = DEAD_LETTER_BODY_BYTES;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…[cut: {} bytes in all]", &body[..end], body.len())
        } else {
            body.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(bodies: Vec<String>) -> Vec<TenantMessage> {
        let tenant = crate::domain::TenantId::parse("acme").unwrap();
        bodies
            .into_iter()
            .map(|b| TenantMessage::new(&tenant, b))
            .collect()
    }

    #[test]
    fn batches_respect_the_count_and_the_size() {
        let small = messages((0..25).map(|i| format!("{i}")).collect());
        let sizes: Vec<usize> = send_batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        // 100 KB calls: two fit in 256 KiB, a third does not.
        let large = messages((0..5).map(|_| "x".repeat(100_000)).collect());
        let sizes: Vec<usize> = send_batches(&large).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        // A body as large as a queue takes goes alone.
        let full = messages(vec!["y".repeat(SEND_BATCH_BYTES), "z".into()]);
        let sizes: Vec<usize> = send_batches(&full).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1]);
        assert!(send_batches(&[]).is_empty());
    }
}
