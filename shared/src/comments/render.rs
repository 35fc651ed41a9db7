//! Rebuilding the Modjo block of logged calls' Tasks from stored state: one
//! query reads the current descriptions, conditional updates write the changed
//! ones (25 per API call). Used by comment-sync, and by the sync for pending
//! comments.
//!
//! Nothing is overwritten, nothing left behind:
//! - a rep's edit saved between the read and the write is kept: each update
//!   carries `If-Unmodified-Since` with the `LastModifiedDate` that was read, and a
//!   Task modified since (412) is read and rendered again;
//! - concurrent renders converge: each call's comment-state version is read
//!   before its comments and again after the write; a call whose comments changed
//!   meanwhile is rendered again, so the last write shows the newest state,
//!   whatever the interleaving of invocations. The version also covers what
//!   `If-Unmodified-Since` cannot see (its precision is the second).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{Map, Value};

use crate::batch::Verdict;
use crate::domain::block::merge_description;
use crate::domain::call_event::CallEvent;
use crate::domain::{Activity, CallOutcome, StoredComment, TenantId};
use crate::error::{Classify, ErrorClass};
use crate::ports::{CallStore, CommentStore, SalesforceApi, StoreError};
use crate::salesforce::id::id15;
use crate::salesforce::keyset::parse_datetime;
use crate::salesforce::soql::{Cond, Select};
use crate::salesforce::{ConditionalOutcome, ConditionalUpdate, SalesforceError};
use crate::work::WorkError;

/// Rounds of rendering a call whose comments keep changing, before SQS retries it.
const MAX_ROUNDS: usize = 3;
/// Calls whose comments are read at once.
const COMMENT_READS: usize = 16;
/// Writes of the pending flag on outcomes that keep changing under it.
const MARK_PENDING_ATTEMPTS: usize = 4;

/// What one round did for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// The Task shows the state that was read, and it is still the newest.
    Shown,
    /// The Task was deleted in Salesforce.
    TaskDeleted,
    /// The comments or the Task changed meanwhile: render again.
    Again,
    /// Settled without showing (logged): no room, a permanent refusal.
    Given,
    /// A transient failure of this row: SQS redelivers.
    Retry,
}

/// Rebuilds the Modjo block of each logged call's Task; the verdict of each.
pub async fn render_calls<S: CallStore + CommentStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    outcomes: &[CallOutcome],
) -> Vec<Verdict> {
    let tenant = session.tenant().clone();
    let mut ends: Vec<Option<Round>> = vec![None; outcomes.len()];
    let mut open: Vec<usize> = (0..outcomes.len()).collect();
    for _ in 0..MAX_ROUNDS {
        if open.is_empty() {
            break;
        }
        let round: Vec<&CallOutcome> = open.iter().map(|&k| &outcomes[k]).collect();
        match render_round(store, session, &round).await {
            Ok(results) => {
                let mut again = Vec::new();
                for (&k, r) in open.iter().zip(results) {
                    match r {
                        Round::Again => again.push(k),
                        other => ends[k] = Some(other),
                    }
                }
                open = again;
            }
            Err(e) => return failed_round(store, &tenant, session, outcomes, &ends, &e).await,
        }
    }
    settle(store, &tenant, outcomes, &ends).await
}

/// When a round fails as a whole: the calls it left wait for the reconnect or for
/// Salesforce to answer (comments pending, shown by the next sync), or come back.
async fn failed_round<S: CallStore, C: SalesforceApi>(
    store: &S,
    tenant: &TenantId,
    session: &C,
    outcomes: &[CallOutcome],
    ends: &[Option<Round>],
    e: &WorkError,
) -> Vec<Verdict> {
    let class = e.class();
    tracing::warn!(tenant_id = %tenant, error = %e, class = %class, "comments not rendered");
    let outage =
        matches!(e, WorkError::Salesforce(sf) if sf.is_unavailability()) && !session.was_answered();
    let wait = class == ErrorClass::NeedsReauth || (class == ErrorClass::Retryable && outage);
    let left: Vec<CallOutcome> = outcomes
        .iter()
        .zip(ends)
        .filter(|(_, end)| end.is_none())
        .map(|(o, _)| o.clone())
        .collect();
    let mut verdicts = settle(store, tenant, outcomes, ends).await.into_iter();
    let mut parked = if wait {
        mark_pending(store, tenant, &left, &e.to_string()).await
    } else {
        Vec::new()
    }
    .into_iter();
    ends.iter()
        .map(|end| {
            let settled = verdicts.next().unwrap_or(Verdict::Retry);
            match (end, class) {
                (Some(_), _) => settled,
                _ if wait => parked.next().unwrap_or(Verdict::Retry),
                (None, ErrorClass::Permanent) => Verdict::Done,
                (None, _) => Verdict::Retry,
            }
        })
        .collect()
}

/// One round: the comment states, the comments, the Tasks' descriptions, the
/// writes, and the comment states again.
async fn render_round<S: CommentStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    outcomes: &[&CallOutcome],
) -> Result<Vec<Round>, WorkError> {
    let tenant = session.tenant();
    let ids: Vec<String> = outcomes.iter().map(|o| o.call_id.clone()).collect();
    let before = store.comment_versions(tenant, &ids).await?;
    let comments = comments_of(store, tenant, &ids).await?;
    let current = task_descriptions(session, outcomes).await?;

    let mut results = vec![Round::Shown; outcomes.len()];
    let mut updates: Vec<(usize, ConditionalUpdate)> = Vec::new();
    for (k, o) in outcomes.iter().enumerate() {
        let task_id = o.task_id.clone().unwrap_or_default();
        let Some(task) = current.get(id15(&task_id)) else {
            // Not returned: deleted in Salesforce. Recorded, never retried.
            results[k] = Round::TaskDeleted;
            continue;
        };
        let Some(call) = o.message.as_deref().and_then(|m| CallEvent::parse(m).ok()) else {
            tracing::error!(tenant_id = %tenant, call_id = %o.call_id, "the call's message is not stored: cannot render");
            results[k] = Round::Given;
            continue;
        };
        let shown = comments
            .get(&o.call_id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match merge_description(task.description.as_deref(), &call, shown) {
            Some(merged) if Some(merged.as_str()) != task.description.as_deref() => {
                let mut fields = Map::new();
                fields.insert("Description".into(), Value::String(merged));
                updates.push((
                    k,
                    ConditionalUpdate {
                        object: o.activity.object(),
                        id: task_id,
                        fields,
                        unmodified_since: task.last_modified,
                    },
                ));
            }
            Some(_) => {}
            None => {
                tracing::warn!(tenant_id = %tenant, call_id = %o.call_id, "the Task's own text leaves no room for the Modjo block");
                results[k] = Round::Given;
            }
        }
    }
    if !updates.is_empty() {
        let written = session
            .update_if_unmodified(&updates.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>())
            .await?;
        for ((k, _), outcome) in updates.iter().zip(written) {
            results[*k] = match outcome {
                ConditionalOutcome::Updated => Round::Shown,
                // Edited in Salesforce since it was read: read it again.
                ConditionalOutcome::Modified => Round::Again,
                ConditionalOutcome::Failed(e) => row_round(tenant, &outcomes[*k].call_id, &e),
            };
        }
    }
    // A newer state stored meanwhile (by another invocation) is rendered again.
    let after = store.comment_versions(tenant, &ids).await?;
    for (k, id) in ids.iter().enumerate() {
        if results[k] == Round::Shown && after.get(id) != before.get(id) {
            results[k] = Round::Again;
        }
    }
    Ok(results)
}

/// How a refused update ends its call's round.
fn row_round(tenant: &TenantId, call_id: &str, e: &SalesforceError) -> Round {
    if matches!(e.code(), Some("ENTITY_IS_DELETED" | "NOT_FOUND")) {
        Round::TaskDeleted
    } else if e.class() == ErrorClass::Retryable {
        Round::Retry
    } else {
        tracing::error!(tenant_id = %tenant, call_id, error = %e, "Salesforce refused the comments update");
        Round::Given
    }
}

/// Each call's stored comments, several calls at a time.
async fn comments_of<S: CommentStore>(
    store: &S,
    tenant: &TenantId,
    ids: &[String],
) -> Result<HashMap<String, Vec<StoredComment>>, StoreError> {
    let reads = ids.iter().map(|id| async move {
        Ok::<_, StoreError>((id.clone(), store.comments_for_call(tenant, id).await?))
    });
    futures::stream::iter(reads)
        .buffer_unordered(COMMENT_READS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// A Task as read before its block is rebuilt.
struct TaskNow {
    description: Option<String>,
    last_modified: DateTime<Utc>,
}

/// The current description of each Task, by 15-character id; a deleted Task is absent.
async fn task_descriptions<C: SalesforceApi>(
    session: &C,
    outcomes: &[&CallOutcome],
) -> Result<HashMap<String, TaskNow>, WorkError> {
    // One query per kind of activity present (Tasks; Events for meetings).
    let mut rows = Vec::new();
    for activity in [Activity::Task, Activity::Event] {
        let ids: Vec<String> = outcomes
            .iter()
            .filter(|o| o.activity == activity)
            .filter_map(|o| o.task_id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let select = Select::new(
            activity.object(),
            &["Id", "Description", "LastModifiedDate"],
        )
        .filter(Cond::is_in("Id", ids));
        rows.extend(session.query_select(&select, false).await?);
    }
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let id = r.get("Id")?.as_str()?.to_string();
            let last_modified = r
                .get("LastModifiedDate")
                .and_then(Value::as_str)
                .and_then(parse_datetime)?;
            let description = r
                .get("Description")
                .and_then(Value::as_str)
                .map(str::to_string);
            Some((
                id15(&id).to_string(),
                TaskNow {
                    description,
                    last_modified,
                },
            ))
        })
        .collect())
}

/// Records what the rounds did: the pending flag cleared once the Task is in
/// step, a deleted Task recorded. The verdict of each call.
async fn settle<S: CallStore>(
    store: &S,
    tenant: &TenantId,
    outcomes: &[CallOutcome],
    ends: &[Option<Round>],
) -> Vec<Verdict> {
    let mut changed: Vec<(usize, CallOutcome)> = Vec::new();
    let mut verdicts: Vec<Verdict> = ends
        .iter()
        .map(|end| match end {
            Some(Round::Shown | Round::TaskDeleted | Round::Given) => Verdict::Done,
            // Still changing after every round, a transient failure, or not reached.
            Some(Round::Again | Round::Retry) | None => Verdict::Retry,
        })
        .collect();
    for (k, (o, end)) in outcomes.iter().zip(ends).enumerate() {
        let task_deleted = *end == Some(Round::TaskDeleted);
        let shown = *end == Some(Round::Shown);
        if !(task_deleted || (shown && o.comments_pending)) {
            continue;
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
        changed.push((k, updated));
    }
    if changed.is_empty() {
        return verdicts;
    }
    let only: Vec<CallOutcome> = changed.iter().map(|(_, o)| o.clone()).collect();
    match store.save_outcomes(tenant, &only).await {
        Ok(results) => {
            for ((k, _), result) in changed.iter().zip(results) {
                // Someone else changed the outcome (a newer render): SQS redelivers,
                // and the next look re-checks.
                if result.is_err() {
                    verdicts[*k] = Verdict::Retry;
                }
            }
        }
        Err(_) => changed
            .iter()
            .for_each(|(k, _)| verdicts[*k] = Verdict::Retry),
    }
    verdicts
}

/// Calls whose comments cannot be shown now (reconnect needed, Salesforce down):
/// marked pending, the sync renders them when Salesforce answers again. An
/// outcome changed meanwhile (a Note, a re-match, another render) is read again
/// and marked as it is now: a comment must never be left neither shown nor
/// pending, since the call's own delivery may already be acknowledged.
pub(crate) async fn mark_pending<S: CallStore>(
    store: &S,
    tenant: &TenantId,
    outcomes: &[CallOutcome],
    reason: &str,
) -> Vec<Verdict> {
    let mut verdicts = vec![Verdict::Retry; outcomes.len()];
    let mut todo: Vec<(usize, CallOutcome)> = outcomes.iter().cloned().enumerate().collect();
    for attempt in 0..MARK_PENDING_ATTEMPTS {
        if todo.is_empty() {
            break;
        }
        if attempt > 0 {
            let ids: Vec<String> = todo.iter().map(|(_, o)| o.call_id.clone()).collect();
            let Ok(fresh) = store.get_outcomes(tenant, &ids).await else {
                break;
            };
            todo = todo
                .into_iter()
                .filter_map(|(k, o)| {
                    let now = fresh.iter().find(|f| f.call_id == o.call_id)?;
                    Some((k, now.clone()))
                })
                .collect();
        }
        let pending: Vec<CallOutcome> = todo
            .iter()
            .map(|(_, o)| CallOutcome {
                comments_pending: true,
                updated_at: Utc::now(),
                ..o.clone()
            })
            .collect();
        for o in &pending {
            tracing::info!(tenant_id = %tenant, call_id = %o.call_id, reason, "comments pending");
        }
        let Ok(results) = store.save_outcomes(tenant, &pending).await else {
            break;
        };
        let mut changed = Vec::new();
        for ((k, o), result) in todo.into_iter().zip(results) {
            match result {
                Ok(_) => verdicts[k] = Verdict::Done,
                Err(_) => changed.push((k, o)),
            }
        }
        todo = changed;
    }
    verdicts
}

/// The sync's share: calls whose comments waited (reconnect, outage) are rendered.
pub async fn render_pending<S: CallStore + CommentStore, C: SalesforceApi>(
    store: &S,
    session: &C,
) -> Result<usize, StoreError> {
    let tenant = session.tenant().clone();
    let mut rendered = 0;
    let mut token = None;
    loop {
        let page = store.pending_comment_calls(&tenant, token).await?;
        for chunk in page.items.chunks(200) {
            let verdicts = render_calls(store, session, chunk).await;
            rendered += verdicts.iter().filter(|v| **v == Verdict::Done).count();
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(rendered),
        }
    }
}
