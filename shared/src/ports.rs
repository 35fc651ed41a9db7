//! Ports: the small traits through which domain logic reaches the outside world.
//! One adapter implements each (DynamoDB, Secrets Manager, SQS, Salesforce);
//! tests run the same adapters against moto and the Salesforce emulator, and
//! unit tests of use-case logic put a scripted Salesforce (`fake`) behind the
//! Salesforce port.

mod erasure;
mod salesforce;

#[cfg(test)]
pub(crate) use salesforce::fake;

pub use erasure::{ErasureStore, PurgeProgress};
pub use salesforce::{
    PubSubApi, PubSubEvents, SalesforceApi, SalesforceLogin, SalesforceNotes, SalesforceReads,
    SalesforceResult, SalesforceSessions, SalesforceWrites,
};

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::{
    AuditEntry, CallOutcome, CallState, Connection, ConnectionStatus, CrmRecord, IndexEntry,
    IndexKey, Lease, ModjoUser, PendingAuthorization, SigningKeys, StoredComment, SyncCursor,
    SyncStatus, TenantId, UserMapping,
};

pub use crate::error::{StoreError, StoreResult};

/// A page of results and the token to ask for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// The requests a store adapter sent, by operation, since it was built: exported
/// as metrics by each invocation (the difference between two readings).
pub trait StoreRequests: Send + Sync {
    fn requests_by_operation(&self) -> std::collections::BTreeMap<String, u64>;
}

/// Tenant connections and their audit trail.
pub trait ConnectionStore: Send + Sync {
    fn get_connection(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Option<Connection>>> + Send;

    /// Writes `connection` if the stored version still equals `connection.version`
    /// (0: must not exist yet). Returns it with the new version; [`StoreError::Conflict`]
    /// when another writer got there first.
    fn save_connection(
        &self,
        connection: &Connection,
    ) -> impl Future<Output = StoreResult<Connection>> + Send;

    /// One page of the tenants in `status`, from the status index.
    fn tenants_with_status(
        &self,
        status: ConnectionStatus,
        page_token: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<TenantId>>> + Send;

    fn append_audit(
        &self,
        tenant: &TenantId,
        entry: &AuditEntry,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The audit trail, oldest first.
    fn audit_trail(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Vec<AuditEntry>>> + Send;
}

/// Modjo user → Salesforce user.
pub trait UserMappingStore: Send + Sync {
    /// Stores the mapping. An automatic mapping never replaces a manual one:
    /// returns `false` (and writes nothing) in that case.
    fn put_mapping(
        &self,
        tenant: &TenantId,
        mapping: &UserMapping,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn get_mapping(
        &self,
        tenant: &TenantId,
        modjo_user_id: &str,
    ) -> impl Future<Output = StoreResult<Option<UserMapping>>> + Send;

    /// The mappings of these Modjo users (those without one are absent), in few requests.
    fn get_mappings(
        &self,
        tenant: &TenantId,
        modjo_user_ids: &[String],
    ) -> impl Future<Output = StoreResult<Vec<UserMapping>>> + Send;

    fn list_mappings(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Vec<UserMapping>>> + Send;

    /// Returns whether a mapping existed.
    fn delete_mapping(
        &self,
        tenant: &TenantId,
        modjo_user_id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Replaces the tenant's directory of Modjo users (the platform's list).
    fn replace_modjo_users(
        &self,
        tenant: &TenantId,
        users: &[ModjoUser],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The tenant's directory of Modjo users, by id.
    fn modjo_users(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Vec<ModjoUser>>> + Send;
}

/// Incremental sync positions.
pub trait CursorStore: Send + Sync {
    fn get_cursor(
        &self,
        tenant: &TenantId,
        object: &str,
    ) -> impl Future<Output = StoreResult<Option<SyncCursor>>> + Send;

    fn put_cursor(
        &self,
        tenant: &TenantId,
        cursor: &SyncCursor,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn put_sync_status(
        &self,
        tenant: &TenantId,
        status: &SyncStatus,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The Pub/Sub replay id stored for a topic (Change Data Capture).
    fn get_replay_id(
        &self,
        tenant: &TenantId,
        topic: &str,
    ) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;

    fn put_replay_id(
        &self,
        tenant: &TenantId,
        topic: &str,
        replay_id: &[u8],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every object's last sync status.
    fn sync_statuses(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Vec<SyncStatus>>> + Send;
}

/// Salesforce refusing a tenant's access for good, as a Salesforce session saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessRefusal {
    /// API requests refused with this code (`API_DISABLED_FOR_ORG`, …): API
    /// access is off for the org or for the connected user.
    Api { code: String },
    /// The token endpoint refused the stored authorisation with this code
    /// (`invalid_grant`, …): revoked, expired, or the connected app changed.
    Authorisation { code: String },
}

/// Told when Salesforce refuses a tenant's access for good. The Salesforce
/// client reports; what it means for the tenant's connection is decided by the
/// connect use case, which implements this port.
pub trait AccessRefusals: Send + Sync {
    fn access_refused(
        &self,
        tenant: &TenantId,
        refusal: &AccessRefusal,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

/// Named, expiring, exclusive leases per tenant.
pub trait LeaseStore: Send + Sync {
    /// Takes the lease for `holder` until `now + ttl` if it is free, expired, or
    /// already held by `holder` (which extends it). `None` when another holder has it.
    fn acquire_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Option<Lease>>> + Send;

    /// Releases the lease if `holder` still holds it; returns whether it did.
    fn release_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// A change to the imported CRM records, with the index entries that follow it.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordChange {
    /// Store `record` and `index` (whose keys must equal `record.index_keys`); delete
    /// the entries of `previous_keys` that the record no longer has.
    Upsert {
        record: CrmRecord,
        index: Vec<IndexEntry>,
        previous_keys: Vec<IndexKey>,
    },
    /// Remove the record and the index entries that pointed at it.
    Delete {
        id: String,
        previous_keys: Vec<IndexKey>,
    },
}

/// Imported records and their indexes (email timelines included).
pub trait RecordStore: Send + Sync {
    /// Reads records by Salesforce id (batched); missing ids are skipped.
    fn get_records(
        &self,
        tenant: &TenantId,
        ids: &[String],
    ) -> impl Future<Output = StoreResult<Vec<CrmRecord>>> + Send;

    /// Applies the changes with batched writes. All-or-error: on error, some writes may
    /// have landed, and applying the same changes again is harmless (idempotent).
    fn apply_record_changes(
        &self,
        tenant: &TenantId,
        changes: &[RecordChange],
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every entry under one index key.
    fn query_index(
        &self,
        tenant: &TenantId,
        key: &IndexKey,
    ) -> impl Future<Output = StoreResult<Vec<IndexEntry>>> + Send;

    /// [`Self::query_index`] for many keys at once: each distinct key is read once,
    /// several at a time. Keys without entries map to an empty list.
    fn query_index_many(
        &self,
        tenant: &TenantId,
        keys: &[IndexKey],
    ) -> impl Future<Output = StoreResult<HashMap<IndexKey, Vec<IndexEntry>>>> + Send;
}

/// A claim on a call: the invocation that holds it alone works on the call until
/// `until`. `version` becomes the outcome's version, so that the claim holder's
/// outcome write ([`CallStore::save_outcomes`]) lands only while the claim holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CallClaim {
    pub call_id: String,
    pub until: DateTime<Utc>,
    pub version: u64,
}

/// What claiming a call found.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimResult {
    /// This invocation holds the call now.
    Claimed,
    /// The call is already settled for good (created, enriched, unmatched).
    Final(Box<CallOutcome>),
    /// Another invocation holds a live claim on it, until then.
    Busy { until: DateTime<Utc> },
}

/// Record ids one [`CallStore::calls_linked_to`] looks for (a DynamoDB `IN`
/// takes at most 100 operands).
pub const MAX_LINKED_IDS: usize = 50;

/// Most calls one page of a call listing returns.
pub const MAX_CALLS_PAGE: usize = 100;

/// Per-call outcomes.
pub trait CallStore: Send + Sync {
    fn get_outcome(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> impl Future<Output = StoreResult<Option<CallOutcome>>> + Send;

    /// The outcomes of these calls (those without one are absent), in few requests.
    fn get_outcomes(
        &self,
        tenant: &TenantId,
        call_ids: &[String],
    ) -> impl Future<Output = StoreResult<Vec<CallOutcome>>> + Send;

    /// Optimistic write, as [`ConnectionStore::save_connection`].
    fn save_outcome(
        &self,
        tenant: &TenantId,
        outcome: &CallOutcome,
    ) -> impl Future<Output = StoreResult<CallOutcome>> + Send;

    /// [`Self::save_outcome`] for many calls in few requests: each outcome is
    /// written if the stored version still equals its `version`. One result per
    /// outcome, in order ([`StoreError::Conflict`] for those that lost); the
    /// `Err` of the whole is for failures that left every outcome unwritten or unknown.
    fn save_outcomes(
        &self,
        tenant: &TenantId,
        outcomes: &[CallOutcome],
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<CallOutcome>>>> + Send;

    /// Claims calls in few requests, without reading them first: a call is claimed
    /// (state `in_progress`) unless it is final or another live claim holds it at
    /// `now`. One result per claim, in order. A claim keeps the call's other
    /// attributes (a parked call's message, the Task of a crashed attempt).
    fn claim_calls(
        &self,
        tenant: &TenantId,
        claims: &[CallClaim],
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<StoreResult<ClaimResult>>>> + Send;

    /// One page of the tenant's logged calls whose comments are waiting to be shown.
    fn pending_comment_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<CallOutcome>>> + Send;

    /// The tenant's calls, most recently updated first (only those in `state`
    /// when given): at most `limit`, after `cursor` (the `next` of the page before).
    fn recent_calls(
        &self,
        tenant: &TenantId,
        state: Option<CallState>,
        limit: usize,
        cursor: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<CallOutcome>>> + Send;

    /// The tenant's calls whose Who or What is one of `record_ids` (at most
    /// [`MAX_LINKED_IDS`]), from a read of its call listing: a page, and the
    /// cursor of the next.
    fn calls_linked_to(
        &self,
        tenant: &TenantId,
        record_ids: &[String],
        cursor: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<CallOutcome>>> + Send;

    /// The tenant's calls that need a person's attention, most recently updated
    /// first: unmatched, or matched among several candidates, and not linked by
    /// hand. At most `limit`, after `cursor`.
    fn calls_needing_attention(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<CallOutcome>>> + Send;

    /// One page of the tenant's calls that a better match could still improve
    /// ([`CallOutcome::can_improve`]), started at or after `started_since`,
    /// oldest first: at most `limit`, after `page_token`.
    fn rematch_calls(
        &self,
        tenant: &TenantId,
        started_since: DateTime<Utc>,
        limit: usize,
        page_token: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<CallOutcome>>> + Send;

    /// One page of the tenant's calls in state `waiting`, from the index.
    fn waiting_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> impl Future<Output = StoreResult<Page<CallOutcome>>> + Send;
}

/// Comments per call, and each call's comment-state version: a counter raised by
/// every stored change, so that a render can tell whether it showed the latest state.
pub trait CommentStore: Send + Sync {
    /// Stores the comment (or its tombstone) unless a version with the same or a newer
    /// `updatedAt` is already stored, and raises the call's comment-state version
    /// with it (atomically). Returns whether it was stored.
    fn upsert_comment(
        &self,
        tenant: &TenantId,
        comment: &StoredComment,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Every stored comment of the call, tombstones included.
    fn comments_for_call(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<StoredComment>>> + Send;

    /// The comment-state version of each call that has comments (calls without any
    /// are absent), read in few requests.
    fn comment_versions(
        &self,
        tenant: &TenantId,
        call_ids: &[String],
    ) -> impl Future<Output = StoreResult<HashMap<String, u64>>> + Send;
}

/// Single-use OAuth state.
pub trait OAuthStateStore: Send + Sync {
    /// Stores a pending authorisation; it expires at `pending.expires_at`.
    fn put_pending(
        &self,
        tenant: &TenantId,
        pending: &PendingAuthorization,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes and returns the pending authorisation. `None` when it never existed,
    /// was already consumed, or has expired at `now`: a state works exactly once.
    fn take_pending(
        &self,
        tenant: &TenantId,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Option<PendingAuthorization>>> + Send;
}

/// A tenant's Salesforce credentials, as kept in Secrets Manager.
/// `Debug` never prints a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantCredentials {
    pub consumer_key: String,
    #[serde(serialize_with = "crate::secret_serde::serialize")]
    pub consumer_secret: SecretString,
    /// Normalised API origin, e.g. `https://acme.my.salesforce.com`.
    pub instance_url: String,
    /// Where OAuth happens (`https://login.salesforce.com`, `https://test.salesforce.com`,
    /// or the My Domain host).
    pub login_url: String,
    #[serde(
        default,
        serialize_with = "crate::secret_serde::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_token: Option<SecretString>,
    #[serde(
        default,
        serialize_with = "crate::secret_serde::serialize_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_token: Option<SecretString>,
}

/// Secrets: per-tenant credentials and the OAuth state-signing key.
pub trait SecretStore: Send + Sync {
    fn get_credentials(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = StoreResult<Option<TenantCredentials>>> + Send;

    /// Creates or replaces the tenant's credentials.
    fn put_credentials(
        &self,
        tenant: &TenantId,
        credentials: &TenantCredentials,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Deletes the tenant's credentials at once (no recovery window), so that a
    /// reconnect can create them again. Deleting absent credentials is not an error.
    fn delete_credentials(&self, tenant: &TenantId)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// The keys that sign OAuth `state` tokens (each at least 32 bytes): the
    /// secret's current version, and the previous one with when it was replaced.
    fn signing_keys(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = StoreResult<SigningKeys>> + Send;
}

/// A message about one tenant. The tenant travels as the SQS `MessageGroupId`:
/// on a standard queue that makes it a fair queue, where SQS serves the other
/// tenants first while one tenant's backlog (a large first sync, a replay of
/// parked calls) drains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantMessage {
    pub tenant: TenantId,
    pub body: String,
}

impl TenantMessage {
    pub fn new(tenant: &TenantId, body: impl Into<String>) -> Self {
        Self {
            tenant: tenant.clone(),
            body: body.into(),
        }
    }
}

/// A queue of JSON messages (sync jobs, call events, dead letters).
pub trait JobQueue: Send + Sync {
    /// Sends every message, batched, each in its tenant's message group; fails
    /// if any could not be sent after retries.
    fn send_all(&self, messages: &[TenantMessage]) -> impl Future<Output = StoreResult<()>> + Send;

    /// Sends a message that cannot be processed, body intact (so it can be
    /// redriven), with the reason as a message attribute.
    fn dead_letter(&self, body: &str, reason: &str)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// Makes a received message visible again after `delay` (back-off before SQS
    /// redelivers a failed item).
    fn retry_after(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_and_errors_never_show_secrets() {
        let creds = TenantCredentials {
            consumer_key: "3MVG9-consumer-key".into(),
            consumer_secret: SecretString::from("consumer-secret-value"),
            instance_url: "https://acme.my.salesforce.com".into(),
            login_url: "https://login.salesforce.com".into(),
            refresh_token: Some(SecretString::from("5Aep861-refresh")),
            access_token: Some(SecretString::from("00D!access")),
        };
        let printed = format!("{creds:?}");
        for secret in ["consumer-secret-value", "5Aep861-refresh", "00D!access"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("3MVG9-consumer-key"));

        // Serialising for Secrets Manager is deliberate and complete.
        let json = serde_json::to_value(&creds).unwrap();
        assert_eq!(json["consumerSecret"], "consumer-secret-value");
        assert_eq!(json["refreshToken"], "5Aep861-refresh");
        let back: TenantCredentials = serde_json::from_value(json).unwrap();
        assert_eq!(back.consumer_key, creds.consumer_key);
    }
}
