//! Secrets Manager adapter: per-tenant Salesforce credentials and the OAuth
//! state-signing key. One secret per tenant, named `<prefix><tenant>`, holding JSON.

use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};

use super::map_sdk_error;
use crate::domain::TenantId;
use crate::ports::{SecretStore, StoreError, StoreResult, TenantCredentials};

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
        match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(out) => Ok(out.secret_string.map(SecretString::from)),
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

    async fn signing_key(&self, secret_id: &str) -> StoreResult<SecretString> {
        let key = self.read(secret_id).await?.ok_or_else(|| {
            StoreError::Rejected(format!("signing key secret {secret_id} does not exist"))
        })?;
        if key.expose_secret().len() < 32 {
            return Err(StoreError::Corrupt(format!(
                "signing key secret {secret_id} is shorter than 32 characters"
            )));
        }
        Ok(key)
    }
}
