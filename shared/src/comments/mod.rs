//! Comment propagation (DESIGN §3, §6): comments written on a call in Modjo are
//! stored per call (newest `updatedAt` wins, deletes are tombstones), and the
//! Modjo block of the call's Task is rebuilt from that stored state, so
//! duplicated and out-of-order events converge. A comment that arrives before
//! its call is logged simply waits in the store: the call logger renders it.
//!
//! Per batch: events are validated (an invalid one is dead-lettered), grouped by
//! tenant, and stored only for tenants that exist. The calls they touch are read
//! in one request, and their Tasks rendered together ([`render`]): one query, one
//! write, and a second round for the calls whose comments changed meanwhile.

pub mod handler;
pub mod render;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use crate::batch::{Delivery, Verdict};
use crate::domain::{CallOutcome, ConnectionStatus, StoredComment, TenantId, validate_external_id};
use crate::ports::{CallStore, CommentStore, ConnectionStore, JobQueue, SalesforceSessions};
pub use render::{render_calls, render_pending};

/// Comments stored at once.
const STORE_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Upsert,
    Delete,
}

/// The comment event (DESIGN §3). Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentEvent {
    pub version: u32,
    pub tenant_id: TenantId,
    pub call_id: String,
    pub comment_id: String,
    pub action: Action,
    #[serde(default)]
    pub author_user_id: Option<String>,
    #[serde(default)]
    pub author_name: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub at_second: u32,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl CommentEvent {
    pub fn parse(body: &str) -> Result<Self, String> {
        if body.len() > crate::domain::call_event::MAX_MESSAGE_BYTES {
            return Err(format!("message of {} bytes is too large", body.len()));
        }
        let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
        let event: CommentEvent = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("invalid comment event: {}", e.inner())
            } else {
                format!("invalid comment event: {path}: {}", e.inner())
            }
        })?;
        if event.version != 1 {
            return Err(format!("unsupported version {}", event.version));
        }
        for (field, id) in [("callId", &event.call_id), ("commentId", &event.comment_id)] {
            if !validate_external_id(id) {
                return Err(format!("{field}: expected 1-128 printable characters"));
            }
        }
        if event.action == Action::Upsert
            && event.text.as_deref().is_none_or(|t| t.trim().is_empty())
        {
            return Err("text: required for an upsert".into());
        }
        if event.at_second > 48 * 3600 {
            return Err(format!("atSecond: {} is beyond 48 hours", event.at_second));
        }
        Ok(event)
    }

    fn stored(&self) -> StoredComment {
        StoredComment {
            call_id: self.call_id.clone(),
            comment_id: self.comment_id.clone(),
            author_name: self.author_name.clone().unwrap_or_default(),
            text: match self.action {
                Action::Upsert => self.text.clone().unwrap_or_default(),
                Action::Delete => String::new(),
            },
            at_second: self.at_second,
            updated_at: self.updated_at,
            deleted: self.action == Action::Delete,
        }
    }
}

/// The storage ports comment propagation touches: calls and their comments,
/// and the tenant's connection.
pub trait CommentSyncStore: CallStore + CommentStore + ConnectionStore {}

impl<T> CommentSyncStore for T where T: CallStore + CommentStore + ConnectionStore {}

/// The comment propagation use case: what it touches is what it holds.
pub struct CommentSync<'a, S, C, Q> {
    store: &'a S,
    salesforce: C,
    /// The comment-events dead-letter queue, for messages that cannot be comments.
    pub dead_letters: &'a Q,
}

impl<'a, S: CommentSyncStore, C: SalesforceSessions, Q: JobQueue> CommentSync<'a, S, C, Q> {
    pub fn new(store: &'a S, salesforce: C, dead_letters: &'a Q) -> Self {
        Self {
            store,
            salesforce,
            dead_letters,
        }
    }

    /// Processes one SQS batch; the verdict of each delivery, in order.
    pub async fn sync_batch(
        &self,
        deliveries: &[Delivery],
        deadline: tokio::time::Instant,
    ) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Done; deliveries.len()];
        let mut by_tenant: Vec<(TenantId, Vec<(usize, CommentEvent)>)> = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            match CommentEvent::parse(&d.body) {
                Ok(e) => match by_tenant.iter_mut().find(|(t, _)| *t == e.tenant_id) {
                    Some((_, events)) => events.push((i, e)),
                    None => by_tenant.push((e.tenant_id.clone(), vec![(i, e)])),
                },
                Err(reason) => {
                    tracing::warn!(message_id = %d.message_id, reason, "comment event refused");
                    verdicts[i] = self.dead_letter(d, &reason).await;
                }
            }
        }
        let work = by_tenant
            .into_iter()
            .map(|(tenant, events)| self.sync_tenant(tenant, events, deliveries, deadline));
        crate::batch::settle_by_tenant(&mut verdicts, work).await;
        verdicts
    }

    /// Sends a message to the dead-letter queue with its reason; if that fails, SQS
    /// delivers it again rather than lose it.
    async fn dead_letter(&self, d: &Delivery, reason: &str) -> Verdict {
        match self.dead_letters.dead_letter(&d.body, reason).await {
            Ok(()) => Verdict::Done,
            Err(e) => {
                tracing::error!(message_id = %d.message_id, error = %e, "dead-letter send failed; SQS redelivers the message");
                Verdict::Retry
            }
        }
    }

    async fn sync_tenant(
        &self,
        tenant: TenantId,
        events: Vec<(usize, CommentEvent)>,
        deliveries: &[Delivery],
        deadline: tokio::time::Instant,
    ) -> Vec<(usize, Verdict)> {
        let store = self.store;
        // The tenant first: nothing is stored for one that does not exist.
        let connection = match store.get_connection(&tenant).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let reason = format!("unknown tenant {tenant}: no Salesforce connection");
                let mut out = Vec::with_capacity(events.len());
                for (i, _) in &events {
                    out.push((*i, self.dead_letter(&deliveries[*i], &reason).await));
                }
                return out;
            }
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "store unavailable");
                return events.iter().map(|(i, _)| (*i, Verdict::Retry)).collect();
            }
        };
        // Stored first: whatever happens to the Task, the comment is not lost.
        let stores = events.iter().map(|(i, e)| {
            let tenant = &tenant;
            async move { (*i, e, store.upsert_comment(tenant, &e.stored()).await) }
        });
        let stored: Vec<_> = futures::stream::iter(stores)
            .buffer_unordered(STORE_CONCURRENCY)
            .collect()
            .await;
        let mut out = Vec::with_capacity(events.len());
        // The calls whose block is rebuilt, each with the deliveries behind it.
        let mut calls: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, event, result) in stored {
            if let Err(e) = result {
                tracing::warn!(tenant_id = %tenant, call_id = %event.call_id, error = %e, "comment not stored");
                out.push((i, Verdict::Retry));
                continue;
            }
            match calls.iter_mut().find(|(c, _)| *c == event.call_id) {
                Some((_, ds)) => ds.push(i),
                None => calls.push((event.call_id.clone(), vec![i])),
            }
        }
        let ids: Vec<String> = calls.iter().map(|(c, _)| c.clone()).collect();
        let outcomes = match store.get_outcomes(&tenant, &ids).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "outcomes not read");
                out.extend(
                    calls
                        .iter()
                        .flat_map(|(_, ds)| ds.iter().map(|i| (*i, Verdict::Retry))),
                );
                return out;
            }
        };
        // Which calls have a Task to update now.
        let mut to_render: Vec<(CallOutcome, Vec<usize>)> = Vec::new();
        for (call_id, ds) in calls {
            let outcome = outcomes.iter().find(|o| o.call_id == call_id);
            let verdict = match outcome {
                // Not logged yet, waiting, or being logged now: the call logger
                // renders the stored comments (it checks, after writing the Task,
                // for comments stored while it worked).
                None => Verdict::Done,
                Some(o) if o.is_final() && o.task_id.is_some() && !o.task_deleted => {
                    to_render.push((o.clone(), ds));
                    continue;
                }
                Some(_) => Verdict::Done,
            };
            out.extend(ds.into_iter().map(|i| (i, verdict)));
        }
        if to_render.is_empty() {
            return out;
        }
        let only: Vec<CallOutcome> = to_render.iter().map(|(o, _)| o.clone()).collect();
        let verdicts = match connection.status {
            ConnectionStatus::Connected => {
                let session = self.salesforce.open(&tenant, deadline);
                render_calls(self.store, &session, &only).await
            }
            ConnectionStatus::Disconnected => vec![Verdict::Done; only.len()],
            ConnectionStatus::NeedsReauth | ConnectionStatus::Pending => {
                render::mark_pending(
                    self.store,
                    &tenant,
                    &only,
                    "the Salesforce connection must be re-authorised",
                )
                .await
            }
        };
        for ((_, ds), verdict) in to_render.into_iter().zip(verdicts) {
            out.extend(ds.into_iter().map(|i| (i, verdict)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({"version": 1, "tenantId": "acme", "callId": "call_8f2c", "commentId": "cmt_31", "action": "upsert",
               "authorUserId": "usr_40", "authorName": "Alice Martin", "text": "Great handling", "atSecond": 195,
               "createdAt": "2026-11-28T11:02:00Z", "updatedAt": "2026-11-28T11:02:00Z"})
    }

    #[test]
    fn parses_and_validates() {
        let e = CommentEvent::parse(&event().to_string()).unwrap();
        assert_eq!(e.stored().text, "Great handling");
        assert!(!e.stored().deleted);
        let mut delete = event();
        delete["action"] = json!("delete");
        delete.as_object_mut().unwrap().remove("text");
        assert!(
            CommentEvent::parse(&delete.to_string())
                .unwrap()
                .stored()
                .deleted
        );
        for (field, value, expected) in [
            ("action", json!("edit"), "action"),
            ("updatedAt", json!("yesterday"), "updatedAt"),
            ("commentId", json!(""), "commentId"),
            ("text", json!(" "), "text"),
            ("atSecond", json!(999_999), "atSecond"),
            ("version", json!(3), "version"),
        ] {
            let mut e = event();
            e[field] = value;
            let err = CommentEvent::parse(&e.to_string()).unwrap_err();
            assert!(err.contains(expected), "{field}: {err}");
        }
    }
}
