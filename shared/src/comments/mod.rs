//! Comment propagation (DESIGN §3, §6): comments written on a call in Modjo are
//! stored per call (newest `updatedAt` wins, deletes are tombstones), and the
//! Modjo block of the call's Task is rebuilt from that stored state, so
//! duplicated and out-of-order events converge. A comment that arrives before
//! its call is logged simply waits in the store: the call logger renders it.

pub mod handler;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::app::{App, Store};
use crate::calls::event::CallEvent;
use crate::calls::render;
use crate::calls::{Delivery, Verdict};
use crate::domain::{
    CallOutcome, CallState, ConnectionStatus, StoredComment, TenantId, validate_external_id,
};
use crate::error::{Classify, ErrorClass, WorkError};
use crate::ports::{JobQueue, SecretStore, StoreError};
use crate::salesforce::id::id15;
use crate::salesforce::soql::{Cond, Select};
use crate::salesforce::{ApiError, RecordUpdate, Session};

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
        if body.len() > crate::calls::event::MAX_MESSAGE_BYTES {
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

/// The calls a batch touched, each with the deliveries (indexes) behind it.
type CallsTouched = Vec<(String, Vec<usize>)>;

pub struct CommentSync<'a, S, K, Q> {
    pub app: &'a App<S, K>,
    /// The comment-events dead-letter queue, for messages that cannot be comments.
    pub dead_letters: &'a Q,
}

impl<'a, S: Store, K: SecretStore, Q: JobQueue> CommentSync<'a, S, K, Q> {
    pub fn new(app: &'a App<S, K>, dead_letters: &'a Q) -> Self {
        Self { app, dead_letters }
    }

    /// Processes one SQS batch; the verdict of each delivery, in order.
    pub async fn sync_batch(
        &self,
        deliveries: &[Delivery],
        deadline: tokio::time::Instant,
    ) -> Vec<Verdict> {
        let mut verdicts = vec![Verdict::Done; deliveries.len()];
        // Calls whose block must be rebuilt, per tenant, with the deliveries behind them.
        let mut touched: Vec<(TenantId, CallsTouched)> = Vec::new();
        for (i, d) in deliveries.iter().enumerate() {
            let event = match CommentEvent::parse(&d.body) {
                Ok(e) => e,
                Err(reason) => {
                    tracing::warn!(message_id = %d.message_id, reason, "comment event refused");
                    verdicts[i] = match self.dead_letters.dead_letter(&d.body, &reason).await {
                        Ok(()) => Verdict::Done,
                        Err(_) => Verdict::Retry,
                    };
                    continue;
                }
            };
            // Stored first: whatever happens to the Task, the comment is not lost.
            if let Err(e) = self
                .app
                .store
                .upsert_comment(&event.tenant_id, &event.stored())
                .await
            {
                tracing::warn!(tenant_id = %event.tenant_id, error = %e, "comment not stored");
                verdicts[i] = Verdict::Retry;
                continue;
            }
            let calls = match touched.iter_mut().find(|(t, _)| *t == event.tenant_id) {
                Some((_, calls)) => calls,
                None => {
                    touched.push((event.tenant_id.clone(), Vec::new()));
                    &mut touched.last_mut().expect("just pushed").1
                }
            };
            match calls.iter_mut().find(|(c, _)| *c == event.call_id) {
                Some((_, ds)) => ds.push(i),
                None => calls.push((event.call_id.clone(), vec![i])),
            }
        }
        for (tenant, calls) in touched {
            let results = self
                .sync_tenant(&tenant, &calls, deliveries, deadline)
                .await;
            for ((_, ds), verdict) in calls.iter().zip(results) {
                for i in ds {
                    verdicts[*i] = verdict;
                }
            }
        }
        verdicts
    }

    async fn sync_tenant(
        &self,
        tenant: &TenantId,
        calls: &[(String, Vec<usize>)],
        deliveries: &[Delivery],
        deadline: tokio::time::Instant,
    ) -> Vec<Verdict> {
        let all = |v: Verdict| vec![v; calls.len()];
        let connection = match self.app.store.get_connection(tenant).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                for (_, ds) in calls {
                    for i in ds {
                        let reason = format!("unknown tenant {tenant}");
                        let _ = self
                            .dead_letters
                            .dead_letter(&deliveries[*i].body, &reason)
                            .await;
                    }
                }
                return all(Verdict::Done);
            }
            Err(_) => return all(Verdict::Retry),
        };
        // Which calls have a Task to update now.
        let mut outcomes = Vec::new();
        let mut verdicts = vec![Verdict::Done; calls.len()];
        for (k, (call_id, _)) in calls.iter().enumerate() {
            match self.app.store.get_outcome(tenant, call_id).await {
                // Not logged yet (or waiting): the call logger renders the stored comments.
                Ok(None) => {}
                Ok(Some(o)) if o.state == CallState::InProgress => verdicts[k] = Verdict::Retry,
                Ok(Some(o)) if o.is_final() && o.task_id.is_some() && !o.task_deleted => {
                    outcomes.push((k, o))
                }
                Ok(Some(_)) => {}
                Err(_) => verdicts[k] = Verdict::Retry,
            }
        }
        if outcomes.is_empty() {
            return verdicts;
        }
        let blocked = match connection.status {
            ConnectionStatus::Connected => None,
            ConnectionStatus::Disconnected => return verdicts,
            _ => Some("the Salesforce connection must be re-authorised"),
        };
        if let Some(reason) = blocked {
            for (k, o) in outcomes {
                verdicts[k] = self.mark_pending(tenant, o, reason).await;
            }
            return verdicts;
        }
        let session =
            self.app
                .salesforce
                .session(tenant, &self.app.secrets, &self.app.store, deadline);
        let only: Vec<CallOutcome> = outcomes.iter().map(|(_, o)| o.clone()).collect();
        let results = render_calls(self.app, &session, &only).await;
        for ((k, _), verdict) in outcomes.iter().zip(results) {
            verdicts[*k] = verdict;
        }
        verdicts
    }

    async fn mark_pending(&self, tenant: &TenantId, outcome: CallOutcome, reason: &str) -> Verdict {
        tracing::info!(tenant_id = %tenant, call_id = %outcome.call_id, reason, "comments pending");
        let pending = CallOutcome {
            comments_pending: true,
            updated_at: Utc::now(),
            ..outcome
        };
        match self.app.store.save_outcome(tenant, &pending).await {
            Ok(_) => Verdict::Done,
            Err(_) => Verdict::Retry,
        }
    }
}

/// Rebuilds the Modjo block of each logged call's Task from stored state: one
/// query reads the current descriptions, one collections update writes the
/// changed ones. Used by comment-sync, and by the sync for pending comments.
pub async fn render_calls<S: Store, K: SecretStore>(
    app: &App<S, K>,
    session: &Session<'_, K, S>,
    outcomes: &[CallOutcome],
) -> Vec<Verdict> {
    let tenant = session.tenant().clone();
    match render_calls_inner(app, session, outcomes).await {
        Ok(v) => v,
        Err(e) => {
            let class = e.class();
            tracing::warn!(tenant_id = %tenant, error = %e, class = %class, "comments not rendered");
            let mut verdicts = Vec::new();
            for o in outcomes {
                verdicts.push(match class {
                    ErrorClass::Retryable => Verdict::Retry,
                    // Waits for the reconnect: the sync renders pending comments then.
                    ErrorClass::NeedsReauth => {
                        let pending = CallOutcome {
                            comments_pending: true,
                            ..o.clone()
                        };
                        match app.store.save_outcome(&tenant, &pending).await {
                            Ok(_) => Verdict::Done,
                            Err(_) => Verdict::Retry,
                        }
                    }
                    ErrorClass::Permanent => Verdict::Done,
                });
            }
            verdicts
        }
    }
}

async fn render_calls_inner<S: Store, K: SecretStore>(
    app: &App<S, K>,
    session: &Session<'_, K, S>,
    outcomes: &[CallOutcome],
) -> Result<Vec<Verdict>, WorkError> {
    let tenant = session.tenant().clone();
    let task_ids: Vec<String> = outcomes.iter().filter_map(|o| o.task_id.clone()).collect();
    let select = Select::new("Task", &["Id", "Description"]).filter(Cond::is_in("Id", task_ids));
    let current: HashMap<String, Option<String>> = session
        .query_select(&select, false)
        .await?
        .into_iter()
        .filter_map(|r| {
            let id = r.get("Id")?.as_str()?.to_string();
            Some((
                id15(&id).to_string(),
                r.get("Description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ))
        })
        .collect();
    let mut verdicts = vec![Verdict::Done; outcomes.len()];
    let mut updates: Vec<(usize, RecordUpdate)> = Vec::new();
    for (k, o) in outcomes.iter().enumerate() {
        let task_id = o.task_id.clone().unwrap_or_default();
        let Some(description) = current.get(id15(&task_id)) else {
            // Not returned: deleted in Salesforce. Recorded, never retried.
            verdicts[k] = settle(app, &tenant, o, true).await;
            continue;
        };
        let Some(call) = o.message.as_deref().and_then(|m| CallEvent::parse(m).ok()) else {
            tracing::error!(tenant_id = %tenant, call_id = %o.call_id, "the call's message is not stored: cannot render");
            continue;
        };
        let comments = app.store.comments_for_call(&tenant, &o.call_id).await?;
        match render::merge_description(description.as_deref(), &call, &comments) {
            Some(merged) if Some(merged.as_str()) != description.as_deref() => {
                let mut fields = Map::new();
                fields.insert("Description".into(), Value::String(merged));
                updates.push((
                    k,
                    RecordUpdate {
                        object: "Task",
                        id: task_id,
                        fields,
                    },
                ));
            }
            Some(_) => verdicts[k] = settle(app, &tenant, o, false).await,
            None => {
                tracing::warn!(tenant_id = %tenant, call_id = %o.call_id, "the Task's own text leaves no room for the Modjo block")
            }
        }
    }
    if updates.is_empty() {
        return Ok(verdicts);
    }
    let results = session
        .update_many(&updates.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>())
        .await?;
    for ((k, _), result) in updates.iter().zip(results) {
        let o = &outcomes[*k];
        verdicts[*k] = if result.success {
            settle(app, &tenant, o, false).await
        } else if result
            .errors
            .iter()
            .any(|e| matches!(e.code.as_str(), "ENTITY_IS_DELETED" | "NOT_FOUND"))
        {
            settle(app, &tenant, o, true).await
        } else if result.errors.iter().any(ApiError::is_transient_row_error) {
            Verdict::Retry
        } else {
            tracing::error!(tenant_id = %tenant, call_id = %o.call_id, errors = ?result.errors, "Salesforce refused the comments update");
            Verdict::Done
        };
    }
    Ok(verdicts)
}

/// Clears the pending flag (and records a deleted Task) once the Task is in step.
async fn settle<S: Store, K: SecretStore>(
    app: &App<S, K>,
    tenant: &TenantId,
    o: &CallOutcome,
    task_deleted: bool,
) -> Verdict {
    if !o.comments_pending && !task_deleted {
        return Verdict::Done;
    }
    let mut updated = CallOutcome {
        comments_pending: false,
        updated_at: Utc::now(),
        ..o.clone()
    };
    if task_deleted {
        updated.task_deleted = true;
        updated.reason =
            Some("the Task was deleted in Salesforce; the comments stay in Modjo".into());
        tracing::info!(tenant_id = %tenant, call_id = %o.call_id, "Task deleted in Salesforce");
    }
    match app.store.save_outcome(tenant, &updated).await {
        Ok(_) => Verdict::Done,
        // Someone else changed the outcome (a newer render): SQS redelivers, we re-check.
        Err(_) => Verdict::Retry,
    }
}

/// The sync's share: calls whose comments waited (reconnect, budget) are rendered.
pub async fn render_pending<S: Store, K: SecretStore>(
    app: &App<S, K>,
    session: &Session<'_, K, S>,
) -> Result<usize, StoreError> {
    let tenant = session.tenant().clone();
    let mut rendered = 0;
    let mut token = None;
    loop {
        let page = app.store.pending_comment_calls(&tenant, token).await?;
        for chunk in page.items.chunks(200) {
            let verdicts = render_calls(app, session, chunk).await;
            rendered += verdicts.iter().filter(|v| **v == Verdict::Done).count();
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(rendered),
        }
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
