//! Phase 4: who and what each call is about. The index is read once for the whole
//! batch (each distinct phone, email and domain once, several at a time); SOSL
//! runs only for the numbers the index does not know (records newer than the last
//! sync); the hosts' mappings, the contacts' opportunity roles and the records'
//! names are each one batch read. Then [`matching`](super::matching) decides.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::claim::{Claimed, Owner, OwnerSource};
use crate::domain::call_event::{Direction, Role};
use crate::domain::matching::{self, Candidate, Decision, Kind, OpportunityCandidate, WhatTarget};
use crate::domain::normalize;
use crate::domain::{CONTACT_PHONES, LEAD_PHONES};
use crate::domain::{Connection, CrmRecord, IndexEntry, IndexKey, IndexKind, TenantId};
use crate::ports::{RecordStore, SalesforceApi, UserMappingStore};
use crate::salesforce::keyset::parse_datetime;
use crate::salesforce::sosl::PhoneSearch;
use crate::work::WorkError;

/// Numbers per SOSL search (each brings several spelling variants).
const NUMBERS_PER_SEARCH: usize = 50;

/// What one call looks up in the index.
#[derive(Default)]
struct Lookups {
    phones: Vec<String>,
    emails: Vec<String>,
    domains: Vec<String>,
}

impl Lookups {
    fn of(call: &crate::domain::call_event::CallEvent, region: &str) -> Self {
        let internal: HashSet<String> = call
            .participants
            .iter()
            .filter(|p| p.role == Role::Internal)
            .filter_map(|p| p.email.as_deref().and_then(normalize::email))
            .collect();
        let mut l = Lookups::default();
        for p in call
            .participants
            .iter()
            .filter(|p| p.role == Role::External)
        {
            if let Some(e164) = p
                .phone
                .as_deref()
                .and_then(|ph| normalize::phone_e164(ph, region))
            {
                push_new(&mut l.phones, e164);
            }
            let email = p
                .email
                .as_deref()
                .and_then(normalize::email)
                .filter(|e| !internal.contains(e));
            if let Some(email) = email {
                if call.direction == Direction::Meeting {
                    if let Some(domain) = normalize::email_domain(&email) {
                        push_new(&mut l.domains, domain);
                    }
                }
                push_new(&mut l.emails, email);
            }
        }
        l
    }

    fn keys(&self) -> impl Iterator<Item = IndexKey> + '_ {
        let key = |kind: IndexKind| {
            move |value: &String| IndexKey {
                kind,
                value: value.clone(),
            }
        };
        self.phones
            .iter()
            .map(key(IndexKind::Phone))
            .chain(self.emails.iter().map(key(IndexKind::Email)))
            .chain(self.domains.iter().map(key(IndexKind::Domain)))
    }
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// The candidates found for one call.
#[derive(Default)]
struct Found {
    who: Vec<Candidate>,
    accounts: Vec<Candidate>,
}

impl Found {
    fn add(&mut self, candidate: Candidate) {
        let list = if candidate.kind == Kind::Account {
            &mut self.accounts
        } else {
            &mut self.who
        };
        if !list.iter().any(|c| c.id == candidate.id) {
            list.push(candidate);
        }
    }
}

/// Where candidates are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The index, then SOSL for the numbers it does not know (logging a call).
    IndexThenSearch,
    /// The index only (re-matching: no Salesforce reads to find candidates).
    IndexOnly,
}

/// Decides Who, What and the owner of every claimed call still being worked.
pub(super) async fn decide<S: RecordStore + UserMappingStore, C: SalesforceApi>(
    store: &S,
    session: &C,
    connection: &Connection,
    work: &mut [Claimed],
    lookup: Lookup,
) -> Result<(), WorkError> {
    let tenant = session.tenant().clone();
    let region = connection.phone_region.as_str();
    let policy = connection.match_policy;

    // The index, once for the batch.
    let lookups: Vec<Lookups> = work.iter().map(|w| Lookups::of(&w.call, region)).collect();
    let keys: Vec<IndexKey> = lookups.iter().flat_map(Lookups::keys).collect();
    let hits = store.query_index_many(&tenant, &keys).await?;
    let hits_of = |k: &IndexKey| hits.get(k).map(Vec::as_slice).unwrap_or_default();
    let mut found: Vec<Found> = Vec::with_capacity(work.len());
    let mut unknown: Vec<String> = Vec::new();
    for l in &lookups {
        let mut f = Found::default();
        for key in l.keys() {
            let entries = hits_of(&key);
            match key.kind {
                IndexKind::Domain => entries
                    .iter()
                    .filter_map(domain_account)
                    .for_each(|c| f.add(c)),
                _ => entries.iter().filter_map(candidate).for_each(|c| f.add(c)),
            }
            if key.kind == IndexKind::Phone && entries.is_empty() {
                push_new(&mut unknown, key.value.clone());
            }
        }
        found.push(f);
    }

    // One SOSL search for the numbers the index does not know.
    if !unknown.is_empty() && lookup == Lookup::IndexThenSearch {
        let by_number = search_numbers(session, &unknown, region).await?;
        for (l, f) in lookups.iter().zip(found.iter_mut()) {
            for number in &l.phones {
                for c in by_number.get(number).into_iter().flatten() {
                    f.add(c.clone());
                }
            }
        }
    }

    // Owners: the mapped host, else the tenant's default owner, else the connected
    // (integration) user: never a silent failure.
    let hosts: Vec<String> = work
        .iter()
        .filter_map(|w| w.call.host_user_id.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mapped: HashMap<String, String> = if hosts.is_empty() {
        HashMap::new()
    } else {
        store
            .get_mappings(&tenant, &hosts)
            .await?
            .into_iter()
            .map(|m| (m.modjo_user_id, m.sf_user_id))
            .collect()
    };
    for w in work.iter_mut() {
        let host = w.call.host_user_id.as_ref().and_then(|h| mapped.get(h));
        w.owner = match (host, &connection.default_owner_id, &connection.sf_user_id) {
            (Some(id), _, _) => Some((id.clone(), OwnerSource::MappedHost)),
            (None, Some(default), _) => Some((default.clone(), OwnerSource::DefaultOwner)),
            (None, None, Some(integration)) => {
                Some((integration.clone(), OwnerSource::ConnectedUser))
            }
            (None, None, None) => None,
        }
        .map(|(id, source)| Owner { id, source });
    }

    // Who, then the chosen contacts' opportunities in one read.
    let chosen: Vec<Option<Candidate>> = work
        .iter()
        .zip(&found)
        .map(|(w, f)| matching::choose_who(&f.who, w.host(), &policy))
        .collect();
    let contacts: Vec<String> = chosen
        .iter()
        .flatten()
        .filter(|c| c.kind == Kind::Contact)
        .map(|c| c.id.clone())
        .collect();
    // Their accounts' names come in the same read: the account is the What
    // when no opportunity is chosen.
    let accounts: Vec<String> = chosen
        .iter()
        .flatten()
        .filter_map(|c| c.account_id.clone())
        .collect();
    let (opportunities, account_names) = if policy.what == WhatTarget::OpportunityThenAccount {
        opportunities_of(store, &tenant, &contacts, &accounts).await?
    } else {
        (HashMap::new(), HashMap::new())
    };

    // What, and the names of the records to be linked.
    let mut unnamed: Vec<String> = Vec::new();
    for ((w, f), who) in work.iter_mut().zip(&found).zip(chosen) {
        let opps: &[OpportunityCandidate] = who
            .as_ref()
            .and_then(|c| opportunities.get(&c.id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for o in opps {
            if let Some(name) = &o.name {
                w.names.insert(o.id.clone(), name.clone());
            }
        }
        for a in &f.accounts {
            if let Some(name) = &a.name {
                w.names.insert(a.id.clone(), name.clone());
            }
        }
        let (what, reason) = matching::choose_what(
            who.as_ref(),
            opps,
            &f.accounts,
            w.call.started_at,
            w.host(),
            &policy,
        );
        if let Some((id, _)) = &what
            && !w.names.contains_key(id)
        {
            match account_names.get(id) {
                Some(name) => {
                    w.names.insert(id.clone(), name.clone());
                }
                None => push_new(&mut unnamed, id.clone()),
            }
        }
        let who_reason = match (&who, f.who.len()) {
            (None, _) => "no contact or lead matched".to_string(),
            (Some(c), 1) => format!("{:?} matched", c.kind),
            (Some(c), n) => format!("{:?} chosen among {n} matches", c.kind),
        };
        let others = match &who {
            Some(chosen) => f
                .who
                .iter()
                .filter(|c| c.id != chosen.id)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        w.decision = Some(Decision {
            who,
            what,
            reason: format!("{who_reason}; {reason}"),
            others,
        });
    }
    // Any other record to be linked: its name is in the imported records.
    if !unnamed.is_empty() {
        let names: HashMap<String, String> = store
            .get_records(&tenant, &unnamed)
            .await?
            .into_iter()
            .filter_map(|r| Some((r.id.clone(), text(&r.fields, "Name")?.to_string())))
            .collect();
        for w in work.iter_mut() {
            let what = w
                .decision
                .as_ref()
                .and_then(|d| d.what.as_ref())
                .map(|(id, _)| id);
            if let Some(name) = what.and_then(|id| names.get(id)) {
                let id = what.cloned().unwrap_or_default();
                w.names.insert(id, name.clone());
            }
        }
    }
    Ok(())
}

fn text<'a>(fields: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    fields.get(key).and_then(Value::as_str)
}

/// A contact, lead or account an index entry points at (users are internal,
/// never a call's contact).
fn candidate(entry: &IndexEntry) -> Option<Candidate> {
    let kind = match entry.object.as_str() {
        "Contact" => Kind::Contact,
        "Lead" => Kind::Lead,
        "Account" => Kind::Account,
        _ => return None,
    };
    let field = |k: &str| text(&entry.data, k).map(str::to_string);
    Some(Candidate {
        id: entry.record_id.clone(),
        kind,
        name: field("Name"),
        account_id: field("AccountId"),
        owner_id: field("OwnerId"),
        last_modified: text(&entry.data, "LastModifiedDate").and_then(parse_datetime),
    })
}

/// The account a domain points at: the account itself, or a contact's account.
fn domain_account(entry: &IndexEntry) -> Option<Candidate> {
    let (id, name) = if entry.object == "Account" {
        (
            entry.record_id.clone(),
            text(&entry.data, "Name").map(str::to_string),
        )
    } else {
        (text(&entry.data, "AccountId")?.to_string(), None)
    };
    Some(Candidate {
        id,
        kind: Kind::Account,
        name,
        account_id: None,
        owner_id: None,
        last_modified: None,
    })
}

/// Contact → the opportunities it has a role on, and account → its name.
type OpportunitiesAndNames = (
    HashMap<String, Vec<OpportunityCandidate>>,
    HashMap<String, String>,
);

/// The opportunities each contact has a role on (the roles from the index), and
/// the names of `accounts`: every opportunity and account in one batch read.
async fn opportunities_of<S: RecordStore>(
    store: &S,
    tenant: &TenantId,
    contacts: &[String],
    accounts: &[String],
) -> Result<OpportunitiesAndNames, WorkError> {
    if contacts.is_empty() {
        return Ok((HashMap::new(), HashMap::new()));
    }
    let keys: Vec<IndexKey> = contacts
        .iter()
        .map(|c| IndexKey {
            kind: IndexKind::ContactOpportunity,
            value: c.clone(),
        })
        .collect();
    let roles = store.query_index_many(tenant, &keys).await?;
    // contact → (opportunity → primary role)
    let mut primary: HashMap<&str, HashMap<String, bool>> = HashMap::new();
    for (key, entries) in &roles {
        for r in entries {
            if let Some(opp) = text(&r.data, "OpportunityId") {
                let is_primary = r
                    .data
                    .get("IsPrimary")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                primary
                    .entry(key.value.as_str())
                    .or_default()
                    .insert(opp.to_string(), is_primary);
            }
        }
    }
    let ids: Vec<String> = primary
        .values()
        .flat_map(|m| m.keys().cloned())
        .chain(accounts.iter().cloned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok((HashMap::new(), HashMap::new()));
    }
    let records: HashMap<String, CrmRecord> = store
        .get_records(tenant, &ids)
        .await?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let opportunities = primary
        .into_iter()
        .map(|(contact, opps)| {
            let list = opps
                .into_iter()
                .filter_map(|(id, is_primary)| records.get(&id).map(|r| opportunity(r, is_primary)))
                .collect();
            (contact.to_string(), list)
        })
        .collect();
    let names = accounts
        .iter()
        .filter_map(|id| {
            let name = text(&records.get(id)?.fields, "Name")?;
            Some((id.clone(), name.to_string()))
        })
        .collect();
    Ok((opportunities, names))
}

fn opportunity(r: &CrmRecord, primary_role: bool) -> OpportunityCandidate {
    let f = &r.fields;
    OpportunityCandidate {
        id: r.id.clone(),
        primary_role,
        name: text(f, "Name").map(str::to_string),
        owner_id: text(f, "OwnerId").map(str::to_string),
        last_modified: text(f, "LastModifiedDate").and_then(parse_datetime),
        created: text(f, "CreatedDate").and_then(parse_datetime),
        is_closed: f.get("IsClosed").and_then(Value::as_bool).unwrap_or(false),
        close_date: text(f, "CloseDate")
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
    }
}

/// SOSL searches for every variant of every number (a few per request); the
/// contacts and open leads found, by E.164 number.
async fn search_numbers<C: SalesforceApi>(
    session: &C,
    numbers: &[String],
    region: &str,
) -> Result<HashMap<String, Vec<Candidate>>, WorkError> {
    let mut found: HashMap<String, Vec<Candidate>> = HashMap::new();
    let contact_fields = [
        &["Id", "Name", "AccountId", "OwnerId", "LastModifiedDate"][..],
        CONTACT_PHONES,
    ]
    .concat();
    let lead_fields = [
        &["Id", "Name", "OwnerId", "LastModifiedDate", "IsConverted"][..],
        LEAD_PHONES,
    ]
    .concat();
    for chunk in numbers.chunks(NUMBERS_PER_SEARCH) {
        // Each number's variants, computed once: searched for, then matched
        // against every record found.
        let searched: Vec<(&String, Vec<String>)> = chunk
            .iter()
            .map(|n| (n, normalize::phone_search_variants(n)))
            .collect();
        let variants: Vec<String> = searched
            .iter()
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        let search = PhoneSearch::new(variants)
            .returning("Contact", &contact_fields)
            .returning("Lead", &lead_fields);
        for r in session.search_phones(&search).await? {
            let kind = match r
                .get("attributes")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
            {
                Some("Contact") => Kind::Contact,
                Some("Lead") if r.get("IsConverted") != Some(&Value::Bool(true)) => Kind::Lead,
                _ => continue,
            };
            let field = |k: &str| text(&r, k).map(str::to_string);
            let candidate = Candidate {
                id: field("Id").unwrap_or_default(),
                kind,
                name: field("Name"),
                account_id: field("AccountId"),
                owner_id: field("OwnerId"),
                last_modified: text(&r, "LastModifiedDate").and_then(parse_datetime),
            };
            // Which searched numbers this record carries: a stored phone is
            // compared by its digits with every variant of each number, so one
            // typed in another country's national format still counts.
            let stored: Vec<String> = CONTACT_PHONES
                .iter()
                .filter_map(|f| text(&r, f))
                .flat_map(|p| {
                    let digits: String = p.chars().filter(char::is_ascii_digit).collect();
                    let e164 = normalize::phone_e164(p, region)
                        .map(|e| e.trim_start_matches('+').to_string());
                    [Some(digits), e164].into_iter().flatten()
                })
                .collect();
            for (number, number_variants) in &searched {
                if number_variants.iter().any(|v| stored.contains(v)) {
                    let list = found.entry((*number).clone()).or_default();
                    if !list.iter().any(|c| c.id == candidate.id) {
                        list.push(candidate.clone());
                    }
                }
            }
        }
    }
    Ok(found)
}
