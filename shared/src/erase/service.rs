//! Erasing a person from Modjo's store (issue 19): the use case, over the store
//! ports it needs and a port that asks Salesforce whether it still holds them.
//!
//! Finding the person never scans the table: identifier → index entries →
//! Contact and Lead ids → their records, their timeline and opportunity-role
//! entries. Calls are found through the tenant's call listing (`gsi2`), read page
//! by page within the request's time and carried on with a cursor: a call's
//! message may hold the person's number whatever the call was matched to (an
//! unmatched call is matched to nothing), so every call of the tenant is read.
//!
//! Records and index entries go at the end of the erasure (the last request),
//! so that each request can tell again who the person is; their ids are written
//! as tombstones at the start, so that a sync running meanwhile leaves them out.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::person::{EraseInput, Identifier, IdentifierError, Person};
use super::redact::redact_outcome;
use crate::config::BudgetThresholds;
use crate::domain::{AuditEntry, CrmRecord, IndexKey, IndexKind, TenantId};
use crate::error::{Classify, ErrorClass};
use crate::ports::ErasureStore;
use crate::ports::{
    CallStore, ConnectionStore, RecordChange, RecordStore, SalesforceReads, StoreError,
};
use crate::salesforce::SalesforceError;
use crate::salesforce::limits::{BudgetDecision, Work, decide};
use crate::salesforce::soql::{Cond, Select};
use crate::salesforce::sosl::{PhoneSearch, email_holders};

/// Calls read from the listing per page.
const CALLS_PER_PAGE: usize = 100;
/// The people an identifier may name (a shared number): more is refused.
const MAX_PEOPLE: usize = 50;

/// Why an erasure did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    Invalid(#[from] IdentifierError),
    #[error("this workspace has no Salesforce connection")]
    NotFound,
    #[error("the identifier names {0} people: erase them one by one, by record id")]
    TooMany(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for EraseError {
    fn class(&self) -> ErrorClass {
        match self {
            EraseError::Invalid(_) | EraseError::NotFound | EraseError::TooMany(_) => {
                ErrorClass::Permanent
            }
            EraseError::Store(e) => e.class(),
        }
    }
}

/// Asks Salesforce which Contacts and Leads still hold an identifier: one request.
pub trait SalesforceHolders: Send + Sync {
    fn holders(
        &self,
        identifier: &Identifier,
    ) -> impl Future<Output = Result<Vec<String>, SalesforceError>> + Send;
}

impl<C: SalesforceReads> SalesforceHolders for C {
    async fn holders(&self, identifier: &Identifier) -> Result<Vec<String>, SalesforceError> {
        let rows = match identifier {
            Identifier::Email(email) => self.search(&email_holders(email)).await?,
            Identifier::Phone(number) => {
                let search =
                    PhoneSearch::new(crate::domain::normalize::phone_search_variants(number))
                        .returning("Contact", &["Id"])
                        .returning("Lead", &["Id"]);
                self.search_phones(&search).await?
            }
            Identifier::RecordId(id) => {
                let object = if id.starts_with("00Q") {
                    "Lead"
                } else {
                    "Contact"
                };
                let select = Select::new(object, &["Id"]).filter(Cond::eq("Id", id.as_str()));
                self.query_select(&select, false).await?
            }
        };
        Ok(rows
            .iter()
            .filter_map(|r| r.get("Id").and_then(serde_json::Value::as_str))
            .map(str::to_string)
            .collect())
    }
}

/// What an erasure request did, by kind and count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasedCounts {
    pub index_entries: u64,
    pub records: u64,
    pub timeline_items: u64,
    /// OpportunityContactRole records naming the person.
    pub opportunity_roles: u64,
    /// Stored calls whose message or outcome named the person (kept, redacted).
    pub calls_redacted: u64,
}

/// Whether Salesforce still holds the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StillHolds {
    Yes,
    No,
    /// Not asked (API budget, no connection) or Salesforce did not answer.
    Unknown,
}

/// The Salesforce part of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SalesforceCheck {
    /// Always false: Salesforce is the customer's system of record.
    pub touched: bool,
    pub still_holds: StillHolds,
    /// The Contacts and Leads that still hold the identifier.
    pub record_ids: Vec<String>,
    /// API requests spent on the check (0 or 1).
    pub api_requests: u32,
    pub advice: String,
}

/// The answer to one erasure request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureReport {
    /// Which identifier was given (never its value).
    pub identifier: &'static str,
    /// False: more calls remain; ask again with `cursor`.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// What this request erased.
    pub erased: ErasedCounts,
    /// Once complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salesforce: Option<SalesforceCheck>,
}

const ADVICE: &str = "Modjo did not change Salesforce, the customer's system of record. \
    Erase the person in Salesforce as well; until then, Modjo's sync leaves them out.";

/// Erases people from one tenant's store.
pub struct Eraser<'a, S, H> {
    store: &'a S,
    salesforce: &'a H,
    /// The tenant's erasure key ([`super::person::tenant_key`]).
    key: Vec<u8>,
    budget: BudgetThresholds,
    /// Time for reading calls in one request.
    walk_for: Duration,
    calls_per_page: usize,
}

impl<'a, S, H> Eraser<'a, S, H>
where
    S: ErasureStore + RecordStore + CallStore + ConnectionStore,
    H: SalesforceHolders,
{
    pub fn new(store: &'a S, salesforce: &'a H, key: Vec<u8>, budget: BudgetThresholds) -> Self {
        Self {
            store,
            salesforce,
            key,
            budget,
            walk_for: Duration::from_secs(10),
            calls_per_page: CALLS_PER_PAGE,
        }
    }

    /// Reads pages of `calls_per_page` calls for at most `walk_for` per request
    /// (tests make both small to see an erasure carried on).
    pub fn walking_calls(mut self, calls_per_page: usize, walk_for: Duration) -> Self {
        self.calls_per_page = calls_per_page.max(1);
        self.walk_for = walk_for;
        self
    }

    /// One erasure request by `actor` in `tenant`.
    pub async fn erase(
        &self,
        tenant: &TenantId,
        actor: &str,
        input: &EraseInput,
    ) -> Result<ErasureReport, EraseError> {
        let connection = self
            .store
            .get_connection(tenant)
            .await?
            .ok_or(EraseError::NotFound)?;
        let identifier = Identifier::parse(input, &connection.phone_region)?;
        let records = self.person_records(tenant, &identifier).await?;
        let person = Person::from_records(&identifier, &records);
        let ids: Vec<String> = person.ids.iter().cloned().collect();
        if input.cursor.is_none() && !ids.is_empty() {
            self.store.add_erased_ids(tenant, &ids).await?;
        }
        let mut erased = ErasedCounts::default();
        let cursor = self
            .redact_calls(
                tenant,
                &person,
                &connection.phone_region,
                input.cursor.clone(),
                &mut erased,
            )
            .await?;
        if cursor.is_some() {
            return Ok(ErasureReport {
                identifier: identifier.kind(),
                complete: false,
                cursor,
                erased,
                salesforce: None,
            });
        }
        self.remove_records(tenant, &identifier, &records, &mut erased)
            .await?;
        let check = self.check_salesforce(&connection, &identifier).await;
        let newly_seen: Vec<String> = check
            .record_ids
            .iter()
            .filter(|id| !person.ids.contains(*id))
            .cloned()
            .collect();
        if !newly_seen.is_empty() {
            self.store.add_erased_ids(tenant, &newly_seen).await?;
        }
        let entry = AuditEntry::now(
            actor,
            "person_erased",
            Some(format!(
                "by {} (HMAC-SHA256 {}): {} records, {} index entries, {} timeline items, {} opportunity roles, {} calls redacted; Salesforce still holds: {}",
                identifier.kind(),
                identifier.keyed_hash(&self.key),
                erased.records,
                erased.index_entries,
                erased.timeline_items,
                erased.opportunity_roles,
                erased.calls_redacted,
                serde_json::to_value(check.still_holds)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            )),
        );
        self.store.append_audit(tenant, &entry).await?;
        Ok(ErasureReport {
            identifier: identifier.kind(),
            complete: true,
            cursor: None,
            erased,
            salesforce: Some(check),
        })
    }

    /// The Contacts and Leads the identifier names in the index (a record id
    /// names itself, stored or not).
    async fn person_records(
        &self,
        tenant: &TenantId,
        identifier: &Identifier,
    ) -> Result<Vec<CrmRecord>, EraseError> {
        let ids: Vec<String> = match identifier {
            Identifier::RecordId(id) => vec![id.clone()],
            Identifier::Email(v) | Identifier::Phone(v) => {
                let kind = match identifier {
                    Identifier::Email(_) => IndexKind::Email,
                    _ => IndexKind::Phone,
                };
                let key = IndexKey {
                    kind,
                    value: v.clone(),
                };
                self.store
                    .query_index(tenant, &key)
                    .await?
                    .into_iter()
                    .filter(|e| e.object == "Contact" || e.object == "Lead")
                    .map(|e| e.record_id)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            }
        };
        if ids.len() > MAX_PEOPLE {
            return Err(EraseError::TooMany(ids.len()));
        }
        Ok(self.store.get_records(tenant, &ids).await?)
    }

    /// Redacts the person from the tenant's calls, from `cursor` on, for at most
    /// `walk_for`; the cursor to go on from, `None` once every call was read.
    async fn redact_calls(
        &self,
        tenant: &TenantId,
        person: &Person,
        phone_region: &str,
        mut cursor: Option<String>,
        erased: &mut ErasedCounts,
    ) -> Result<Option<String>, EraseError> {
        let until = Instant::now() + self.walk_for;
        loop {
            let page = self
                .store
                .recent_calls(tenant, None, self.calls_per_page, cursor.take())
                .await?;
            for outcome in page.items {
                let Some(redacted) = redact_outcome(&outcome, person, phone_region) else {
                    continue;
                };
                match self.store.save_outcome(tenant, &redacted).await {
                    Ok(_) => erased.calls_redacted += 1,
                    // Written meanwhile: redact what is stored now.
                    Err(StoreError::Conflict(_)) => {
                        if let Some(now) = self.store.get_outcome(tenant, &outcome.call_id).await? {
                            if let Some(again) = redact_outcome(&now, person, phone_region) {
                                self.store.save_outcome(tenant, &again).await?;
                                erased.calls_redacted += 1;
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            match page.next {
                None => return Ok(None),
                Some(next) if Instant::now() >= until => return Ok(Some(next)),
                Some(next) => cursor = Some(next),
            }
        }
    }

    /// Deletes the person's records with their index entries, and the timeline
    /// items and opportunity roles that point at them.
    async fn remove_records(
        &self,
        tenant: &TenantId,
        identifier: &Identifier,
        records: &[CrmRecord],
        erased: &mut ErasedCounts,
    ) -> Result<(), EraseError> {
        let person_ids: Vec<String> = match identifier {
            Identifier::RecordId(id) => vec![id.clone()],
            _ => Vec::new(),
        }
        .into_iter()
        .chain(records.iter().map(|r| r.id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
        let pointing: Vec<IndexKey> = person_ids
            .iter()
            .flat_map(|id| {
                [IndexKind::Timeline, IndexKind::ContactOpportunity].map(|kind| IndexKey {
                    kind,
                    value: id.clone(),
                })
            })
            .collect();
        let entries: Vec<_> = self
            .store
            .query_index_many(tenant, &pointing)
            .await?
            .into_values()
            .flatten()
            .collect();
        // A relation's entry names its email message too: the email goes with it.
        let item_ids: Vec<String> = entries
            .iter()
            .flat_map(|e| {
                let email = e
                    .data
                    .get("EmailMessageId")
                    .and_then(serde_json::Value::as_str);
                std::iter::once(e.record_id.clone()).chain(email.map(str::to_string))
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // Their ids are tombstoned too: the sync reads these items again (an
        // email to the person names them in its addresses).
        self.store.add_erased_ids(tenant, &item_ids).await?;
        let items = self.store.get_records(tenant, &item_ids).await?;
        let mut changes = Vec::new();
        for item in &items {
            let role = entries
                .iter()
                .any(|e| e.record_id == item.id && e.key.kind == IndexKind::ContactOpportunity);
            if role {
                erased.opportunity_roles += 1;
            } else {
                erased.timeline_items += 1;
            }
            erased.index_entries += item.index_keys.len() as u64;
            changes.push(RecordChange::Delete {
                id: item.id.clone(),
                previous_keys: item.index_keys.clone(),
            });
        }
        // Entries whose item is not stored (or no longer lists them).
        for e in &entries {
            let listed = items
                .iter()
                .any(|i| i.id == e.record_id && i.index_keys.contains(&e.key));
            if !listed {
                erased.index_entries += 1;
                changes.push(RecordChange::Delete {
                    id: e.record_id.clone(),
                    previous_keys: vec![e.key.clone()],
                });
            }
        }
        for r in records {
            erased.records += 1;
            erased.index_entries += r.index_keys.len() as u64;
            changes.push(RecordChange::Delete {
                id: r.id.clone(),
                previous_keys: r.index_keys.clone(),
            });
        }
        self.store.apply_record_changes(tenant, &changes).await?;
        Ok(())
    }

    /// One request to Salesforce, within budget; `unknown` rather than an error.
    async fn check_salesforce(
        &self,
        connection: &crate::domain::Connection,
        identifier: &Identifier,
    ) -> SalesforceCheck {
        let unknown = |api_requests| SalesforceCheck {
            touched: false,
            still_holds: StillHolds::Unknown,
            record_ids: Vec::new(),
            api_requests,
            advice: ADVICE.into(),
        };
        if connection.status != crate::domain::ConnectionStatus::Connected {
            return unknown(0);
        }
        if let Some(usage) = connection.api_usage.filter(|u| u.is_fresh()) {
            if decide(&self.budget, Work::CallLogging, usage.used, usage.max)
                != BudgetDecision::Proceed
            {
                return unknown(0);
            }
        }
        match self.salesforce.holders(identifier).await {
            Ok(ids) => SalesforceCheck {
                touched: false,
                still_holds: if ids.is_empty() {
                    StillHolds::No
                } else {
                    StillHolds::Yes
                },
                record_ids: ids,
                api_requests: 1,
                advice: ADVICE.into(),
            },
            Err(e) => {
                tracing::warn!(tenant_id = %connection.tenant_id, error = %e, "erasure: Salesforce not asked whether it holds the person");
                unknown(1)
            }
        }
    }
}
