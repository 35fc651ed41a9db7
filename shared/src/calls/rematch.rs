//! Re-matching (issue 19): calls that found no record, or only an account or a
//! lead, are matched again when the sync brings new or changed contacts, leads or
//! accounts, for the tenant's window (30 days by default) after they started.
//!
//! Bounded and budgeted:
//! - the calls come from a sparse listing of the outcomes that can still improve
//!   ([`CallOutcome::can_improve`]), read in pages; the candidates from the index
//!   only (no Salesforce reads to find them, no SOSL);
//! - per page: one Task query (the Tasks to re-point, and ours or a dialer's for
//!   the unmatched calls), one collections create, one collections update;
//! - the pass runs inside the sync job's deadline and API budget, and carries on
//!   in the next job from where it stopped ([`RematchProgress`]).
//!
//! Rules:
//! - an unmatched call that now matches gets its Task, as the call logger would
//!   have created it (a dialer's Task found meanwhile is enriched instead);
//! - a Task Modjo created on an account or a lead is re-pointed only when the new
//!   match is better ([`MatchLevel`]) and its Who and What in Salesforce are still
//!   those Modjo wrote: a Task someone re-pointed, or deleted, is left alone and
//!   drops out of re-matching; dialer Tasks are never re-pointed;
//! - an outcome is written only if nobody wrote it meanwhile, or if what they
//!   wrote left the match as it was (a comment): a newer match is never overwritten.

use std::collections::HashMap;

use chrono::Utc;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::candidates::{self, Lookup};
use super::claim::Claimed;
use super::outcomes::{self, End};
use super::{CallLoggerStore, comments, events, tasks};
use crate::domain::call_event::CallEvent;
use crate::domain::matching::Decision;
use crate::domain::{
    CallOutcome, CallState, Connection, LinkedRecord, MatchLevel, ModjoMatch, Rematch,
    RematchProgress,
};
use crate::ports::{CallStore, CommentStore, ConnectionStore, SalesforceApi, StoreError};
use crate::salesforce::RecordUpdate;
use crate::salesforce::id::same_id;
use crate::salesforce::soql::{Cond, Select};
use crate::work::WorkError;
use crate::work::update_connection;

/// Calls per page of the listing: each page is one Task query and at most one
/// collections create and one update (200 records each).
pub const PAGE: usize = 100;

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RematchRun {
    /// Calls of the window matched again.
    pub examined: u64,
    /// Calls whose Task was created or re-pointed.
    pub rematched: u64,
    /// Tasks left alone for good: re-pointed in Salesforce, or deleted.
    pub left_alone: u64,
    pub stopped: Option<RematchStop>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RematchStop {
    /// The job's time is up: the next job carries on.
    Deadline,
    /// The org's API usage reached the sync's pause threshold.
    Budget,
}

/// Notes that the sync brought records calls may now match: a pass is owed.
pub async fn request<S: ConnectionStore>(
    store: &S,
    tenant: &crate::domain::TenantId,
) -> Result<(), StoreError> {
    let now = Utc::now();
    update_connection(store, tenant, |c| {
        let next = RematchProgress::request(c.rematch.clone(), now);
        let changed = c.rematch.as_ref() != Some(&next);
        c.rematch = Some(next);
        changed
    })
    .await
    .map(|_| ())
}

/// Re-matches the calls owed a pass, page by page, until the pass is done, the
/// deadline passes or the budget is spent (`over_budget`).
pub async fn run<S: CallLoggerStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    stop_at: Instant,
    over_budget: impl Fn() -> bool,
) -> Result<RematchRun, WorkError> {
    let tenant = session.tenant();
    let mut run = RematchRun::default();
    let Some(connection) = store.get_connection(tenant).await? else {
        return Ok(run);
    };
    let Some(mut progress) = connection.rematch.clone() else {
        return Ok(run);
    };
    let since = Utc::now() - chrono::Duration::days(i64::from(connection.rematch_days));
    loop {
        if Instant::now() >= stop_at {
            run.stopped = Some(RematchStop::Deadline);
            break;
        }
        if over_budget() {
            run.stopped = Some(RematchStop::Budget);
            break;
        }
        let page = store
            .rematch_calls(tenant, since, PAGE, progress.after.clone())
            .await?;
        run.examined += page.items.len() as u64;
        rematch_page(store, session, &connection, page.items, &mut run).await?;
        progress.after = page.next;
        if progress.after.is_none() {
            if !progress.again {
                save_progress(store, tenant, None).await?;
                break;
            }
            // Records changed while this pass ran: once more from the start.
            progress = RematchProgress {
                requested_at: Utc::now(),
                after: None,
                again: false,
            };
        }
        save_progress(store, tenant, Some(progress.clone())).await?;
    }
    tracing::info!(tenant_id = %tenant, examined = run.examined, rematched = run.rematched, left_alone = run.left_alone, stopped = ?run.stopped, "calls re-matched");
    Ok(run)
}

async fn save_progress<S: ConnectionStore>(
    store: &S,
    tenant: &crate::domain::TenantId,
    progress: Option<RematchProgress>,
) -> Result<(), StoreError> {
    update_connection(store, tenant, |c| {
        let changed = c.rematch != progress;
        c.rematch = progress.clone();
        changed
    })
    .await
    .map(|_| ())
}

/// A call of the page, with what it was and what it could become.
struct Candidate {
    before: CallOutcome,
    work: Claimed,
    decision: Decision,
}

async fn rematch_page<S: CallLoggerStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    connection: &Connection,
    outcomes: Vec<CallOutcome>,
    run: &mut RematchRun,
) -> Result<(), WorkError> {
    let (before, mut work): (Vec<CallOutcome>, Vec<Claimed>) = outcomes
        .into_iter()
        .filter(CallOutcome::can_improve)
        .filter_map(|o| {
            let call = CallEvent::parse(o.message.as_deref()?).ok()?;
            let version = o.version;
            Some((o, Claimed::rematching(call, version)))
        })
        .unzip();
    if work.is_empty() {
        return Ok(());
    }
    candidates::decide(store, session, connection, &mut work, Lookup::IndexOnly).await?;
    // Only calls the new match improves go on.
    let (mut unmatched, mut logged) = (Vec::new(), Vec::new());
    for (before, work) in before.into_iter().zip(work) {
        let Some(decision) = work.decision.clone() else {
            continue;
        };
        let now = MatchLevel::of(
            decision.who.as_ref().map(|c| c.id.as_str()),
            decision.what.as_ref().map(|(id, _)| id.as_str()),
        );
        if now <= before.level() {
            continue;
        }
        let c = Candidate {
            before,
            work,
            decision,
        };
        match c.before.state {
            CallState::Unmatched => unmatched.push(c),
            _ => logged.push(c),
        }
    }
    let mut saves: Vec<(CallOutcome, CallOutcome)> = Vec::new();
    saves.extend(create_tasks(store, session, connection, unmatched).await?);
    saves.extend(repoint_tasks(session, logged, run).await?);
    run.rematched += saves
        .iter()
        .filter(|(b, a)| a.level() > b.level() && a.modjo_match.is_none())
        .count() as u64;
    save(store, session.tenant(), saves).await?;
    Ok(())
}

/// Unmatched calls that now match: their Tasks, as the call logger writes them.
async fn create_tasks<S: CommentStore + ConnectionStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    connection: &Connection,
    calls: Vec<Candidate>,
) -> Result<Vec<(CallOutcome, CallOutcome)>, WorkError> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let (befores, mut work): (Vec<CallOutcome>, Vec<Claimed>) =
        calls.into_iter().map(|c| (c.before, c.work)).unzip();
    comments::load(store, session.tenant(), &mut work).await?;
    // As the call logger writes them: a meeting on its calendar's Event.
    events::write(session, &mut work).await?;
    tasks::write(session, connection, &mut work).await?;
    let mut saves = Vec::new();
    for (before, w) in befores.into_iter().zip(work) {
        if !matches!(w.end, Some(End::Logged { .. })) {
            // Refused or transient: the call stays unmatched and listed.
            tracing::warn!(tenant_id = %session.tenant(), call_id = %w.call.call_id, end = ?w.end, "re-matched call not logged");
            continue;
        }
        let message = before.message.clone().unwrap_or_default();
        let mut after = outcomes::outcome_of(&w, &message, connection.retention_days);
        after.rematches = before.rematches.clone();
        after.rematches.push(Rematch {
            at: Utc::now(),
            reason: format!(
                "the sync brought a matching record: {}",
                after.reason.clone().unwrap_or_default()
            ),
            from_who_id: None,
            from_what_id: None,
        });
        saves.push((before, after));
    }
    Ok(saves)
}

/// Tasks Modjo created on an account or a lead, re-pointed to the better match
/// when Salesforce still has the Who and What Modjo wrote.
async fn repoint_tasks<C: SalesforceApi>(
    session: &C,
    calls: Vec<Candidate>,
    run: &mut RematchRun,
) -> Result<Vec<(CallOutcome, CallOutcome)>, WorkError> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = calls
        .iter()
        .filter_map(|c| c.before.task_id.clone())
        .collect();
    let select = Select::new("Task", &["Id", "WhoId", "WhatId"]).filter(Cond::is_in("Id", ids));
    let current: Vec<Map<String, Value>> = session.query_select(&select, false).await?;
    let field =
        |t: &Map<String, Value>, k: &str| t.get(k).and_then(Value::as_str).map(str::to_string);
    let same = |a: Option<&str>, b: Option<&str>| match (a, b) {
        (Some(a), Some(b)) => same_id(a, b),
        (None, None) => true,
        _ => false,
    };
    let mut saves = Vec::new();
    let mut planned: Vec<(CallOutcome, CallOutcome)> = Vec::new();
    let mut updates: Vec<RecordUpdate> = Vec::new();
    for c in calls {
        let decision = &c.decision;
        let who = decision.who.as_ref().map(|w| w.id.clone());
        let what = decision.what.as_ref().map(|(id, _)| id.clone());
        let linked = links(&c.work, who.as_deref(), what.as_deref());
        let task_id = c.before.task_id.clone().unwrap_or_default();
        let task = current
            .iter()
            .find(|t| field(t, "Id").is_some_and(|id| same_id(&id, &task_id)));
        let mut after = CallOutcome {
            updated_at: Utc::now(),
            ..c.before.clone()
        };
        match task {
            None => {
                after.task_deleted = true;
                run.left_alone += 1;
                saves.push((c.before, after));
            }
            Some(t)
                if !same(field(t, "WhoId").as_deref(), c.before.who_id.as_deref())
                    || !same(field(t, "WhatId").as_deref(), c.before.what_id.as_deref()) =>
            {
                after.who_id = field(t, "WhoId");
                after.what_id = field(t, "WhatId");
                after.linked = [&after.who_id, &after.what_id]
                    .into_iter()
                    .flatten()
                    .map(|id| LinkedRecord {
                        id: id.clone(),
                        object: outcomes::object_of(id).to_string(),
                        name: None,
                    })
                    .collect();
                after.modjo_match = Some(ModjoMatch {
                    who_id: who,
                    what_id: what,
                    linked,
                    reason:
                        "the Task's Who and What were changed in Salesforce: it is not re-pointed"
                            .into(),
                });
                run.left_alone += 1;
                saves.push((c.before, after));
            }
            Some(_) => {
                let mut fields = Map::new();
                fields.insert("WhoId".into(), json!(who));
                // A lead takes no What (Salesforce refuses the pair): cleared.
                fields.insert("WhatId".into(), json!(what));
                updates.push(RecordUpdate {
                    object: "Task",
                    id: task_id,
                    fields,
                });
                after.who_id = who;
                after.what_id = what;
                after.linked = linked;
                after.reason = Some(decision.reason.clone());
                after.rematches.push(Rematch {
                    at: Utc::now(),
                    reason: format!("a better match came with the sync: {}", decision.reason),
                    from_who_id: c.before.who_id.clone(),
                    from_what_id: c.before.what_id.clone(),
                });
                planned.push((c.before, after));
            }
        }
    }
    if !updates.is_empty() {
        let results = session.update_many(&updates).await?;
        for (pair, result) in planned.into_iter().zip(results) {
            if result.success {
                saves.push(pair);
            } else {
                tracing::warn!(tenant_id = %session.tenant(), call_id = %pair.0.call_id, errors = ?result.errors, "Task not re-pointed");
            }
        }
    }
    Ok(saves)
}

fn links(w: &Claimed, who: Option<&str>, what: Option<&str>) -> Vec<LinkedRecord> {
    let who_name = w
        .decision
        .as_ref()
        .and_then(|d| d.who.as_ref())
        .and_then(|c| c.name.clone());
    who.map(|id| (id, who_name))
        .into_iter()
        .chain(what.map(|id| (id, w.names.get(id).cloned())))
        .map(|(id, name)| LinkedRecord {
            id: id.to_string(),
            object: outcomes::object_of(id).to_string(),
            name,
        })
        .collect()
}

/// Writes each re-matched outcome if nobody wrote it meanwhile. One that was
/// written meanwhile is read again: if its match is still the one re-matching
/// started from (a comment came), the re-match is applied onto it; otherwise the
/// newer outcome stands.
async fn save<S: CallStore>(
    store: &S,
    tenant: &crate::domain::TenantId,
    saves: Vec<(CallOutcome, CallOutcome)>,
) -> Result<(), StoreError> {
    if saves.is_empty() {
        return Ok(());
    }
    let afters: Vec<CallOutcome> = saves.iter().map(|(_, a)| a.clone()).collect();
    let results = store.save_outcomes(tenant, &afters).await?;
    let lost: Vec<&(CallOutcome, CallOutcome)> = saves
        .iter()
        .zip(results)
        .filter_map(|(pair, r)| match r {
            Err(StoreError::Conflict(_)) => Some(pair),
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, call_id = %pair.0.call_id, error = %e, "re-match not recorded; the next pass tries again");
                None
            }
            Ok(_) => None,
        })
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = lost.iter().map(|(b, _)| b.call_id.clone()).collect();
    let fresh: HashMap<String, CallOutcome> = store
        .get_outcomes(tenant, &ids)
        .await?
        .into_iter()
        .map(|o| (o.call_id.clone(), o))
        .collect();
    let mut again = Vec::new();
    for (before, after) in lost {
        let Some(now) = fresh.get(&before.call_id) else {
            continue;
        };
        if same_match(now, before) {
            again.push(CallOutcome {
                version: now.version,
                comments_pending: now.comments_pending,
                ..after.clone()
            });
        } else {
            tracing::info!(tenant_id = %tenant, call_id = %before.call_id, "the call changed while it was re-matched: the newer outcome stands");
        }
    }
    if !again.is_empty() {
        for (o, r) in again.iter().zip(store.save_outcomes(tenant, &again).await?) {
            if let Err(e) = r {
                tracing::info!(tenant_id = %tenant, call_id = %o.call_id, error = %e, "re-match not recorded; the next pass tries again");
            }
        }
    }
    Ok(())
}

/// The same match and Task: what re-matching decided on still holds.
fn same_match(a: &CallOutcome, b: &CallOutcome) -> bool {
    a.state == b.state
        && a.task_id == b.task_id
        && a.who_id == b.who_id
        && a.what_id == b.what_id
        && a.modjo_match == b.modjo_match
        && a.task_deleted == b.task_deleted
}
