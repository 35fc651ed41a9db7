//! Who and What of a call (DESIGN §6, step 2), as a pure decision over the
//! candidates found in the index (or by SOSL). Configurable per tenant.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// How candidates are ranked. Stored on the tenant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MatchPolicy {
    #[serde(default)]
    pub who: WhoRanking,
    #[serde(default)]
    pub what: WhatTarget,
}

/// Among several contacts (or leads) with the caller's number or email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhoRanking {
    /// The most recently modified, then one owned by the host (DESIGN default).
    #[default]
    MostRecentThenHost,
    /// One owned by the host, then the most recently modified.
    HostThenMostRecent,
}

/// What the call is related to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhatTarget {
    /// An open opportunity of the contact, else the contact's account.
    #[default]
    OpportunityThenAccount,
    /// Always the account.
    AccountOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Contact,
    Lead,
    Account,
}

/// A record a participant matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: String,
    pub kind: Kind,
    pub name: Option<String>,
    pub account_id: Option<String>,
    pub owner_id: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// An opportunity a matched contact has a role on.
#[derive(Debug, Clone, PartialEq)]
pub struct OpportunityCandidate {
    pub id: String,
    pub name: Option<String>,
    pub primary_role: bool,
    pub owner_id: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    pub is_closed: bool,
    pub close_date: Option<NaiveDate>,
}

impl OpportunityCandidate {
    /// Open when the call happened: created before it, and either still open or
    /// closed on or after its day.
    pub fn open_at(&self, at: DateTime<Utc>) -> bool {
        let created_before = self.created.is_none_or(|c| c <= at);
        let still_open = !self.is_closed || self.close_date.is_some_and(|d| d >= at.date_naive());
        created_before && still_open
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub who: Option<Candidate>,
    /// `(id, object)`: an Opportunity or an Account.
    pub what: Option<(String, &'static str)>,
    /// How the decision was made, for the outcome record.
    pub reason: String,
    /// The other contacts or leads that matched, when Who was chosen among several.
    pub others: Vec<Candidate>,
}

fn by_recency_then_host<'a>(
    items: impl Iterator<Item = &'a Candidate>,
    host: Option<&str>,
    ranking: WhoRanking,
) -> Option<&'a Candidate> {
    let owned = |c: &Candidate| host.is_some() && c.owner_id.as_deref() == host;
    items.max_by(|a, b| {
        let recency = a.last_modified.cmp(&b.last_modified);
        let hostness = owned(a).cmp(&owned(b));
        let primary = match ranking {
            WhoRanking::MostRecentThenHost => recency.then(hostness),
            WhoRanking::HostThenMostRecent => hostness.then(recency),
        };
        // Stable last resort: the smaller id wins.
        primary.then_with(|| b.id.cmp(&a.id))
    })
}

/// Picks Who: a contact before a lead; among several, by the tenant's ranking.
pub fn choose_who(
    candidates: &[Candidate],
    host: Option<&str>,
    policy: &MatchPolicy,
) -> Option<Candidate> {
    let contacts = candidates.iter().filter(|c| c.kind == Kind::Contact);
    if let Some(c) = by_recency_then_host(contacts, host, policy.who) {
        return Some(c.clone());
    }
    let leads = candidates.iter().filter(|c| c.kind == Kind::Lead);
    by_recency_then_host(leads, host, policy.who).cloned()
}

/// Picks What for a contact: an opportunity open at call time where it has a
/// role (primary first), else one owned by the host, else the most recently
/// modified; else its account. A lead has no What (Salesforce refuses the pair).
pub fn choose_what(
    who: Option<&Candidate>,
    opportunities: &[OpportunityCandidate],
    accounts: &[Candidate],
    at: DateTime<Utc>,
    host: Option<&str>,
    policy: &MatchPolicy,
) -> (Option<(String, &'static str)>, String) {
    match who {
        Some(c) if c.kind == Kind::Lead => (None, "lead: no related record".into()),
        Some(c) => {
            if policy.what == WhatTarget::OpportunityThenAccount {
                let open: Vec<&OpportunityCandidate> =
                    opportunities.iter().filter(|o| o.open_at(at)).collect();
                let owned =
                    |o: &OpportunityCandidate| host.is_some() && o.owner_id.as_deref() == host;
                let best = open.iter().max_by(|a, b| {
                    a.primary_role
                        .cmp(&b.primary_role)
                        .then(owned(a).cmp(&owned(b)))
                        .then(a.last_modified.cmp(&b.last_modified))
                        .then_with(|| b.id.cmp(&a.id))
                });
                if let Some(o) = best {
                    let why = if o.primary_role {
                        "open opportunity, primary contact role"
                    } else if owned(o) {
                        "open opportunity owned by the host"
                    } else {
                        "most recently modified open opportunity"
                    };
                    return (Some((o.id.clone(), "Opportunity")), why.into());
                }
            }
            match &c.account_id {
                Some(a) => (Some((a.clone(), "Account")), "the contact's account".into()),
                None => (None, "contact without account".into()),
            }
        }
        None => match by_recency_then_host(accounts.iter(), host, policy.who) {
            Some(a) => (
                Some((a.id.clone(), "Account")),
                "account matched by phone or domain".into(),
            ),
            None => (None, "no match".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).unwrap()
    }

    fn cand(id: &str, kind: Kind, owner: &str, modified: u32) -> Candidate {
        Candidate {
            id: id.into(),
            kind,
            name: None,
            account_id: Some("001A".into()),
            owner_id: Some(owner.into()),
            last_modified: Some(at(modified)),
        }
    }

    fn opp(id: &str, primary: bool, owner: &str, modified: u32) -> OpportunityCandidate {
        OpportunityCandidate {
            id: id.into(),
            name: None,
            primary_role: primary,
            owner_id: Some(owner.into()),
            last_modified: Some(at(modified)),
            created: Some(at(1)),
            is_closed: false,
            close_date: None,
        }
    }

    #[test]
    fn contact_before_lead_then_recency_then_host() {
        let p = MatchPolicy::default();
        let c = [
            cand("00Q1", Kind::Lead, "005H", 20),
            cand("0031", Kind::Contact, "005X", 10),
            cand("0032", Kind::Contact, "005H", 5),
        ];
        assert_eq!(
            choose_who(&c, Some("005H"), &p).unwrap().id,
            "0031",
            "most recent contact, lead ignored"
        );
        let tie = [
            cand("0031", Kind::Contact, "005X", 10),
            cand("0032", Kind::Contact, "005H", 10),
        ];
        assert_eq!(
            choose_who(&tie, Some("005H"), &p).unwrap().id,
            "0032",
            "tie broken by host ownership"
        );
        let host_first = MatchPolicy {
            who: WhoRanking::HostThenMostRecent,
            ..p
        };
        assert_eq!(
            choose_who(&c, Some("005H"), &host_first).unwrap().id,
            "0032"
        );
        assert_eq!(
            choose_who(&[cand("00Q1", Kind::Lead, "005H", 20)], None, &p)
                .unwrap()
                .kind,
            Kind::Lead
        );
        assert!(choose_who(&[], None, &p).is_none());
    }

    #[test]
    fn opportunities_primary_then_host_then_recent_else_account() {
        let p = MatchPolicy::default();
        let who = cand("0031", Kind::Contact, "005X", 10);
        let opps = [
            opp("006A", false, "005H", 9),
            opp("006B", true, "005X", 1),
            opp("006C", false, "005X", 20),
        ];
        assert_eq!(
            choose_what(Some(&who), &opps, &[], at(15), Some("005H"), &p)
                .0
                .unwrap()
                .0,
            "006B"
        );
        let no_primary = [
            opp("006A", false, "005H", 9),
            opp("006C", false, "005X", 20),
        ];
        assert_eq!(
            choose_what(Some(&who), &no_primary, &[], at(15), Some("005H"), &p)
                .0
                .unwrap()
                .0,
            "006A"
        );
        assert_eq!(
            choose_what(Some(&who), &no_primary, &[], at(15), None, &p)
                .0
                .unwrap()
                .0,
            "006C"
        );
        // Closed before the call: not a candidate; the account is used.
        let mut closed = opp("006D", true, "005H", 9);
        closed.is_closed = true;
        closed.close_date = Some(at(12).date_naive());
        assert_eq!(
            choose_what(Some(&who), &[closed.clone()], &[], at(15), None, &p).0,
            Some(("001A".into(), "Account"))
        );
        // ... but closed after the call day: it was open then.
        assert_eq!(
            choose_what(Some(&who), &[closed.clone()], &[], at(11), None, &p)
                .0
                .unwrap()
                .0,
            "006D"
        );
        // Created after the call: not open at call time.
        let mut later = opp("006E", true, "005H", 9);
        later.created = Some(at(20));
        assert_eq!(
            choose_what(Some(&who), &[later], &[], at(15), None, &p)
                .0
                .unwrap()
                .1,
            "Account"
        );
        let accounts_only = MatchPolicy {
            what: WhatTarget::AccountOnly,
            ..p
        };
        assert_eq!(
            choose_what(Some(&who), &opps, &[], at(15), None, &accounts_only)
                .0
                .unwrap()
                .1,
            "Account"
        );
    }

    #[test]
    fn leads_have_no_what_and_accounts_stand_alone() {
        let p = MatchPolicy::default();
        let lead = cand("00Q1", Kind::Lead, "005H", 10);
        assert_eq!(
            choose_what(
                Some(&lead),
                &[opp("006A", true, "005H", 1)],
                &[],
                at(15),
                None,
                &p
            )
            .0,
            None
        );
        let accounts = [
            cand("001A", Kind::Account, "005X", 1),
            cand("001B", Kind::Account, "005X", 3),
        ];
        assert_eq!(
            choose_what(None, &[], &accounts, at(15), None, &p).0,
            Some(("001B".into(), "Account"))
        );
        assert_eq!(choose_what(None, &[], &[], at(15), None, &p).0, None);
    }
}
