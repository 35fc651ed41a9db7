//! Connecting a tenant's org (DESIGN §4): settings, the OAuth connect and
//! callback, status, Salesforce users and the user mapping, disconnect, and the
//! reconnect hook that replays parked calls. [`Connect`] is the use case; one
//! file per part (`settings`, `flow`, `status`, `users`, `disconnect`), the
//! permissions check (`permissions`), what a refused access means
//! (`refusals`) and the signed OAuth state (`state`).

mod disconnect;
mod flow;
mod permissions;
mod refusals;
mod settings;
pub mod state;
mod status;
mod users;

pub use flow::{CallbackParams, CallbackResult};
pub use settings::{
    MAX_REMATCH_DAYS, SettingsInput, SettingsNotice, SettingsView, normalisation_notice,
};
pub use status::{ApiUsageView, SalesforceUserRef, StatusView};
pub use users::{AmbiguousUser, AutoMatchReport, MAX_MODJO_USERS, MatchedUser, SalesforceUser};

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::config::OAuthConfig;
use crate::domain::hosts::{InstanceUrlError, SANDBOX_LOGIN_HOST, SalesforceOrigin};
use crate::domain::normalize;
use crate::domain::{
    Actor, AuditEntry, Connection, ConnectionStatus, MappingSource, ModjoUser,
    PendingAuthorization, TenantId, UserMapping,
};
use crate::error::{Classify, ErrorClass};
use crate::ports::{
    CallStore, ConnectionStore, CursorStore, JobQueue, OAuthStateStore, SalesforceLogin,
    SalesforceReads, SalesforceSessions, SecretStore, StoreError, TenantCredentials, TenantMessage,
    UserMappingStore,
};
use crate::salesforce::SalesforceError;
use crate::salesforce::id::same_id;
use crate::salesforce::soql::{Cond, Order, Select};
use crate::work::update_connection;
use state::SigningKeyCache;
use state::{StateClaims, StateError};

/// Time allowed for Salesforce calls made while serving an admin request.
const API_BUDGET: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        /// A stable code of what is wrong (`format`, `required`, `not_https`, …),
        /// so that a page can say it in the admin's language.
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// Asked again too soon; may be asked again after this many seconds.
    #[error("{message}")]
    TooSoon { message: String, retry_after: u64 },
    #[error(transparent)]
    Salesforce(#[from] SalesforceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ConnectError {
    fn invalid(field: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        ConnectError::Invalid {
            field,
            reason,
            message: message.into(),
        }
    }

    /// A refused Salesforce URL typed into `field`.
    fn url(field: &'static str, e: &InstanceUrlError) -> Self {
        let reason = match e {
            InstanceUrlError::Unparseable => "unparseable",
            InstanceUrlError::NotHttps => "not_https",
            InstanceUrlError::HasCredentials => "has_credentials",
            InstanceUrlError::IpLiteral => "ip_literal",
            InstanceUrlError::TrailingDot => "trailing_dot",
            InstanceUrlError::NonDefaultPort => "non_default_port",
            InstanceUrlError::NotSalesforce(_) => "not_salesforce",
            #[allow(unreachable_patterns)]
            _ => "invalid_url",
        };
        ConnectError::invalid(field, reason, e.to_string())
    }
}

impl From<InstanceUrlError> for ConnectError {
    fn from(e: InstanceUrlError) -> Self {
        ConnectError::url("instanceUrl", &e)
    }
}

impl Classify for ConnectError {
    fn class(&self) -> ErrorClass {
        match self {
            ConnectError::Invalid { .. }
            | ConnectError::Conflict(_)
            | ConnectError::NotFound(_) => ErrorClass::Permanent,
            ConnectError::TooSoon { .. } => ErrorClass::Retryable,
            ConnectError::Salesforce(e) => e.class(),
            ConnectError::Store(e) => e.class(),
        }
    }
}

/// A Salesforce id of the object whose key prefix is `prefix`.
fn valid_sf_id(id: &str, prefix: &str) -> bool {
    (id.len() == 15 || id.len() == 18)
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The storage ports the connect use case touches: the tenant's connection and
/// audit trail, the pending OAuth states, the user mapping, the sync statuses
/// (the permissions report), and the parked calls it replays once connected.
pub trait ConnectStore:
    ConnectionStore + OAuthStateStore + UserMappingStore + CursorStore + CallStore
{
}

impl<T> ConnectStore for T where
    T: ConnectionStore + OAuthStateStore + UserMappingStore + CursorStore + CallStore
{
}

/// What connect asks of Salesforce: tenants' sessions (users, permissions, the
/// identity) and the OAuth flow.
pub trait ConnectSalesforce: SalesforceSessions + SalesforceLogin {}

impl<T: SalesforceSessions + SalesforceLogin> ConnectSalesforce for T {}

/// The connect use case: settings, the OAuth flow, status, Salesforce users
/// and the user mapping, disconnect. What it touches is what it holds.
pub struct Connect<'a, S, K, C> {
    store: &'a S,
    secrets: &'a K,
    salesforce: C,
    /// Present in the functions that run the OAuth flow.
    oauth: Option<&'a OAuthConfig>,
    /// The OAuth state-signing keys.
    keys: &'a SigningKeyCache,
}

impl<'a, S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'a, S, K, C> {
    pub fn new(
        store: &'a S,
        secrets: &'a K,
        salesforce: C,
        oauth: Option<&'a OAuthConfig>,
        keys: &'a SigningKeyCache,
    ) -> Self {
        Self {
            store,
            secrets,
            salesforce,
            oauth,
            keys,
        }
    }

    /// A session for an admin request's Salesforce calls.
    fn session(&self, tenant: &TenantId) -> C::Session {
        self.salesforce
            .open(tenant, tokio::time::Instant::now() + API_BUDGET)
    }

    /// Records what `actor` did in the tenant's audit trail.
    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(
                &actor.tenant,
                &AuditEntry::now(&actor.user_id, action, detail),
            )
            .await
    }

    fn callback_url(&self) -> Result<&Url, ConnectError> {
        self.oauth.map(|o| &o.callback_url).ok_or_else(|| {
            ConnectError::Conflict("this function has no OAuth configuration".into())
        })
    }

    async fn connection_or_new(&self, tenant: &TenantId) -> Result<Connection, ConnectError> {
        Ok(self
            .store
            .get_connection(tenant)
            .await?
            .unwrap_or_else(|| Connection::new(tenant.clone(), Utc::now())))
    }

    async fn credentials(&self, tenant: &TenantId) -> Result<TenantCredentials, ConnectError> {
        self.secrets
            .get_credentials(tenant)
            .await?
            .ok_or_else(|| ConnectError::Conflict("save the Salesforce settings first".into()))
    }

    async fn require_connected(&self, tenant: &TenantId) -> Result<Connection, ConnectError> {
        match self.store.get_connection(tenant).await? {
            Some(c) if c.status == ConnectionStatus::Connected => Ok(c),
            Some(c) => Err(ConnectError::Conflict(format!(
                "Salesforce is not connected (status {})",
                c.status.as_str()
            ))),
            None => Err(ConnectError::NotFound(
                "this workspace has no Salesforce connection".into(),
            )),
        }
    }
}
