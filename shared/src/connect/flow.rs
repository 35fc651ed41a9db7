//! The OAuth connect flow: the authorisation URL (signed, single-use state and
//! PKCE), and the callback that exchanges the code, keeps the tokens, checks
//! the permissions and replays the calls parked while the tenant was away.

use super::*;

/// Why a callback's `state` was not accepted.
enum StateCheck {
    Missing,
    Invalid(StateError),
    KeysUnavailable(StoreError),
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

fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl<S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'_, S, K, C> {
    /// `POST connect`: the URL to send the admin's browser to. Refuses while a
    /// stored authorisation still works (Salesforce keeps 5 per user and app).
    pub async fn start_connect(&self, actor: &Actor, force: bool) -> Result<Url, ConnectError> {
        let oauth = self.oauth.ok_or_else(|| {
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
        let token = state::sign(&*self.keys.current(self.secrets).await?, &claims);
        let (url, verifier) =
            self.salesforce
                .authorize_url(&credentials, &oauth.callback_url, &token)?;
        self.store
            .put_pending(
                &actor.tenant,
                &PendingAuthorization {
                    nonce,
                    user_id: actor.user_id.clone(),
                    pkce_verifier: verifier,
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
                &AuditEntry::now(&claims.user_id, "oauth_callback", detail),
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
        let ttl = self.oauth.map(|o| o.state_ttl).unwrap_or_default();
        let keys = self
            .keys
            .current(self.secrets)
            .await
            .map_err(StateCheck::KeysUnavailable)?;
        match state::verify(&keys, token, Utc::now(), ttl) {
            Err(StateError::BadSignature) => {
                let keys = self
                    .keys
                    .reload(self.secrets)
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
        let callback_url = self.callback_url()?;
        let grant = match self
            .salesforce
            .exchange_code(&credentials, callback_url, code, &pending.pkce_verifier)
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
            let _ = self
                .salesforce
                .revoke(
                    &credentials,
                    callback_url,
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
                if let Err(e) = self
                    .salesforce
                    .revoke(&credentials, callback_url, &old)
                    .await
                {
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
            .session(tenant)
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
        update_connection(self.store, tenant, |c| {
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
        if let Err(e) = self.run_permissions_check(tenant).await {
            tracing::warn!(tenant_id = %tenant, error = %e, "permissions not checked after connecting");
        }
        // Calls that waited (for a reconnect, or for the first connect) go again.
        let replayed =
            crate::calls::outcomes::replay_parked(self.store, tenant, call_queue).await?;
        if replayed > 0 || was_waiting {
            tracing::info!(tenant_id = %tenant, replayed, "connected: parked calls replayed");
        }
        Ok(CallbackResult::Connected)
    }
}
