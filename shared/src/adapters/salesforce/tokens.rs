//! The token lifecycle of one tenant's session: the access token cached per
//! container, else read from the tenant's secret, else obtained with the refresh
//! token; refreshed single-flight (a mutex in the process, a lease across
//! containers) so that with refresh-token rotation the only valid refresh token is
//! never lost: the new one is persisted before the access token is used. A
//! refresh Salesforce refuses for good is reported through [`AccessRefusals`];
//! what it means for the connection is the connect use case's decision.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use super::client::SalesforceClient;
use crate::backoff::Backoff;
use crate::domain::TenantId;
use crate::domain::hosts::SalesforceOrigin;
use crate::error::{Classify, ErrorClass};
use crate::ports::{AccessRefusal, AccessRefusals, LeaseStore, SecretStore, TenantCredentials};
use crate::salesforce::error::SalesforceError;

/// Lease that serialises token refreshes of one tenant across Lambda containers.
const REFRESH_LEASE: &str = "token-refresh";
const REFRESH_LEASE_TTL: Duration = Duration::from_secs(30);
/// Attempts of a refresh Salesforce answers as busy.
const MAX_ATTEMPTS: u32 = 5;

pub(super) struct CachedToken {
    pub access: SecretString,
    pub origin: SalesforceOrigin,
}

impl CachedToken {
    fn same_as(&self, other: &CachedToken) -> bool {
        self.access.expose_secret() == other.access.expose_secret()
    }
}

#[derive(Default)]
pub(super) struct TenantTokens {
    refresh: tokio::sync::Mutex<()>,
    current: RwLock<Option<Arc<CachedToken>>>,
}

/// One tenant's tokens, for one session.
pub(super) struct Tokens<'a, S, D> {
    client: &'a SalesforceClient,
    tenant: TenantId,
    secrets: &'a S,
    store: &'a D,
    deadline: Instant,
    cache: Arc<TenantTokens>,
}

impl<'a, S, D> Tokens<'a, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    pub(super) fn new(
        client: &'a SalesforceClient,
        tenant: TenantId,
        secrets: &'a S,
        store: &'a D,
        deadline: Instant,
        cache: Arc<TenantTokens>,
    ) -> Self {
        Self {
            client,
            tenant,
            secrets,
            store,
            deadline,
            cache,
        }
    }

    /// The cached access token, else the one persisted in the tenant's secret, else a
    /// fresh one from the refresh token.
    pub(super) async fn current(&self) -> Result<Arc<CachedToken>, SalesforceError> {
        if let Some(t) = self.cache.current.read().ok().and_then(|c| c.clone()) {
            return Ok(t);
        }
        let creds = self.credentials().await?;
        match &creds.access_token {
            Some(access) => Ok(self.adopt(access.clone(), &creds.instance_url)?),
            None => {
                self.refresh(None).await?;
                self.cache
                    .current
                    .read()
                    .ok()
                    .and_then(|c| c.clone())
                    .ok_or_else(|| {
                        SalesforceError::NeedsReauth("no access token after refresh".into())
                    })
            }
        }
    }

    async fn credentials(&self) -> Result<TenantCredentials, SalesforceError> {
        self.secrets
            .get_credentials(&self.tenant)
            .await?
            .ok_or_else(|| {
                SalesforceError::NeedsReauth(
                    "no Salesforce credentials stored for this tenant".into(),
                )
            })
    }

    fn adopt(
        &self,
        access: SecretString,
        instance_url: &str,
    ) -> Result<Arc<CachedToken>, SalesforceError> {
        let origin = self.client.hosts().origin(instance_url)?;
        let token = Arc::new(CachedToken { access, origin });
        if let Ok(mut current) = self.cache.current.write() {
            *current = Some(token.clone());
        }
        Ok(token)
    }

    /// Replaces the access token that failed (`None`: there was none). Single-flight
    /// within the process (a mutex), and across containers (a DynamoDB lease), so that
    /// with refresh-token rotation two refreshes never race and the only valid refresh
    /// token is never lost: the new one is persisted before the access token is used.
    pub(super) async fn refresh(
        &self,
        failed: Option<&CachedToken>,
    ) -> Result<(), SalesforceError> {
        let _in_process = self.cache.refresh.lock().await;
        let latest = self.cache.current.read().ok().and_then(|c| c.clone());
        if let Some(latest) = latest {
            if failed.is_none_or(|f| !f.same_as(&latest)) {
                return Ok(()); // another task of this process already refreshed
            }
        }
        let holder = format!("refresh-{:016x}", rand::random::<u64>());
        loop {
            let lease = self
                .store
                .acquire_lease(
                    &self.tenant,
                    REFRESH_LEASE,
                    &holder,
                    REFRESH_LEASE_TTL,
                    Utc::now(),
                )
                .await?;
            if lease.is_some() {
                break;
            }
            // Another container is refreshing: adopt its token as soon as it lands.
            if let Some(done) = self.refreshed_elsewhere(failed).await? {
                self.adopt(done.0, &done.1)?;
                return Ok(());
            }
            if Instant::now() + Duration::from_millis(250) >= self.deadline {
                return Err(SalesforceError::Deadline(
                    "waiting for another token refresh".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let outcome = self.refresh_holding_lease(failed).await;
        if let Err(e) = self
            .store
            .release_lease(&self.tenant, REFRESH_LEASE, &holder)
            .await
        {
            tracing::warn!(tenant_id = %self.tenant, error = %e, "could not release the token-refresh lease; it will expire");
        }
        outcome
    }

    /// A token different from the one that failed, already in the secret.
    async fn refreshed_elsewhere(
        &self,
        failed: Option<&CachedToken>,
    ) -> Result<Option<(SecretString, String)>, SalesforceError> {
        let creds = self.credentials().await?;
        Ok(newer_token(&creds, failed).map(|token| (token, creds.instance_url)))
    }

    async fn refresh_holding_lease(
        &self,
        failed: Option<&CachedToken>,
    ) -> Result<(), SalesforceError> {
        // Re-read under the lease: another container may have refreshed just before.
        let mut creds = self.credentials().await?;
        if let Some(access) = newer_token(&creds, failed) {
            self.adopt(access, &creds.instance_url)?;
            return Ok(());
        }
        let refresh_token = creds
            .refresh_token
            .clone()
            .ok_or_else(|| SalesforceError::NeedsReauth("no refresh token stored".into()))?;
        // The callback URL plays no part in a refresh; the login host is what matters.
        let placeholder = Url::parse("https://invalid.invalid/")
            .map_err(|e| SalesforceError::Decode(e.to_string()))?;
        let app = self.client.oauth_app(&creds, &placeholder)?;
        let mut tries = 0u32;
        let grant = loop {
            let err = match app.refresh(self.client.http(), &refresh_token).await {
                Ok(g) => break g,
                Err(e) => e,
            };
            if err.class() == ErrorClass::NeedsReauth {
                let reason = format!(
                    "Salesforce refused the stored authorisation ({}); reconnect the org",
                    err.code().unwrap_or("error")
                );
                let refusal = AccessRefusal::Authorisation {
                    code: err.code().unwrap_or("error").to_string(),
                };
                self.store.access_refused(&self.tenant, &refusal).await?;
                return Err(SalesforceError::NeedsReauth(reason));
            }
            // Busy (5xx, `unknown_error`), or the same refresh token being used at
            // that instant (another refresh in flight): wait and try again.
            tries += 1;
            let pause = Backoff::SALESFORCE.delay(tries);
            if !err.is_transient()
                || tries >= MAX_ATTEMPTS
                || Instant::now() + pause >= self.deadline
            {
                return Err(err);
            }
            tracing::warn!(tenant_id = %self.tenant, attempt = tries, error = %err, "token refresh failed transiently; retrying");
            tokio::time::sleep(pause).await;
        };
        creds.access_token = Some(grant.access_token.clone());
        if let Some(rotated) = grant.refresh_token {
            creds.refresh_token = Some(rotated);
        }
        creds.instance_url = grant.instance.as_str().to_string();
        // Persist first: with rotation, the old refresh token is already dead.
        self.secrets.put_credentials(&self.tenant, &creds).await?;
        self.adopt(grant.access_token, grant.instance.as_str())?;
        tracing::info!(tenant_id = %self.tenant, "Salesforce access token refreshed");
        Ok(())
    }
}

/// The stored access token, when it is not the one that failed.
fn newer_token(creds: &TenantCredentials, failed: Option<&CachedToken>) -> Option<SecretString> {
    let stored = creds.access_token.as_ref()?;
    failed
        .is_none_or(|f| stored.expose_secret() != f.access.expose_secret())
        .then(|| stored.clone())
}
