//! AWS client construction. The same code runs against AWS and against moto:
//! `AWS_ENDPOINT_URL` (the SDK-wide variable) redirects every client.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::config::{ProcessEnv, Source};

pub const ENDPOINT_URL_VAR: &str = "AWS_ENDPOINT_URL";

/// The AWS clients a function may use. Cheap to clone (each is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// The Lambda path: region and credentials from the standard chain, and
    /// `AWS_ENDPOINT_URL` honoured when set (local stack, moto).
    pub async fn from_env() -> Self {
        Self::from_sdk_config(&load_sdk_config(&ProcessEnv).await)
    }

    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
        }
    }

    /// Clients for a local AWS emulator (moto) with static dummy credentials:
    /// tests run many of these side by side without touching the process environment.
    pub async fn for_endpoint(endpoint_url: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(Region::new("eu-west-1"))
            .endpoint_url(endpoint_url)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing", "testing", None, None, "static",
            ))
            .load()
            .await;
        Self::from_sdk_config(&config)
    }
}

/// The HTTPS client of every AWS client: rustls on ring, the crypto library the
/// Salesforce (reqwest) and Pub/Sub (tonic) clients use, so that a function
/// links one crypto library, not two. It trusts the system's roots: the one
/// bundle named by SSL_CERT_FILE where set (template.yaml sets it).
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Loads the SDK configuration from the standard chain, pointing every client at
/// `AWS_ENDPOINT_URL` when the source sets it.
pub async fn load_sdk_config(env: &dyn Source) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if let Some(endpoint) = env.get(ENDPOINT_URL_VAR).filter(|v| !v.trim().is_empty()) {
        loader = loader.endpoint_url(endpoint.trim());
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[tokio::test]
    async fn endpoint_url_is_honoured() {
        let env: HashMap<&str, &str> = [("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")]
            .into_iter()
            .collect();
        let config = load_sdk_config(&env).await;
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5999"));

        let none: HashMap<&str, &str> = HashMap::new();
        assert_eq!(load_sdk_config(&none).await.endpoint_url(), None);
    }
}
