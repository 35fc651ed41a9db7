//! Manual links (issue 19): an admin, or the call's host, sets the Contact or
//! Lead and the Account or Opportunity of a call. The Task follows (created if
//! the call had none, else its Who and What updated), the call is marked as
//! linked by hand (re-matching never overrides it), and the tenant's audit
//! trail records who did it, when, from what and to what.

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Map, json};
use tokio::time::Instant;

use super::candidates::{self, Lookup};
use super::claim::Claimed;
use super::outcomes::{self, End};
use super::{CallLoggerStore, comments, events, tasks};
use crate::domain::Actor;
use crate::domain::call_event::CallEvent;
use crate::domain::matching::{Candidate, Decision, Kind};
use crate::domain::{
    AuditEntry, CallOutcome, CallState, ConnectionStatus, LinkedRecord, ManualLink,
};
use crate::ports::{SalesforceSessions, SalesforceWrites, StoreError};
use crate::salesforce::RecordUpdate;
use crate::work::WorkError;

/// How long the Salesforce writes of one link may take.
const LINK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// The body of `PUT calls/{callId}/link`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkInput {
    /// A Contact (`003…`) or a Lead (`00Q…`).
    #[serde(default)]
    pub who_id: Option<String>,
    /// An Account (`001…`) or an Opportunity (`006…`); not with a Lead.
    #[serde(default)]
    pub what_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
        message: String,
    },
    #[error("only an admin or the call's host may link it")]
    Forbidden,
    #[error("no such call")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("Salesforce refused the Task: {0}")]
    Refused(String),
    #[error(transparent)]
    Work(#[from] WorkError),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        LinkError::Work(WorkError::Store(e))
    }
}

fn invalid(field: &'static str, reason: &'static str, message: &str) -> LinkError {
    LinkError::Invalid {
        field,
        reason,
        message: message.to_string(),
    }
}

/// A Salesforce id of one of `prefixes`: 15 or 18 letters and digits.
fn checked(
    id: Option<&str>,
    field: &'static str,
    prefixes: &[&str],
) -> Result<Option<String>, LinkError> {
    let Some(id) = id.map(str::trim).filter(|i| !i.is_empty()) else {
        return Ok(None);
    };
    let shape = (id.len() == 15 || id.len() == 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if !shape || !prefixes.iter().any(|p| id.starts_with(p)) {
        return Err(invalid(
            field,
            "format",
            &format!(
                "expected a Salesforce id starting with {}",
                prefixes.join(" or ")
            ),
        ));
    }
    Ok(Some(id.to_string()))
}

/// Links the call by hand; the outcome as recorded.
pub async fn link<S: CallLoggerStore, C: SalesforceSessions>(
    store: &S,
    salesforce: C,
    actor: &Actor,
    is_admin: bool,
    call_id: &str,
    input: LinkInput,
) -> Result<CallOutcome, LinkError> {
    let who = checked(input.who_id.as_deref(), "whoId", &["003", "00Q"])?;
    let what = checked(input.what_id.as_deref(), "whatId", &["001", "006"])?;
    if who.is_none() && what.is_none() {
        return Err(invalid("whoId", "required", "set whoId, whatId or both"));
    }
    if who.as_deref().is_some_and(|w| w.starts_with("00Q")) && what.is_some() {
        return Err(invalid(
            "whatId",
            "format",
            "a Task on a lead cannot have a related record (Salesforce refuses the pair)",
        ));
    }
    let tenant = &actor.tenant;
    if !crate::domain::validate_external_id(call_id) {
        return Err(LinkError::NotFound);
    }
    let before = store
        .get_outcome(tenant, call_id)
        .await?
        .ok_or(LinkError::NotFound)?;
    let call = before
        .message
        .as_deref()
        .and_then(|m| CallEvent::parse(m).ok())
        .ok_or_else(|| LinkError::Conflict("the call's message is not kept".into()))?;
    if !is_admin && call.host_user_id.as_deref() != Some(actor.user_id.as_str()) {
        return Err(LinkError::Forbidden);
    }
    if !matches!(
        before.state,
        CallState::Created | CallState::Enriched | CallState::Unmatched
    ) {
        return Err(LinkError::Conflict(format!(
            "the call is {}: link it once it is logged",
            before.state.as_str()
        )));
    }
    let connection = store
        .get_connection(tenant)
        .await?
        .filter(|c| c.status == ConnectionStatus::Connected)
        .ok_or_else(|| LinkError::Conflict("Salesforce is not connected".into()))?;
    let ids: Vec<String> = who.iter().chain(&what).cloned().collect();
    let names: std::collections::HashMap<String, String> = store
        .get_records(tenant, &ids)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.id.clone(), r.fields.get("Name")?.as_str()?.to_string())))
        .collect();
    let linked: Vec<LinkedRecord> = ids
        .iter()
        .map(|id| LinkedRecord {
            id: id.clone(),
            object: outcomes::object_of(id).to_string(),
            name: names.get(id).cloned(),
        })
        .collect();
    let session = salesforce.open(tenant, Instant::now() + LINK_DEADLINE);
    let reason = format!("linked by hand by {}", actor.user_id);
    let mut after = match before.task_id.clone().filter(|_| !before.task_deleted) {
        Some(task) => {
            let mut fields = Map::new();
            fields.insert("WhoId".into(), json!(who));
            fields.insert("WhatId".into(), json!(what));
            let result = session
                .update_many(&[RecordUpdate {
                    object: before.activity.object(),
                    id: task,
                    fields,
                }])
                .await
                .map_err(WorkError::from)?;
            if let Some(row) = result.first().filter(|r| !r.success) {
                let codes: Vec<String> = row
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .collect();
                return Err(LinkError::Refused(codes.join("; ")));
            }
            CallOutcome {
                who_id: who.clone(),
                what_id: what.clone(),
                ..before.clone()
            }
        }
        None => {
            let mut work = vec![Claimed::rematching(call, before.version)];
            // The owner, as the call logger chooses it; Who and What as given.
            candidates::decide(store, &session, &connection, &mut work, Lookup::IndexOnly).await?;
            let kind = |id: &str| {
                if id.starts_with("00Q") {
                    Kind::Lead
                } else {
                    Kind::Contact
                }
            };
            work[0].decision = Some(Decision {
                who: who.as_ref().map(|id| Candidate {
                    id: id.clone(),
                    kind: kind(id),
                    name: names.get(id).cloned(),
                    account_id: None,
                    owner_id: None,
                    last_modified: None,
                }),
                what: what
                    .as_ref()
                    .map(|id| (id.clone(), outcomes::object_of(id))),
                reason: reason.clone(),
                others: Vec::new(),
            });
            work[0].names.extend(names.clone());
            comments::load(store, tenant, &mut work).await?;
            events::write(&session, &mut work).await?;
            tasks::write(&session, &connection, &mut work).await?;
            let w = &work[0];
            match &w.end {
                Some(End::Logged { .. }) => {}
                Some(End::Failed { reason, .. }) => return Err(LinkError::Refused(reason.clone())),
                other => {
                    return Err(LinkError::Conflict(format!(
                        "the Task could not be written now ({other:?}); try again"
                    )));
                }
            }
            let message = before.message.clone().unwrap_or_default();
            CallOutcome {
                rematches: before.rematches.clone(),
                ..outcomes::outcome_of(w, &message, connection.retention_days)
            }
        }
    };
    after.linked = linked;
    after.modjo_match = None;
    after.candidates = Vec::new();
    after.reason = Some(reason);
    after.version = before.version;
    after.updated_at = Utc::now();
    after.linked_by_hand = Some(ManualLink {
        by: actor.user_id.clone(),
        at: after.updated_at,
        from_who_id: before.who_id.clone(),
        from_what_id: before.what_id.clone(),
    });
    let saved = match store.save_outcome(tenant, &after).await {
        Ok(saved) => saved,
        Err(StoreError::Conflict(_)) => {
            return Err(LinkError::Conflict(
                "the call changed meanwhile: read it again and link it again".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let show = |id: &Option<String>| id.clone().unwrap_or_else(|| "none".into());
    store
        .append_audit(
            tenant,
            &AuditEntry {
                at: saved.updated_at,
                actor: actor.user_id.clone(),
                action: "call_linked".into(),
                detail: Some(format!(
                    "call {call_id}: Who {}, What {} → Who {}, What {}",
                    show(&before.who_id),
                    show(&before.what_id),
                    show(&who),
                    show(&what)
                )),
            },
        )
        .await?;
    tracing::info!(tenant_id = %tenant, call_id, "call linked by hand");
    Ok(saved)
}
