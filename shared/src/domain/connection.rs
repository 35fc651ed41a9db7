//! A tenant's connection to its Salesforce org (non-secret part; the credentials
//! live in Secrets Manager, see [`crate::ports::SecretStore`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::TenantId;

/// How long a usage reading is trusted to pause a sync or defer a call without
/// another call: the daily allocation is a rolling window, so the next call
/// tells the current figure.
pub const USAGE_FRESHNESS: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Where a tenant stands with Salesforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Settings saved, OAuth not completed yet.
    Pending,
    /// A working refresh token is stored; syncs and call logging run.
    Connected,
    /// Salesforce answered `invalid_grant`: the admin must reconnect. Work waits.
    NeedsReauth,
    /// The admin disconnected: token revoked, secret deleted.
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Pending => "pending",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::NeedsReauth => "needs_reauth",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

/// The last API usage read from a `Sforce-Limit-Info` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
    pub observed_at: DateTime<Utc>,
}

impl ApiUsage {
    /// Recent enough to decide on without another call (a stale reading would
    /// pause or defer on an allocation that has since rolled over).
    pub fn is_fresh(&self) -> bool {
        (Utc::now() - self.observed_at)
            .to_std()
            .is_ok_and(|age| age < USAGE_FRESHNESS)
    }

    /// [`Self::percent`] to one decimal, as shown.
    pub fn percent_shown(&self) -> f64 {
        (self.percent() * 10.0).round() / 10.0
    }

    pub fn percent(&self) -> f64 {
        if self.max == 0 {
            100.0
        } else {
            self.used as f64 * 100.0 / self.max as f64
        }
    }
}

/// One tenant's connection record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub tenant_id: TenantId,
    pub status: ConnectionStatus,
    /// Why the status is what it is, in words an admin understands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Normalised API host, e.g. `https://acme.my.salesforce.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The Salesforce user who authorised the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sf_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sf_username: Option<String>,
    /// Region for numbers written without a country code (ISO 3166 alpha-2, e.g. `FR`).
    #[serde(default = "default_phone_region")]
    pub phone_region: String,
    /// Salesforce user that owns activities when the call's host is not mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_owner_id: Option<String>,
    /// How calls are matched to Who and What.
    #[serde(default)]
    pub match_policy: crate::domain::matching::MatchPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<DateTime<Utc>>,
    /// When an admin last asked for a sync now (they may ask once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_requested_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_usage: Option<ApiUsage>,
    /// Calls have been parked (state `waiting`) since then. They are replayed once,
    /// by whoever first sees the tenant able to log again and clears this mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_waiting_since: Option<DateTime<Utc>>,
    /// Calls are matched again for this many days after they start, when the
    /// sync brings new or changed contacts, leads or accounts (issue 19).
    #[serde(default = "default_rematch_days")]
    pub rematch_days: u16,
    /// Stored calls (message and outcome) expire this many days after they start.
    #[serde(default = "default_retention_days")]
    pub retention_days: u16,
    /// Re-matching owed to records the sync brought, and where it stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rematch: Option<RematchProgress>,
    /// The last permissions check (after connecting, or on demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<super::permissions::PermissionCheck>,
    /// Summaries as Notes: the summary, highlights and rep's notes of each
    /// logged call are also written as a Salesforce Note. Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub summaries_as_notes: bool,
    /// Why the last Note could not be written (Notes not enabled in the org),
    /// in plain words with the fix; cleared by the next Note written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes_problem: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency version, incremented by every write.
    #[serde(default)]
    pub version: u64,
}

/// How long calls are matched again after they start, unless the tenant says otherwise.
pub const DEFAULT_REMATCH_DAYS: u16 = 30;

fn default_rematch_days() -> u16 {
    DEFAULT_REMATCH_DAYS
}

fn default_retention_days() -> u16 {
    crate::domain::retention::DEFAULT_RETENTION_DAYS
}

/// A re-matching pass over the tenant's calls that can still improve, owed since
/// the sync brought new or changed records. It runs within sync jobs and carries
/// on in the next one where it stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RematchProgress {
    /// Records changed since then have not been matched against every call yet.
    pub requested_at: DateTime<Utc>,
    /// Where the pass stopped in the listing (`None`: from the start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// More records changed while a pass was under way: another pass follows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
}

impl RematchProgress {
    /// Records changed now: a pass starts, or (one under way) another follows it.
    pub fn request(current: Option<RematchProgress>, now: DateTime<Utc>) -> RematchProgress {
        match current {
            Some(p) if p.after.is_some() => RematchProgress { again: true, ..p },
            Some(p) => p,
            None => RematchProgress {
                requested_at: now,
                after: None,
                again: false,
            },
        }
    }
}

fn default_phone_region() -> String {
    "FR".to_string()
}

impl Connection {
    pub fn new(tenant_id: TenantId, now: DateTime<Utc>) -> Self {
        Self {
            tenant_id,
            status: ConnectionStatus::Pending,
            status_reason: None,
            instance_url: None,
            org_id: None,
            sf_user_id: None,
            sf_username: None,
            phone_region: default_phone_region(),
            default_owner_id: None,
            match_policy: Default::default(),
            connected_at: None,
            last_sync_at: None,
            sync_requested_at: None,
            api_usage: None,
            calls_waiting_since: None,
            rematch_days: DEFAULT_REMATCH_DAYS,
            retention_days: default_retention_days(),
            rematch: None,
            permissions: None,
            summaries_as_notes: false,
            notes_problem: None,
            updated_at: now,
            version: 0,
        }
    }
}

/// An entry of a tenant's audit trail (connect, disconnect, settings change, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// Who did it: a Modjo user id, or `system`.
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEntry {
    /// What `actor` did, now.
    pub fn now(actor: &str, action: &str, detail: Option<String>) -> Self {
        Self {
            at: Utc::now(),
            actor: actor.to_string(),
            action: action.to_string(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_starts_a_pass_or_queues_another_after_the_one_under_way() {
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::minutes(15);
        let fresh = RematchProgress::request(None, t0);
        assert_eq!(fresh.after, None);
        assert!(!fresh.again);
        // Not started yet: it will read the new records anyway.
        assert_eq!(RematchProgress::request(Some(fresh.clone()), t1), fresh);
        // Under way: the calls already passed must be read again afterwards.
        let under_way = RematchProgress {
            after: Some("page-2".into()),
            ..fresh
        };
        let next = RematchProgress::request(Some(under_way), t1);
        assert_eq!(next.after.as_deref(), Some("page-2"), "it carries on");
        assert!(next.again);
    }
}
