//! Secrets Manager adapter: per-tenant Salesforce credentials and the OAuth
//! state-signing keys. One secret per tenant, named `<prefix><tenant>`, holding
//! JSON; the signing key's current and previous versions (rotation).

use aws_sdk_secretsmanager::Client;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::map_sdk_error;
use crate::domain::{SigningKeys, TenantId};
use crate::ports::{SecretStore, StoreError, StoreResult, TenantCredentials};

/// Secrets Manager's label of the version the current one replaced.
const PREVIOUS: &str = "AWSPREVIOUS";

#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

impl SecretsManagerStore {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// The secret's name; the IAM policies grant `<prefix>*`.
    pub fn secret_name(&self, tenant: &TenantId) -> String {
        format!("{}{}", self.prefix, tenant)
    }

    async fn read(&self, secret_id: &str) -> StoreResult<Option<SecretString>> {
        Ok(self
            .read_version(secret_id, None)
            .await?
            .map(|(value, _)| value))
    }

    /// The secret's value at a staging label (`AWSCURRENT` when `None`), with
    /// the time its version was created; `None` when there is no such version.
    async fn read_version(
        &self,
        secret_id: &str,
        stage: Option<&str>,
    ) -> StoreResult<Option<(SecretString, Option<DateTime<Utc>>)>> {
        match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_stage(stage.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => {
                let created = out
                    .created_date
                    .and_then(|d| DateTime::<Utc>::from_timestamp(d.secs(), d.subsec_nanos()));
                Ok(out.secret_string.map(|v| (SecretString::from(v), created)))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(map_sdk_error("GetSecretValue", e)),
        }
    }
}

/// A signing key shorter than this is refused (HMAC-SHA256 wants 32 bytes).
const MIN_SIGNING_KEY: usize = 32;

impl SecretStore for SecretsManagerStore {
    async fn get_credentials(&self, tenant: &TenantId) -> StoreResult<Option<TenantCredentials>> {
        let Some(raw) = self.read(&self.secret_name(tenant)).await? else {
            return Ok(None);
        };
        // The decode error never quotes the secret: serde_json reports positions only.
        serde_json::from_str(raw.expose_secret())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("credentials of tenant {tenant}: {e}")))
    }

    async fn put_credentials(
        &self,
        tenant: &TenantId,
        credentials: &TenantCredentials,
    ) -> StoreResult<()> {
        let name = self.secret_name(tenant);
        let body = SecretString::from(
            serde_json::to_string(credentials).map_err(|e| StoreError::Rejected(e.to_string()))?,
        );
        let put = self
            .client
            .put_secret_value()
            .secret_id(&name)
            .secret_string(body.expose_secret())
            .send()
            .await;
        match put {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(map_sdk_error("PutSecretValue", e)),
        }
        let create = self
            .client
            .create_secret()
            .name(&name)
            .description(format!("Salesforce connection of Modjo tenant {tenant}"))
            .secret_string(body.expose_secret())
            .tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("modjo:tenant")
                    .value(tenant.as_str())
                    .build(),
            )
            .send()
            .await;
        match create {
            Ok(_) => Ok(()),
            // Created concurrently by another writer: write our value as the new version.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.client
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(body.expose_secret())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_sdk_error("PutSecretValue", e))
            }
            Err(e) => Err(map_sdk_error("CreateSecret", e)),
        }
    }

    async fn delete_credentials(&self, tenant: &TenantId) -> StoreResult<()> {
        match self
            .client
            .delete_secret()
            .secret_id(self.secret_name(tenant))
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(map_sdk_error("DeleteSecret", e)),
        }
    }

    async fn signing_keys(&self, secret_id: &str) -> StoreResult<SigningKeys> {
        let (current, created) = self.read_version(secret_id, None).await?.ok_or_else(|| {
            StoreError::Rejected(format!("signing key secret {secret_id} does not exist"))
        })?;
        if current.expose_secret().len() < MIN_SIGNING_KEY {
            return Err(StoreError::Corrupt(format!(
                "signing key secret {secret_id} is shorter than {MIN_SIGNING_KEY} characters"
            )));
        }
        // The version the current one replaced, if any. Its states stay valid
        // for a while after the current version was created (the rotation).
        let previous = match created {
            Some(rotated_at) => self
                .read_version(secret_id, Some(PREVIOUS))
                .await?
                .map(|(key, _)| key)
                .filter(|key| key.expose_secret().len() >= MIN_SIGNING_KEY)
                .map(|key| (key, rotated_at)),
            None => None,
        };
        Ok(SigningKeys { current, previous })
    }
}
