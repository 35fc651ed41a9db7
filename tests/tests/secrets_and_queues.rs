//! The Secrets Manager and SQS adapters against moto.

use e2e::moto::AwsEnv;
use e2e::unique;
use secrecy::{ExposeSecret, SecretString};
use shared::domain::TenantId;
use shared::ports::{JobQueue, SecretStore, TenantCredentials};

fn credentials(refresh: Option<&str>) -> TenantCredentials {
    TenantCredentials {
        consumer_key: "3MVG9-consumer-key".into(),
        consumer_secret: SecretString::from("consumer-secret-value"),
        instance_url: "https://acme.my.salesforce.com".into(),
        login_url: "https://login.salesforce.com".into(),
        refresh_token: refresh.map(SecretString::from),
        access_token: None,
    }
}

#[tokio::test]
async fn tenant_secret_create_update_read_delete() {
    let env = AwsEnv::new().await;
    let secrets = env.secrets();
    let t = TenantId::parse(&unique("acme")).unwrap();
    assert!(secrets.get_credentials(&t).await.unwrap().is_none());

    // Create.
    secrets
        .put_credentials(&t, &credentials(None))
        .await
        .unwrap();
    let read = secrets.get_credentials(&t).await.unwrap().unwrap();
    assert_eq!(read.consumer_key, "3MVG9-consumer-key");
    assert_eq!(
        read.consumer_secret.expose_secret(),
        "consumer-secret-value"
    );
    assert!(read.refresh_token.is_none());

    // Update: a new version replaces the old one.
    let mut updated = credentials(Some("5Aep861-refresh"));
    updated.access_token = Some(SecretString::from("00D!access"));
    secrets.put_credentials(&t, &updated).await.unwrap();
    let read = secrets.get_credentials(&t).await.unwrap().unwrap();
    assert_eq!(
        read.refresh_token.unwrap().expose_secret(),
        "5Aep861-refresh"
    );
    assert_eq!(read.access_token.unwrap().expose_secret(), "00D!access");

    // It is stored under the tenant's own name, below the configured prefix.
    let raw = env
        .clients
        .secrets
        .get_secret_value()
        .secret_id(format!("{}{}", env.resources.secret_prefix, t))
        .send()
        .await
        .unwrap();
    assert!(raw.secret_string().unwrap().contains("5Aep861-refresh"));

    // Delete, then deleting again is fine, and a reconnect can create it anew.
    secrets.delete_credentials(&t).await.unwrap();
    secrets.delete_credentials(&t).await.unwrap();
    assert!(secrets.get_credentials(&t).await.unwrap().is_none());
    secrets
        .put_credentials(&t, &credentials(None))
        .await
        .unwrap();
    assert!(secrets.get_credentials(&t).await.unwrap().is_some());
}

#[tokio::test]
async fn corrupt_secret_is_a_permanent_error_without_its_content() {
    let env = AwsEnv::new().await;
    let t = TenantId::parse(&unique("acme")).unwrap();
    env.clients
        .secrets
        .create_secret()
        .name(format!("{}{}", env.resources.secret_prefix, t))
        .secret_string("{\"consumerKey\": \"k\", \"consumerSecret\": \"hunter2-secret\"")
        .send()
        .await
        .unwrap();
    let err = env.secrets().get_credentials(&t).await.unwrap_err();
    assert_eq!(
        shared::error::Classify::class(&err),
        shared::error::ErrorClass::Permanent
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn signing_key_is_read_and_checked() {
    let env = AwsEnv::new().await;
    let secrets = env.secrets();
    let key = secrets
        .signing_key(&env.resources.signing_key_id)
        .await
        .unwrap();
    assert!(key.expose_secret().len() >= 32);
    assert!(secrets.signing_key("modjo/test/absent").await.is_err());
    let short = unique("short-key");
    env.clients
        .secrets
        .create_secret()
        .name(&short)
        .secret_string("too-short")
        .send()
        .await
        .unwrap();
    assert!(secrets.signing_key(&short).await.is_err());
}

#[tokio::test]
async fn queue_sends_every_body_in_batches() {
    let env = AwsEnv::new().await;
    let queue = env.queue(&env.resources.sync_jobs_queue);
    let bodies: Vec<String> = (0..23)
        .map(|i| serde_json::json!({"version": 1, "tenantId": format!("t{i}")}).to_string())
        .collect();
    queue.send_all(&bodies).await.unwrap();
    let mut received = env.drain(&env.resources.sync_jobs_queue).await;
    received.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(received, expected);
}
