//! Phase 7c: summaries as Notes (issue 20). With the tenant's setting on, a
//! logged call's summary, highlights and rep's notes are also written as a
//! Salesforce Note (`ContentNote`), linked to the Who and What of its activity.
//!
//! - **Created** with the call: after its Task or Event, one composite request
//!   for the batch's Notes and their links.
//! - **Never duplicated.** A Note's title ends with the call's id. When the
//!   call's activity was found already written (an earlier invocation crashed
//!   before recording its outcome), one query looks for the batch's Notes by
//!   title, and one for their links, before anything is created.
//! - **Updated, removed.** A call delivered again after it was logged is not
//!   logged again, but its Note follows the message and the setting
//!   ([`refresh`]): written again when its content changed, created when the
//!   setting was turned on, deleted when it was turned off (or nothing is left
//!   to show). The outcome records the Note's id and digest.
//! - **Never fails a call.** A refusal of the Note (Notes not enabled, a
//!   missing permission, Salesforce down) leaves the call logged; its outcome
//!   says why it has no Note, and Notes not enabled shows in the tenant's status.

use std::collections::{HashMap, HashSet};

use super::claim::{Claimed, Final};
use super::outcomes::End;
use super::{Delivery, Verdict};
use crate::domain::note::NoteContent;
use crate::domain::{CallNote, CallOutcome, CallState, Connection, TenantId};
use crate::ports::{CallStore, ConnectionStore, SalesforceApi};
use crate::salesforce::soql::{Cond, Select};
use crate::salesforce::{ApiError, NoteWrite, NoteWritten, SalesforceError};
use crate::work::update_connection;

/// The status line when the org's Notes are off: the permissions check's words
/// and the guide's step 4.
pub const NOTES_NOT_ENABLED: &str = "Notes are not enabled in the org: meeting summaries cannot be \
     saved as Notes (calls are still logged). Guide step 4: Setup → Notes Settings → Enable Notes.";

/// One call's Note work.
struct Job {
    /// Index of the call (in `work` or in the finals).
    call: usize,
    content: Option<NoteContent>,
    /// The Note the call has (recorded, or found by its title).
    current: Option<String>,
    /// The records it must be linked to.
    link_to: Vec<String>,
    /// Look for a Note written before by its title, first.
    look_up: bool,
}

/// How a call's Note work ended.
struct Done {
    note: Option<CallNote>,
    /// The Note recorded before stays recorded as it was (its write failed).
    keep: bool,
    problem: Option<String>,
    notes_off: bool,
}

impl Done {
    fn with(note: Option<CallNote>, problem: Option<String>) -> Self {
        Self {
            note,
            keep: false,
            problem,
            notes_off: false,
        }
    }

    fn failed(problem: String, notes_off: bool) -> Self {
        Self {
            note: None,
            keep: true,
            problem: Some(problem),
            notes_off,
        }
    }
}

/// The Notes of the calls logged in this invocation.
pub(super) async fn write<S: ConnectionStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    connection: &Connection,
    work: &mut [Claimed],
) {
    if !connection.summaries_as_notes {
        return;
    }
    let jobs: Vec<Job> = work
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let Some(End::Logged { task, .. }) = &w.end else {
                return None;
            };
            let content = NoteContent::of(&w.call)?;
            Some(Job {
                call: i,
                content: Some(content),
                current: None,
                link_to: task.who_id.iter().chain(&task.what_id).cloned().collect(),
                look_up: w.written_before,
            })
        })
        .collect();
    if jobs.is_empty() {
        return;
    }
    let done = run(session, jobs).await;
    let mut notes_off = false;
    let mut written = false;
    for (i, d) in done {
        notes_off |= d.notes_off;
        written |= d.note.is_some();
        work[i].note = d.note;
        work[i].note_problem = d.problem;
    }
    tenant_status(store, session.tenant(), connection, notes_off, written).await;
}

/// Calls delivered again after they were logged whose Note must change: the
/// verdict of each final call, once its Note and outcome are up to date.
pub(super) async fn refresh<S: CallStore + ConnectionStore, C: SalesforceApi>(
    store: &S,
    session: Option<&C>,
    connection: &Connection,
    finals: Vec<Final>,
    deliveries: &[Delivery],
) -> Vec<(usize, Verdict)> {
    let (changing, same): (Vec<Final>, Vec<Final>) = finals
        .into_iter()
        .partition(|f| needs_change(connection, f));
    let mut verdicts: Vec<(usize, Verdict)> =
        same.iter().map(|f| (f.delivery, Verdict::Done)).collect();
    let Some(session) = session.filter(|_| !changing.is_empty()) else {
        if !changing.is_empty() {
            tracing::info!(tenant_id = %connection.tenant_id, calls = changing.len(), "Notes not refreshed: Salesforce cannot be reached now");
        }
        verdicts.extend(changing.iter().map(|f| (f.delivery, Verdict::Done)));
        return verdicts;
    };
    let jobs: Vec<Job> = changing
        .iter()
        .enumerate()
        .map(|(i, f)| Job {
            call: i,
            content: wanted(connection, f),
            current: f.outcome.note.as_ref().map(|n| n.id.clone()),
            link_to: f
                .outcome
                .who_id
                .iter()
                .chain(&f.outcome.what_id)
                .cloned()
                .collect(),
            look_up: f.outcome.note.is_none(),
        })
        .collect();
    let done: HashMap<usize, Done> = run(session, jobs).await.into_iter().collect();
    let (mut notes_off, mut written) = (false, false);
    for (i, f) in changing.into_iter().enumerate() {
        let Some(d) = done.get(&i) else {
            verdicts.push((f.delivery, Verdict::Retry));
            continue;
        };
        notes_off |= d.notes_off;
        written |= d.note.is_some();
        let outcome = CallOutcome {
            note: if d.keep {
                f.outcome.note.clone()
            } else {
                d.note.clone()
            },
            note_problem: d.problem.clone(),
            message: Some(deliveries[f.delivery].body.clone()),
            updated_at: chrono::Utc::now(),
            ..f.outcome
        };
        let verdict = match store.save_outcome(session.tenant(), &outcome).await {
            Ok(_) => Verdict::Done,
            // Changed meanwhile (a comment, a re-match): the next delivery sees it.
            Err(e) => {
                tracing::warn!(tenant_id = %session.tenant(), call_id = %outcome.call_id, error = %e, "the Note's outcome was not saved; SQS redelivers the call");
                Verdict::Retry
            }
        };
        verdicts.push((f.delivery, verdict));
    }
    tenant_status(store, session.tenant(), connection, notes_off, written).await;
    verdicts
}

/// The Note a final call should have now.
fn wanted(connection: &Connection, f: &Final) -> Option<NoteContent> {
    let logged = matches!(f.outcome.state, CallState::Created | CallState::Enriched)
        && f.outcome.task_id.is_some()
        && (f.outcome.who_id.is_some() || f.outcome.what_id.is_some());
    if !connection.summaries_as_notes || !logged {
        return None;
    }
    NoteContent::of(&f.call)
}

fn needs_change(connection: &Connection, f: &Final) -> bool {
    let want = wanted(connection, f).map(|c| c.digest());
    let have = f.outcome.note.as_ref().map(|n| n.digest.clone());
    want != have
}

/// The Salesforce work of `jobs`: look-ups where needed, then one set of
/// composite requests. How each job ended, by its call.
async fn run<C: SalesforceApi>(session: &C, mut jobs: Vec<Job>) -> Vec<(usize, Done)> {
    let mut ended: Vec<(usize, Done)> = Vec::new();
    // Notes written before this invocation knew of them: found by title.
    let titles: Vec<String> = jobs
        .iter()
        .filter(|j| j.look_up && j.current.is_none())
        .filter_map(|j| j.content.as_ref().map(|c| c.title.clone()))
        .collect();
    let mut linked: HashSet<(String, String)> = HashSet::new();
    if !titles.is_empty() {
        match earlier_notes(session, &titles).await {
            Ok((by_title, links)) => {
                linked = links;
                for j in jobs.iter_mut().filter(|j| j.look_up && j.current.is_none()) {
                    if let Some(c) = &j.content {
                        j.current = by_title.get(&c.title).cloned();
                    }
                }
            }
            Err(e) => {
                // Creating now could duplicate a Note: these calls wait for their
                // next delivery instead.
                let (blind, rest): (Vec<Job>, Vec<Job>) = jobs
                    .into_iter()
                    .partition(|j| j.look_up && j.current.is_none() && j.content.is_some());
                jobs = rest;
                let (problem, notes_off) = refused_whole(&e);
                ended.extend(
                    blind
                        .into_iter()
                        .map(|j| (j.call, Done::failed(problem.clone(), notes_off))),
                );
            }
        }
    }
    let mut writes = Vec::new();
    let mut planned = Vec::new();
    for j in jobs {
        let write = match (&j.content, &j.current) {
            (Some(c), None) => NoteWrite::Create {
                title: c.title.clone(),
                content: c.base64(),
                link_to: j.link_to.clone(),
            },
            (Some(c), Some(id)) => NoteWrite::Update {
                id: id.clone(),
                title: c.title.clone(),
                content: c.base64(),
                link_to: j
                    .link_to
                    .iter()
                    .filter(|e| !linked.contains(&(id.clone(), short(e))))
                    .cloned()
                    .collect(),
            },
            (None, Some(id)) => NoteWrite::Delete { id: id.clone() },
            (None, None) => {
                ended.push((j.call, Done::with(None, None)));
                continue;
            }
        };
        writes.push(write);
        planned.push(j);
    }
    if writes.is_empty() {
        return ended;
    }
    match session.write_notes(&writes).await {
        Ok(results) => {
            for ((j, w), r) in planned.into_iter().zip(&writes).zip(results) {
                ended.push((j.call, ended_by(&j, w, &r)));
            }
        }
        Err(e) => {
            let (problem, notes_off) = refused_whole(&e);
            tracing::warn!(tenant_id = %session.tenant(), error = %e, "Notes not written");
            // A Note we had stays recorded: the next delivery tries again.
            ended.extend(
                planned
                    .into_iter()
                    .map(|j| (j.call, Done::failed(problem.clone(), notes_off))),
            );
        }
    }
    ended
}

/// How one Note write ended its call.
fn ended_by(j: &Job, w: &NoteWrite, r: &NoteWritten) -> Done {
    let gone = r.errors.iter().any(|e| {
        matches!(
            e.code.as_str(),
            "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY"
        )
    });
    match w {
        // Deleted, or already gone: the call has no Note either way.
        NoteWrite::Delete { .. } if r.ok() || gone => return Done::with(None, None),
        // Deleted in Salesforce by someone: written again on the next change.
        NoteWrite::Update { .. } if gone => {
            return Done::with(None, Some("the Note was deleted in Salesforce".into()));
        }
        _ => {}
    }
    if !r.ok() {
        let notes_off = notes_disabled(&r.errors);
        let problem = if notes_off {
            NOTES_NOT_ENABLED.to_string()
        } else {
            format!("Salesforce refused the Note: {}", codes(&r.errors))
        };
        return Done::failed(problem, notes_off);
    }
    let digest = j
        .content
        .as_ref()
        .map(NoteContent::digest)
        .unwrap_or_default();
    // A link refused as a duplicate is there already.
    let unlinked: Vec<String> = r
        .unlinked
        .iter()
        .filter(|(_, errors)| !errors.iter().any(|e| e.code == "DUPLICATE_VALUE"))
        .map(|(entity, errors)| format!("{entity} ({})", codes(errors)))
        .collect();
    Done::with(
        r.id.clone().map(|id| CallNote { id, digest }),
        (!unlinked.is_empty())
            .then(|| format!("the Note is not linked to {}", unlinked.join(", "))),
    )
}

/// Whether Salesforce's refusal says the org's Notes are off: the object is
/// then unknown to the API (`NOT_FOUND` on its resource, `INVALID_TYPE` in a
/// query or collection; the exact answer is unconfirmed, see docs/notes.md).
fn notes_disabled(errors: &[ApiError]) -> bool {
    errors
        .iter()
        .any(|e| matches!(e.code.as_str(), "NOT_FOUND" | "INVALID_TYPE"))
}

/// A request refused as a whole: the problem it gives each call, and whether
/// it says Notes are off.
fn refused_whole(e: &SalesforceError) -> (String, bool) {
    match e {
        SalesforceError::Api { errors, .. } if notes_disabled(errors) => {
            (NOTES_NOT_ENABLED.to_string(), true)
        }
        e => (
            format!(
                "the Note was not written ({e}); it is written when the call is next delivered"
            ),
            false,
        ),
    }
}

fn codes(errors: &[ApiError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.code, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A record id's 15-character form (links come back in 18).
fn short(id: &str) -> String {
    id.get(..15).unwrap_or(id).to_string()
}

/// Our Notes among `titles`, by title, and the records each is linked to
/// (15-character ids): two queries.
async fn earlier_notes<C: SalesforceApi>(
    session: &C,
    titles: &[String],
) -> Result<(HashMap<String, String>, HashSet<(String, String)>), SalesforceError> {
    let select =
        Select::new("ContentNote", &["Id", "Title"]).filter(Cond::is_in("Title", titles.to_vec()));
    let mut by_title = HashMap::new();
    for r in session.query_select(&select, false).await? {
        if let (Some(id), Some(title)) = (
            r.get("Id").and_then(|v| v.as_str()),
            r.get("Title").and_then(|v| v.as_str()),
        ) {
            by_title.insert(title.to_string(), id.to_string());
        }
    }
    let mut links = HashSet::new();
    if by_title.is_empty() {
        return Ok((by_title, links));
    }
    let ids: Vec<String> = by_title.values().cloned().collect();
    let select = Select::new(
        "ContentDocumentLink",
        &["ContentDocumentId", "LinkedEntityId"],
    )
    .filter(Cond::is_in("ContentDocumentId", ids));
    for r in session.query_select(&select, false).await? {
        if let (Some(doc), Some(entity)) = (
            r.get("ContentDocumentId").and_then(|v| v.as_str()),
            r.get("LinkedEntityId").and_then(|v| v.as_str()),
        ) {
            links.insert((doc.to_string(), short(entity)));
        }
    }
    // Update subrequests name the Note by the id as found.
    Ok((by_title, links))
}

/// Records in the tenant's status that Notes are off (once), or clears it when
/// a Note was written again.
async fn tenant_status<S: ConnectionStore>(
    store: &S,
    tenant: &TenantId,
    connection: &Connection,
    notes_off: bool,
    written: bool,
) {
    let set = notes_off && connection.notes_problem.is_none();
    let clear = written && !notes_off && connection.notes_problem.is_some();
    if !set && !clear {
        return;
    }
    let result = update_connection(store, tenant, |c| {
        let want = set.then(|| NOTES_NOT_ENABLED.to_string());
        if c.notes_problem == want {
            return false;
        }
        c.notes_problem = want;
        true
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(tenant_id = %tenant, error = %e, "the Notes status was not saved");
    }
}
