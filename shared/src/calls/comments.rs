//! The comments of the calls being logged (DESIGN §3, §6). Comment-sync leaves a
//! call that is not logged yet to its logger, so the logger owes every comment
//! stored before its outcome made the call final: shown on the activity, or
//! marked pending for the next sync.
//!
//! - **Before the activity is written**, the comments are read with their
//!   comment-state version ([`load`]), and the activity carries them.
//! - **After the outcome is written**, comments stored meanwhile are rendered
//!   again ([`since_logging`]).
//! - **When the call is delivered again** after it was logged ([`of_redelivered`]),
//!   its comments are rendered again. An invocation that died between recording
//!   the call and showing those comments left them neither shown nor pending, and
//!   SQS delivering the call again (the dead invocation never acknowledged it) is
//!   what finds them. It costs one query per batch, and nothing is written when
//!   the activity already shows them.
//!
//! A call whose comments could be neither shown nor marked pending is not
//! acknowledged: its redelivery tries again.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use super::claim::{Claimed, Final};
use crate::batch::Verdict;
use crate::comments::render::{mark_pending, render_calls};
use crate::domain::{CallOutcome, StoredComment, TenantId};
use crate::ports::{CallStore, CommentStore, SalesforceApi};
use crate::work::WorkError;

/// Calls whose comments are read at once.
const COMMENT_READS: usize = 16;

/// The comments of the calls that will have an activity: one read of their
/// comment states, then each call's comments, several at a time.
pub(super) async fn load<S: CommentStore>(
    store: &S,
    tenant: &TenantId,
    claimed: &mut [Claimed],
) -> Result<(), WorkError> {
    let ids: Vec<String> = claimed
        .iter()
        .filter(|c| c.end.is_none() && c.matched())
        .map(|c| c.call.call_id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let with_comments = store.comment_versions(tenant, &ids).await?;
    for c in claimed.iter_mut() {
        c.comments_version = with_comments.get(&c.call.call_id).copied();
    }
    let reads = with_comments.into_keys().map(|call_id| async move {
        let comments = store.comments_for_call(tenant, &call_id).await?;
        Ok::<_, WorkError>((call_id, comments))
    });
    let mut comments: HashMap<String, Vec<StoredComment>> = futures::stream::iter(reads)
        .buffer_unordered(COMMENT_READS)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for c in claimed.iter_mut() {
        c.comments = comments.remove(&c.call.call_id).unwrap_or_default();
    }
    Ok(())
}

/// Comments stored while the calls were being logged (after [`load`] read them):
/// the activities just written are rendered again, and what cannot be shown now
/// waits as pending comments. Returns the calls left with comments neither shown
/// nor pending: their deliveries must not be acknowledged.
pub(super) async fn since_logging<S: CallStore + CommentStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    claimed: &[Claimed],
    logged: Vec<CallOutcome>,
) -> HashSet<String> {
    if logged.is_empty() {
        return HashSet::new();
    }
    let tenant = session.tenant();
    let ids: Vec<String> = logged.iter().map(|o| o.call_id.clone()).collect();
    let now = match store.comment_versions(tenant, &ids).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(tenant_id = %tenant, error = %e, "comment states not re-read; the calls are delivered again");
            return ids.into_iter().collect();
        }
    };
    let read_then = |call_id: &str| {
        claimed
            .iter()
            .find(|c| c.call.call_id == call_id)
            .and_then(|c| c.comments_version)
    };
    let changed: Vec<CallOutcome> = logged
        .into_iter()
        .filter(|o| now.get(&o.call_id).copied() != read_then(&o.call_id))
        .collect();
    if changed.is_empty() {
        return HashSet::new();
    }
    tracing::info!(tenant_id = %tenant, calls = changed.len(), "comments came in while logging: rendering again");
    show_or_pend(
        store,
        Some(session),
        tenant,
        changed,
        "comments came in while the call was being logged",
    )
    .await
}

/// Calls delivered again after they were logged: those with comments have them
/// rendered again (or marked pending when Salesforce cannot be used now). Returns
/// the deliveries to retry.
pub(super) async fn of_redelivered<S: CallStore + CommentStore, C: SalesforceApi>(
    store: &S,
    session: Option<&C>,
    tenant: &TenantId,
    finals: &[Final],
) -> HashSet<usize> {
    let shown_on_activity = |o: &CallOutcome| {
        o.is_final() && o.task_id.is_some() && !o.task_deleted && !o.comments_pending
    };
    let logged: Vec<&Final> = finals
        .iter()
        .filter(|f| shown_on_activity(&f.outcome))
        .collect();
    if logged.is_empty() {
        return HashSet::new();
    }
    let ids: Vec<String> = logged.iter().map(|f| f.outcome.call_id.clone()).collect();
    let with_comments = match store.comment_versions(tenant, &ids).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(tenant_id = %tenant, error = %e, "comment states not read; the calls are delivered again");
            return logged.iter().map(|f| f.delivery).collect();
        }
    };
    let outcomes: Vec<CallOutcome> = logged
        .iter()
        .filter(|f| with_comments.contains_key(&f.outcome.call_id))
        .map(|f| f.outcome.clone())
        .collect();
    if outcomes.is_empty() {
        return HashSet::new();
    }
    let left = show_or_pend(
        store,
        session,
        tenant,
        outcomes,
        "comments of a call delivered again could not be shown now",
    )
    .await;
    logged
        .iter()
        .filter(|f| left.contains(&f.outcome.call_id))
        .map(|f| f.delivery)
        .collect()
}

/// Renders the comments of `outcomes` (with a session), and marks pending those
/// it could not show. Returns the calls left neither shown nor pending.
async fn show_or_pend<S: CallStore + CommentStore, C: SalesforceApi>(
    store: &S,
    session: Option<&C>,
    tenant: &TenantId,
    outcomes: Vec<CallOutcome>,
    reason: &str,
) -> HashSet<String> {
    let verdicts = match session {
        Some(session) => render_calls(store, session, &outcomes).await,
        None => vec![Verdict::Retry; outcomes.len()],
    };
    let left: Vec<CallOutcome> = outcomes
        .into_iter()
        .zip(verdicts)
        .filter(|(_, v)| v.is_retry())
        .map(|(o, _)| o)
        .collect();
    if left.is_empty() {
        return HashSet::new();
    }
    let marked = mark_pending(store, tenant, &left, reason).await;
    left.into_iter()
        .zip(marked)
        .filter(|(_, v)| v.is_retry())
        .map(|(o, _)| {
            tracing::warn!(tenant_id = %tenant, call_id = %o.call_id, "comments neither shown nor marked pending; the call is delivered again");
            o.call_id
        })
        .collect()
}
