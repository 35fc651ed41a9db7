//! Connecting a tenant's org (DESIGN §4): settings, the OAuth connect and
//! callback, status, Salesforce users and the user mapping, disconnect, and the
//! reconnect hook that replays parked calls.

mod permissions;
mod refusals;
pub mod state;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::app::{App, Store, update_connection};
use crate::domain::normalize;
use crate::domain::{
    AuditEntry, Connection, ConnectionStatus, MappingSource, ModjoUser, PendingAuthorization,
    TenantId, UserMapping,
};
use crate::error::{Classify, ErrorClass};
use crate::ports::{JobQueue, SecretStore, StoreError, TenantCredentials, TenantMessage};
use crate::salesforce::id::same_id;
use crate::salesforce::instance::SANDBOX_LOGIN_HOST;
use crate::salesforce::soql::{Cond, Order, Select};
use crate::salesforce::{InstanceUrlError, SalesforceError, SalesforceOrigin};
use state::{StateClaims, StateError};

/// Time allowed for Salesforce calls made while serving an admin request.
const API_BUDGET: Duration = Duration::from_secs(20);

/// Who is asking: from verified JWT claims, never from the path or the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant: TenantId,
    pub user_id: String,
}

/// Why a callback's `state` was not accepted.
enum StateCheck {
    Missing,
    Invalid(StateError),
    KeysUnavailable(StoreError),
}

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

/// The body of `PUT settings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsInput {
    pub consumer_key: String,
    /// Optional on update: keeps the stored secret when absent.
    #[serde(default)]
    pub consumer_secret: Option<SecretString>,
    pub instance_url: String,
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or a My Domain host.
    #[serde(default)]
    pub login_url: Option<String>,
    /// A sandbox without an explicit login URL logs in at test.salesforce.com.
    #[serde(default)]
    pub sandbox: bool,
    #[serde(default)]
    pub phone_region: Option<String>,
    #[serde(default)]
    pub default_owner_id: Option<String>,
    /// Days after a call during which the sync matches it again (0: never).
    #[serde(default)]
    pub rematch_days: Option<u16>,
    /// Summaries as Notes (absent: kept).
    #[serde(default)]
    pub summaries_as_notes: Option<bool>,
    /// Days stored calls are kept after they start (30 to 3,650).
    #[serde(default)]
    pub retention_days: Option<u16>,
}

/// The longest re-match window a tenant may set, in days.
pub const MAX_REMATCH_DAYS: u16 = 90;

/// Settings as shown back: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    /// What was normalised in the values just saved (only in the answer to a save).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<SettingsNotice>,
    pub consumer_key: String,
    pub consumer_secret_set: bool,
    pub instance_url: String,
    pub login_url: String,
    pub phone_region: String,
    pub default_owner_id: Option<String>,
    /// Days after a call during which the sync matches it again.
    pub rematch_days: u16,
    /// Each logged call's summary, highlights and rep's notes also written as
    /// a Salesforce Note, linked to the call's Who and What.
    pub summaries_as_notes: bool,
    /// Days stored calls (message and outcome) are kept after they start.
    pub retention_days: u16,
    pub callback_url: Option<String>,
    /// What was changed in the addresses typed, in plain words (on save only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub org_id: Option<String>,
    pub instance_url: Option<String>,
    pub salesforce_user: Option<SalesforceUserRef>,
    pub connected_at: Option<DateTime<Utc>>,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub api_usage: Option<ApiUsageView>,
    /// The last permissions check; `null` before the first.
    pub permissions: Option<crate::domain::permissions::PermissionCheck>,
    /// Why summaries cannot be saved as Notes, with the fix (the setting is on
    /// and the last Note was refused); `null` otherwise.
    pub notes_problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SalesforceUserRef {
    pub id: String,
    pub username: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiUsageView {
    pub used: u64,
    pub max: u64,
    pub percent: f64,
    pub observed_at: DateTime<Utc>,
}

impl From<crate::domain::ApiUsage> for ApiUsageView {
    fn from(u: crate::domain::ApiUsage) -> Self {
        Self {
            used: u.used,
            max: u.max,
            percent: u.percent_shown(),
            observed_at: u.observed_at,
        }
    }
}

/// An active, standard Salesforce user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SalesforceUser {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: Option<String>,
    #[serde(rename = "Email", default)]
    pub email: Option<String>,
    #[serde(rename = "Username", default)]
    pub username: Option<String>,
}

/// What saving the settings changed in what the admin typed (shown back in
/// plain words: the admin must recognise the host that will be used).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SettingsNotice {
    pub field: &'static str,
    /// `lightning_host` (a Lightning UI host mapped to its API host),
    /// `host_changed` (another host is used), `origin_only` (path, query or
    /// case dropped; https assumed).
    pub reason: &'static str,
    pub from: String,
    pub to: String,
}

/// How `raw`, as typed, became `origin`; `None` when it was already the origin.
pub fn normalisation_notice(
    field: &'static str,
    raw: &str,
    origin: &SalesforceOrigin,
) -> Option<SettingsNotice> {
    let typed = raw.trim();
    if typed.trim_end_matches('/') == origin.as_str() {
        return None;
    }
    let with_scheme = if typed.contains("://") {
        typed.to_string()
    } else {
        format!("https://{typed}")
    };
    let typed_host = Url::parse(&with_scheme)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let reason = if typed_host == origin.host() {
        "origin_only"
    } else if typed_host.ends_with(".lightning.force.com") {
        "lightning_host"
    } else {
        "host_changed"
    };
    Some(SettingsNotice {
        field,
        reason,
        from: typed.to_string(),
        to: origin.as_str().to_string(),
    })
}

/// Most Modjo users one request (or the directory) may name.
pub const MAX_MODJO_USERS: usize = 5_000;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutoMatchReport {
    pub matched: Vec<MatchedUser>,
    /// A manual mapping exists: left as it is.
    pub kept_manual: Vec<MatchedUser>,
    pub unmatched: Vec<String>,
    pub ambiguous: Vec<AmbiguousUser>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MatchedUser {
    pub modjo_user_id: String,
    pub sf_user_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AmbiguousUser {
    pub modjo_user_id: String,
    pub candidates: Vec<String>,
}

/// Query parameters Salesforce sends to the callback.
#[derive(Debug, Clone, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// How the callback ended, as the flag on the redirect back to Modjo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackResult {
    Connected,
    Denied,
    InvalidState,
    StateExpiredOrUsed,
    NotConfigured,
    TokenExchangeFailed,
    InvalidClient,
    InvalidSignature,
    IdentityFailed,
    DifferentOrg,
    Unavailable,
}

impl CallbackResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackResult::Connected => "connected",
            CallbackResult::Denied => "access_denied",
            CallbackResult::InvalidState => "invalid_state",
            CallbackResult::StateExpiredOrUsed => "state_expired_or_used",
            CallbackResult::NotConfigured => "not_configured",
            CallbackResult::TokenExchangeFailed => "token_exchange_failed",
            CallbackResult::InvalidClient => "invalid_client",
            CallbackResult::InvalidSignature => "invalid_signature",
            CallbackResult::IdentityFailed => "identity_failed",
            CallbackResult::DifferentOrg => "different_org",
            CallbackResult::Unavailable => "temporarily_unavailable",
        }
    }
}

fn audit_entry(actor: &str, action: &str, detail: Option<String>) -> AuditEntry {
    AuditEntry {
        at: Utc::now(),
        actor: actor.to_string(),
        action: action.to_string(),
        detail,
    }
}

/// A Modjo user id as the API accepts it.
fn check_modjo_user_id(id: &str) -> Result<(), ConnectError> {
    if crate::domain::validate_external_id(id) {
        Ok(())
    } else {
        Err(ConnectError::invalid(
            "users",
            "format",
            format!("invalid Modjo user id {id:?}"),
        ))
    }
}

fn valid_sf_id(id: &str, prefix: &str) -> bool {
    (id.len() == 15 || id.len() == 18)
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl<S: Store, K: SecretStore> App<S, K> {
    /// Records what `actor` did in the tenant's audit trail.
    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        detail: Option<String>,
    ) -> Result<(), StoreError> {
        self.store
            .append_audit(&actor.tenant, &audit_entry(&actor.user_id, action, detail))
            .await
    }

    fn callback_url(&self) -> Result<&Url, ConnectError> {
        self.oauth.as_ref().map(|o| &o.callback_url).ok_or_else(|| {
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

    /// `PUT settings`: validated, normalised, stored in Secrets Manager.
    pub async fn save_settings(
        &self,
        actor: &Actor,
        input: SettingsInput,
    ) -> Result<SettingsView, ConnectError> {
        let hosts = self.salesforce.hosts();
        let consumer_key = input.consumer_key.trim().to_string();
        if consumer_key.is_empty()
            || consumer_key.len() > 256
            || consumer_key.chars().any(char::is_whitespace)
        {
            return Err(ConnectError::invalid(
                "consumerKey",
                "format",
                "a consumer key is 1-256 characters without spaces",
            ));
        }
        let address = hosts.org_address(&input.instance_url)?;
        let instance = address.instance;
        let mut notes = address.notes;
        let login = match (&input.login_url, input.sandbox) {
            (Some(login), _) if !login.trim().is_empty() => {
                let typed = hosts
                    .org_address(login)
                    .map_err(|e| ConnectError::url("loginUrl", &e))?;
                notes.extend(typed.notes);
                typed.login
            }
            (_, true) => hosts
                .origin(SANDBOX_LOGIN_HOST)
                .map_err(|e| ConnectError::url("loginUrl", &e))?,
            // A My Domain serves the OAuth endpoints of its org; a pod's address
            // signs in at Salesforce's login host.
            _ => address.login,
        };
        let phone_region = match input.phone_region.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(r.to_ascii_uppercase())
            }
            Some(_) => {
                return Err(ConnectError::invalid(
                    "phoneRegion",
                    "format",
                    "expected an ISO 3166 country code such as FR",
                ));
            }
        };
        // Absent: kept; empty: cleared (the connected user owns unmapped hosts' calls).
        let default_owner = match input.default_owner_id.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(owner) if valid_sf_id(owner, "005") => Some(Some(owner.to_string())),
            Some(_) => {
                return Err(ConnectError::invalid(
                    "defaultOwnerId",
                    "format",
                    "expected a Salesforce user id (005…)",
                ));
            }
        };
        if input.rematch_days.is_some_and(|d| d > MAX_REMATCH_DAYS) {
            return Err(ConnectError::invalid(
                "rematchDays",
                "range",
                format!("calls are matched again for 0 to {MAX_REMATCH_DAYS} days"),
            ));
        }
        if input
            .retention_days
            .is_some_and(|d| !crate::erase::retention::valid_days(d))
        {
            return Err(ConnectError::invalid(
                "retentionDays",
                "range",
                format!(
                    "stored calls are kept for {} to {} days",
                    crate::erase::retention::MIN_RETENTION_DAYS,
                    crate::erase::retention::MAX_RETENTION_DAYS
                ),
            ));
        }

        let previous = self.secrets.get_credentials(&actor.tenant).await?;
        let consumer_secret = match (&input.consumer_secret, &previous) {
            (Some(s), _) if !s.expose_secret().trim().is_empty() => {
                SecretString::from(s.expose_secret().trim())
            }
            (_, Some(p)) if p.consumer_key == consumer_key => p.consumer_secret.clone(),
            _ => {
                return Err(ConnectError::invalid(
                    "consumerSecret",
                    "required",
                    "the consumer secret is required",
                ));
            }
        };
        // Tokens survive a secret rotation of the same app; another app, org or login
        // host invalidates them.
        let same_app = previous.as_ref().is_some_and(|p| {
            p.consumer_key == consumer_key
                && p.instance_url == instance.as_str()
                && p.login_url == login.as_str()
        });
        let (refresh_token, access_token) = match (&previous, same_app) {
            (Some(p), true) => (p.refresh_token.clone(), p.access_token.clone()),
            _ => (None, None),
        };
        let had_tokens = previous.as_ref().is_some_and(|p| p.refresh_token.is_some());
        let credentials = TenantCredentials {
            consumer_key,
            consumer_secret,
            instance_url: instance.as_str().to_string(),
            login_url: login.as_str().to_string(),
            refresh_token,
            access_token,
        };
        self.secrets
            .put_credentials(&actor.tenant, &credentials)
            .await?;
        self.salesforce.forget(&actor.tenant);

        let mut connection = self.connection_or_new(&actor.tenant).await?;
        if let Some(region) = phone_region {
            connection.phone_region = region;
        }
        if let Some(owner) = default_owner {
            connection.default_owner_id = owner;
        }
        if let Some(days) = input.rematch_days {
            connection.rematch_days = days;
        }
        if let Some(on) = input.summaries_as_notes {
            connection.summaries_as_notes = on;
        }
        if let Some(days) = input.retention_days {
            connection.retention_days = days;
        }
        connection.instance_url = Some(credentials.instance_url.clone());
        if had_tokens && !same_app {
            connection.status = ConnectionStatus::Pending;
            connection.status_reason = Some("Salesforce settings changed: connect again".into());
        }
        connection.updated_at = Utc::now();
        let connection = self.store.save_connection(&connection).await?;
        self.audit(
            actor,
            "settings_saved",
            Some(credentials.instance_url.clone()),
        )
        .await?;
        let mut view = self.settings_view(&credentials, &connection);
        // In plain words for whoever reads the answer, and as codes for the page.
        view.notes = notes;
        view.notices = normalisation_notice("instanceUrl", &input.instance_url, &instance)
            .into_iter()
            .chain(
                input
                    .login_url
                    .as_deref()
                    .filter(|l| !l.trim().is_empty())
                    .and_then(|l| normalisation_notice("loginUrl", l, &login)),
            )
            .collect();
        Ok(view)
    }

    fn settings_view(&self, c: &TenantCredentials, connection: &Connection) -> SettingsView {
        SettingsView {
            notices: Vec::new(),
            consumer_key: c.consumer_key.clone(),
            consumer_secret_set: !c.consumer_secret.expose_secret().is_empty(),
            instance_url: c.instance_url.clone(),
            login_url: c.login_url.clone(),
            phone_region: connection.phone_region.clone(),
            default_owner_id: connection.default_owner_id.clone(),
            rematch_days: connection.rematch_days,
            summaries_as_notes: connection.summaries_as_notes,
            retention_days: connection.retention_days,
            callback_url: self.oauth.as_ref().map(|o| o.callback_url.to_string()),
            notes: Vec::new(),
        }
    }

    /// `GET settings`.
    pub async fn settings(&self, tenant: &TenantId) -> Result<SettingsView, ConnectError> {
        let credentials = self
            .secrets
            .get_credentials(tenant)
            .await?
            .ok_or_else(|| ConnectError::NotFound("no Salesforce settings saved yet".into()))?;
        let connection = self.connection_or_new(tenant).await?;
        Ok(self.settings_view(&credentials, &connection))
    }

    /// `POST connect`: the URL to send the admin's browser to. Refuses while a
    /// stored authorisation still works (Salesforce keeps 5 per user and app).
    pub async fn start_connect(&self, actor: &Actor, force: bool) -> Result<Url, ConnectError> {
        let oauth = self.oauth.as_ref().ok_or_else(|| {
            ConnectError::Conflict("this function has no OAuth configuration".into())
        })?;
        let credentials = self.credentials(&actor.tenant).await?;
        let connection = self.store.get_connection(&actor.tenant).await?;
        if !force
            && connection
                .as_ref()
                .is_some_and(|c| c.status == ConnectionStatus::Connected)
        {
            return Err(ConnectError::Conflict(
                "already connected: the stored authorisation works; disconnect first or force a new authorisation".into(),
            ));
        }
        let nonce = random_token(32);
        let expires_at = Utc::now()
            + chrono::Duration::from_std(oauth.state_ttl)
                .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let claims = StateClaims {
            tenant: actor.tenant.clone(),
            user_id: actor.user_id.clone(),
            nonce: nonce.clone(),
            expires_at: expires_at.timestamp(),
        };
        let token = state::sign(&*self.signing_keys().await?, &claims);
        let app = self
            .salesforce
            .oauth_app(&credentials, &oauth.callback_url)?;
        let (url, verifier) = app.authorize_url(&token);
        self.store
            .put_pending(
                &actor.tenant,
                &PendingAuthorization {
                    nonce,
                    user_id: actor.user_id.clone(),
                    pkce_verifier: SecretString::from(verifier.secret().clone()),
                    expires_at,
                },
            )
            .await?;
        self.audit(actor, "connect_started", None).await?;
        Ok(url)
    }

    /// The OAuth callback: every check of DESIGN §4. Returns the flag for the
    /// redirect back to Modjo, and the tenant when the state named one.
    pub async fn complete_callback<Q: JobQueue>(
        &self,
        params: &CallbackParams,
        call_queue: &Q,
    ) -> (CallbackResult, Option<TenantId>) {
        let claims = match self.verify_state(params.state.as_deref()).await {
            Ok(c) => c,
            Err(StateCheck::Invalid(StateError::Expired)) => {
                return (CallbackResult::StateExpiredOrUsed, None);
            }
            Err(StateCheck::Invalid(e)) => {
                tracing::warn!(error = %e, "callback with a forged or malformed state");
                return (CallbackResult::InvalidState, None);
            }
            Err(StateCheck::Missing) => return (CallbackResult::InvalidState, None),
            Err(StateCheck::KeysUnavailable(e)) => {
                tracing::error!(error = %e, "cannot read the state-signing keys");
                return (CallbackResult::Unavailable, None);
            }
        };
        let tenant = claims.tenant.clone();
        let result = self.finish_callback(&claims, params, call_queue).await;
        let flag = match result {
            Ok(flag) => flag,
            Err(e) => {
                tracing::error!(tenant_id = %tenant, error = %e, "OAuth callback failed");
                if e.class().is_retryable() {
                    CallbackResult::Unavailable
                } else {
                    CallbackResult::TokenExchangeFailed
                }
            }
        };
        let detail = Some(flag.as_str().to_string());
        if let Err(e) = self
            .store
            .append_audit(
                &tenant,
                &audit_entry(&claims.user_id, "oauth_callback", detail),
            )
            .await
        {
            tracing::warn!(tenant_id = %tenant, error = %e, "audit entry not written");
        }
        (flag, Some(tenant))
    }

    /// The callback's `state`, verified with the keys this container holds, and
    /// once more with the keys read again when none of them signed it (a
    /// container started after a rotation signs with a key this one has not read).
    async fn verify_state(&self, token: Option<&str>) -> Result<StateClaims, StateCheck> {
        let token = token.ok_or(StateCheck::Missing)?;
        let ttl = self.oauth.as_ref().map(|o| o.state_ttl).unwrap_or_default();
        let keys = self
            .signing_keys()
            .await
            .map_err(StateCheck::KeysUnavailable)?;
        match state::verify(&keys, token, Utc::now(), ttl) {
            Err(StateError::BadSignature) => {
                let keys = self
                    .reload_signing_keys()
                    .await
                    .map_err(StateCheck::KeysUnavailable)?;
                state::verify(&keys, token, Utc::now(), ttl).map_err(StateCheck::Invalid)
            }
            checked => checked.map_err(StateCheck::Invalid),
        }
    }

    async fn finish_callback<Q: JobQueue>(
        &self,
        claims: &StateClaims,
        params: &CallbackParams,
        call_queue: &Q,
    ) -> Result<CallbackResult, ConnectError> {
        let tenant = &claims.tenant;
        // Single use: consumed before anything else, whatever happens next.
        let Some(pending) = self
            .store
            .take_pending(tenant, &claims.nonce, Utc::now())
            .await?
        else {
            return Ok(CallbackResult::StateExpiredOrUsed);
        };
        if pending.user_id != claims.user_id {
            return Ok(CallbackResult::InvalidState);
        }
        if let Some(error) = &params.error {
            tracing::info!(tenant_id = %tenant, error, description = params.error_description.as_deref().unwrap_or(""), "authorisation not granted");
            return Ok(if error == "access_denied" {
                CallbackResult::Denied
            } else {
                CallbackResult::TokenExchangeFailed
            });
        }
        let Some(code) = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 1024)
        else {
            return Ok(CallbackResult::TokenExchangeFailed);
        };
        let Some(mut credentials) = self.secrets.get_credentials(tenant).await? else {
            return Ok(CallbackResult::NotConfigured);
        };
        let app = self
            .salesforce
            .oauth_app(&credentials, self.callback_url()?)?;
        let grant = match app
            .exchange_code(self.salesforce.http(), code, &pending.pkce_verifier)
            .await
        {
            Ok(g) => g,
            Err(SalesforceError::BadSignature) => return Ok(CallbackResult::InvalidSignature),
            // Salesforce busy or down (5xx, unknown_error): the admin can try again.
            Err(e @ SalesforceError::OAuth { .. }) if e.is_transient() => {
                tracing::warn!(tenant_id = %tenant, error = %e, "code exchange failed transiently");
                return Ok(CallbackResult::Unavailable);
            }
            Err(SalesforceError::OAuth {
                error, description, ..
            }) => {
                tracing::warn!(tenant_id = %tenant, error, description, "code exchange refused");
                return Ok(if error.starts_with("invalid_client") {
                    CallbackResult::InvalidClient
                } else {
                    CallbackResult::TokenExchangeFailed
                });
            }
            Err(e) => return Err(e.into()),
        };
        let previous = self.connection_or_new(tenant).await?;
        if previous.status != ConnectionStatus::Disconnected
            && previous
                .org_id
                .as_deref()
                .is_some_and(|org| !same_id(org, &grant.org_id))
        {
            // Revoke what we were just given: it belongs to another org.
            let _ = app
                .revoke(
                    self.salesforce.http(),
                    &grant
                        .refresh_token
                        .clone()
                        .unwrap_or(grant.access_token.clone()),
                )
                .await;
            return Ok(CallbackResult::DifferentOrg);
        }
        let Some(refresh_token) = grant.refresh_token.clone() else {
            tracing::warn!(tenant_id = %tenant, "no refresh token granted: the app lacks the refresh_token scope");
            return Ok(CallbackResult::TokenExchangeFailed);
        };
        // A previous, still valid authorisation is revoked so the org's 5-token cap is
        // not eaten by reconnects.
        if let Some(old) = credentials.refresh_token.take() {
            if old.expose_secret() != refresh_token.expose_secret() {
                if let Err(e) = app.revoke(self.salesforce.http(), &old).await {
                    tracing::info!(tenant_id = %tenant, error = %e, "previous refresh token not revoked (probably already dead)");
                }
            }
        }
        credentials.refresh_token = Some(refresh_token);
        credentials.access_token = Some(grant.access_token.clone());
        credentials.instance_url = grant.instance.as_str().to_string();
        self.secrets.put_credentials(tenant, &credentials).await?;
        self.salesforce.forget(tenant);

        let identity = match self
            .session(tenant, API_BUDGET)
            .identity(grant.identity_url.as_str())
            .await
        {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "identity read failed");
                return Ok(CallbackResult::IdentityFailed);
            }
        };
        let was_waiting = previous.status == ConnectionStatus::NeedsReauth;
        if previous.version == 0 {
            self.store.save_connection(&previous).await?;
        }
        let now = Utc::now();
        update_connection(&self.store, tenant, |c| {
            c.status = ConnectionStatus::Connected;
            c.status_reason = None;
            c.instance_url = Some(credentials.instance_url.clone());
            c.org_id = Some(identity.organization_id.clone());
            c.sf_user_id = Some(identity.user_id.clone());
            c.sf_username = Some(identity.username.clone());
            c.connected_at = Some(now);
            true
        })
        .await?;
        // What the guide's steps granted, told before the first call fails (one
        // API call; a failure here does not undo the connect).
        if let Err(e) = permissions::run(self, tenant).await {
            tracing::warn!(tenant_id = %tenant, error = %e, "permissions not checked after connecting");
        }
        // Calls that waited (for a reconnect, or for the first connect) go again.
        let replayed =
            crate::calls::outcomes::replay_parked(&self.store, tenant, call_queue).await?;
        if replayed > 0 || was_waiting {
            tracing::info!(tenant_id = %tenant, replayed, "connected: parked calls replayed");
        }
        Ok(CallbackResult::Connected)
    }

    /// `POST permissions/check`: checks again what the connected user may do.
    pub async fn check_permissions(
        &self,
        actor: &Actor,
    ) -> Result<crate::domain::permissions::PermissionCheck, ConnectError> {
        self.require_connected(&actor.tenant).await?;
        permissions::run(self, &actor.tenant).await
    }

    /// `GET status`.
    pub async fn status(&self, tenant: &TenantId) -> Result<StatusView, ConnectError> {
        let connection = self.store.get_connection(tenant).await?.ok_or_else(|| {
            ConnectError::NotFound("this workspace has no Salesforce connection".into())
        })?;
        Ok(StatusView {
            status: connection.status,
            status_reason: connection.status_reason,
            org_id: connection.org_id,
            instance_url: connection.instance_url,
            salesforce_user: connection.sf_user_id.map(|id| SalesforceUserRef {
                id,
                username: connection.sf_username,
            }),
            connected_at: connection.connected_at,
            last_sync_at: connection.last_sync_at,
            api_usage: connection.api_usage.map(ApiUsageView::from),
            permissions: connection.permissions,
            notes_problem: connection
                .notes_problem
                .filter(|_| connection.summaries_as_notes),
        })
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

    /// `GET users`: the org's active standard users (one API call).
    pub async fn salesforce_users(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<SalesforceUser>, ConnectError> {
        self.require_connected(tenant).await?;
        let soql = Select::new("User", &["Id", "Name", "Email", "Username"])
            .filter(Cond::and([
                Cond::eq("IsActive", true),
                Cond::eq("UserType", "Standard"),
            ]))
            .order_by("Name", Order::Asc)
            .render()
            .map_err(SalesforceError::from)?;
        Ok(self
            .session(tenant, API_BUDGET)
            .query_all_pages(&soql, false)
            .await?)
    }

    /// `POST users/auto-match`: case-insensitive email; ambiguous or unmatched
    /// users are reported, never guessed; a manual mapping is kept.
    pub async fn auto_match(
        &self,
        actor: &Actor,
        users: Vec<ModjoUser>,
    ) -> Result<AutoMatchReport, ConnectError> {
        if users.len() > MAX_MODJO_USERS {
            return Err(ConnectError::invalid(
                "users",
                "too_many",
                "at most 5000 users per request",
            ));
        }
        let sf_users = self.salesforce_users(&actor.tenant).await?;
        let mut by_email: HashMap<String, Vec<String>> = HashMap::new();
        for u in &sf_users {
            if let Some(email) = u.email.as_deref().and_then(normalize::email) {
                by_email.entry(email).or_default().push(u.id.clone());
            }
        }
        let mut report = AutoMatchReport::default();
        for user in users {
            check_modjo_user_id(&user.id)?;
            let candidates = normalize::email(&user.email)
                .and_then(|e| by_email.get(&e))
                .cloned()
                .unwrap_or_default();
            match candidates.as_slice() {
                [] => report.unmatched.push(user.id),
                [one] => {
                    let mapping = UserMapping {
                        modjo_user_id: user.id.clone(),
                        sf_user_id: one.clone(),
                        source: MappingSource::Auto,
                        updated_at: Utc::now(),
                    };
                    if self.store.put_mapping(&actor.tenant, &mapping).await? {
                        report.matched.push(MatchedUser {
                            modjo_user_id: user.id,
                            sf_user_id: one.clone(),
                        });
                    } else {
                        let manual = self.store.get_mapping(&actor.tenant, &user.id).await?;
                        report.kept_manual.push(MatchedUser {
                            modjo_user_id: user.id,
                            sf_user_id: manual.map(|m| m.sf_user_id).unwrap_or_default(),
                        });
                    }
                }
                many => report.ambiguous.push(AmbiguousUser {
                    modjo_user_id: user.id,
                    candidates: many.to_vec(),
                }),
            }
        }
        self.audit(
            actor,
            "users_auto_matched",
            Some(format!(
                "{} matched, {} unmatched, {} ambiguous",
                report.matched.len(),
                report.unmatched.len(),
                report.ambiguous.len()
            )),
        )
        .await?;
        Ok(report)
    }

    /// `POST sync`: an admin asks for a sync now, rather than at the next
    /// 15-minute run: one job on the sync-jobs queue (the tenant's lease keeps it
    /// from overlapping a running sync). At most once a minute, since every run
    /// spends API calls of the org's allocation.
    pub async fn request_sync<Q: JobQueue>(
        &self,
        actor: &Actor,
        jobs: &Q,
    ) -> Result<DateTime<Utc>, ConnectError> {
        const MIN_INTERVAL: chrono::Duration = chrono::Duration::seconds(60);
        let now = Utc::now();
        let connection = self.require_connected(&actor.tenant).await?;
        if let Some(wait) = connection
            .sync_requested_at
            .map(|at| at + MIN_INTERVAL - now)
            .filter(|wait| *wait > chrono::Duration::zero())
        {
            return Err(ConnectError::TooSoon {
                message: "a sync was requested less than a minute ago".into(),
                retry_after: wait.num_seconds().max(1) as u64,
            });
        }
        let mut granted = false;
        update_connection(&self.store, &actor.tenant, |c| {
            granted = c
                .sync_requested_at
                .is_none_or(|at| at + MIN_INTERVAL <= now);
            if granted {
                c.sync_requested_at = Some(now);
            }
            granted
        })
        .await?;
        if !granted {
            return Err(ConnectError::TooSoon {
                message: "a sync was requested less than a minute ago".into(),
                retry_after: MIN_INTERVAL.num_seconds() as u64,
            });
        }
        let job = crate::sync::SyncJob::new(actor.tenant.clone(), "manual");
        jobs.send_all(&[TenantMessage::new(&actor.tenant, job.to_body())])
            .await?;
        self.audit(actor, "sync_requested", None).await?;
        Ok(now)
    }

    /// `PUT modjo-users`: the platform's list of the workspace's users replaces
    /// the directory shown next to the Salesforce users. Ids are unique and valid,
    /// emails normalised; at most [`MAX_MODJO_USERS`].
    pub async fn replace_modjo_users(
        &self,
        actor: &Actor,
        users: Vec<ModjoUser>,
    ) -> Result<Vec<ModjoUser>, ConnectError> {
        if users.len() > MAX_MODJO_USERS {
            return Err(ConnectError::invalid(
                "users",
                "too_many",
                format!("at most {MAX_MODJO_USERS} users"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut clean = Vec::with_capacity(users.len());
        for user in users {
            check_modjo_user_id(&user.id)?;
            if !seen.insert(user.id.clone()) {
                return Err(ConnectError::invalid(
                    "users",
                    "duplicate",
                    format!("Modjo user {} is listed twice", user.id),
                ));
            }
            let Some(email) = normalize::email(&user.email) else {
                return Err(ConnectError::invalid(
                    "users",
                    "format",
                    format!("invalid email for Modjo user {}", user.id),
                ));
            };
            let name = user
                .name
                .map(|n| n.trim().chars().take(200).collect::<String>())
                .filter(|n| !n.is_empty());
            clean.push(ModjoUser {
                id: user.id,
                email,
                name,
            });
        }
        clean.sort_by(|a, b| a.id.cmp(&b.id));
        self.store
            .replace_modjo_users(&actor.tenant, &clean)
            .await?;
        self.audit(
            actor,
            "modjo_users_replaced",
            Some(format!("{} users", clean.len())),
        )
        .await?;
        Ok(clean)
    }

    /// `GET modjo-users`.
    pub async fn modjo_users(&self, tenant: &TenantId) -> Result<Vec<ModjoUser>, ConnectError> {
        Ok(self.store.modjo_users(tenant).await?)
    }

    /// `PUT mappings/<modjoUserId>`: a manual mapping to an active standard user.
    pub async fn set_mapping(
        &self,
        actor: &Actor,
        modjo_user_id: &str,
        sf_user_id: &str,
    ) -> Result<UserMapping, ConnectError> {
        if !crate::domain::validate_external_id(modjo_user_id) {
            return Err(ConnectError::invalid(
                "modjoUserId",
                "format",
                "invalid Modjo user id",
            ));
        }
        if !valid_sf_id(sf_user_id, "005") {
            return Err(ConnectError::invalid(
                "sfUserId",
                "format",
                "expected a Salesforce user id (005…)",
            ));
        }
        self.require_connected(&actor.tenant).await?;
        let soql = Select::new("User", &["Id"])
            .filter(Cond::and([
                Cond::eq("Id", sf_user_id),
                Cond::eq("IsActive", true),
                Cond::eq("UserType", "Standard"),
            ]))
            .render()
            .map_err(SalesforceError::from)?;
        let found: Vec<Map<String, Value>> = self
            .session(&actor.tenant, API_BUDGET)
            .query_all_pages(&soql, false)
            .await?;
        let Some(id) = found
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
        else {
            return Err(ConnectError::invalid(
                "sfUserId",
                "not_found",
                "no active standard Salesforce user has this id",
            ));
        };
        let mapping = UserMapping {
            modjo_user_id: modjo_user_id.to_string(),
            sf_user_id: id.to_string(),
            source: MappingSource::Manual,
            updated_at: Utc::now(),
        };
        self.store.put_mapping(&actor.tenant, &mapping).await?;
        self.audit(
            actor,
            "mapping_set",
            Some(format!("{modjo_user_id} → {id}")),
        )
        .await?;
        Ok(mapping)
    }

    /// `DELETE mappings/<modjoUserId>`.
    pub async fn delete_mapping(
        &self,
        actor: &Actor,
        modjo_user_id: &str,
    ) -> Result<(), ConnectError> {
        if !self
            .store
            .delete_mapping(&actor.tenant, modjo_user_id)
            .await?
        {
            return Err(ConnectError::NotFound("no mapping for this user".into()));
        }
        self.audit(actor, "mapping_deleted", Some(modjo_user_id.to_string()))
            .await?;
        Ok(())
    }

    /// `GET mappings`.
    pub async fn mappings(&self, tenant: &TenantId) -> Result<Vec<UserMapping>, ConnectError> {
        Ok(self.store.list_mappings(tenant).await?)
    }

    /// `DELETE connection`: revoke at Salesforce, delete the secret, mark
    /// disconnected, keep the audit trail (and the imported data's history).
    pub async fn disconnect(&self, actor: &Actor) -> Result<(), ConnectError> {
        if self.store.get_connection(&actor.tenant).await?.is_none() {
            return Err(ConnectError::NotFound(
                "this workspace has no Salesforce connection".into(),
            ));
        }
        if let Some(credentials) = self.secrets.get_credentials(&actor.tenant).await? {
            if let Some(refresh) = &credentials.refresh_token {
                let placeholder = Url::parse("https://invalid.invalid/")
                    .map_err(|e| SalesforceError::Decode(e.to_string()))?;
                let app = self
                    .salesforce
                    .oauth_app(&credentials, self.callback_url().unwrap_or(&placeholder))?;
                match app.revoke(self.salesforce.http(), refresh).await {
                    Ok(()) => {}
                    // Already revoked or expired: nothing left to revoke.
                    Err(SalesforceError::OAuth { error, .. })
                        if error == "invalid_token" || error == "unsupported_token_type" => {}
                    // Keep the secret so the revoke can be retried; never leave a live token behind.
                    Err(e) => return Err(e.into()),
                }
            }
            self.secrets.delete_credentials(&actor.tenant).await?;
        }
        self.salesforce.forget(&actor.tenant);
        update_connection(&self.store, &actor.tenant, |c| {
            c.status = ConnectionStatus::Disconnected;
            c.status_reason = Some("disconnected by an admin".into());
            true
        })
        .await?;
        self.audit(actor, "disconnected", None).await?;
        Ok(())
    }
}

fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}
