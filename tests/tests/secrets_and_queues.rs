//! The Secrets Manager and SQS adapters against moto.

use e2e::moto::AwsEnv;
use e2e::unique;
use secrecy::{ExposeSecret, SecretString};
use shared::domain::TenantId;
use shared::ports::{JobQueue, SecretStore, TenantCredentials, TenantMessage};

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
async fn signing_keys_are_read_and_checked() {
    let env = AwsEnv::new().await;
    let secrets = env.secrets();
    let keys = secrets
        .signing_keys(&env.resources.signing_key_id)
        .await
        .unwrap();
    assert!(keys.current.expose_secret().len() >= 32);
    assert!(keys.previous.is_none(), "never rotated: no previous key");
    assert!(secrets.signing_keys("modjo/test/absent").await.is_err());
    let short = unique("short-key");
    env.clients
        .secrets
        .create_secret()
        .name(&short)
        .secret_string("too-short")
        .send()
        .await
        .unwrap();
    assert!(secrets.signing_keys(&short).await.is_err());
}

#[tokio::test]
async fn a_rotated_signing_key_keeps_its_predecessor_and_the_rotation_time() {
    let env = AwsEnv::new().await;
    let secrets = env.secrets();
    let id = &env.resources.signing_key_id;
    let before = secrets.signing_keys(id).await.unwrap();
    let rotation = chrono::Utc::now();
    let new_key = "r".repeat(64);
    env.clients
        .secrets
        .put_secret_value()
        .secret_id(id)
        .secret_string(&new_key)
        .send()
        .await
        .unwrap();

    let after = secrets.signing_keys(id).await.unwrap();
    assert_eq!(after.current.expose_secret(), new_key);
    let (previous, rotated_at) = after.previous.expect("the replaced key");
    assert_eq!(
        previous.expose_secret(),
        before.current.expose_secret(),
        "the previous key is the one replaced"
    );
    let lag = (rotated_at - rotation).num_seconds().abs();
    assert!(lag <= 5, "rotated at {rotated_at}, put at {rotation}");
}

#[tokio::test]
async fn queue_sends_every_message_in_its_tenants_group() {
    let env = AwsEnv::new().await;
    let queue = env.queue(&env.resources.sync_jobs_queue);
    // 23 messages (three SendMessageBatch calls) of 5 tenants.
    let messages: Vec<TenantMessage> = (0..23)
        .map(|i| {
            let tenant = TenantId::parse(&format!("t{}", i % 5)).unwrap();
            let body = serde_json::json!({"version": 1, "tenantId": tenant, "n": i}).to_string();
            TenantMessage::new(&tenant, body)
        })
        .collect();
    queue.send_all(&messages).await.unwrap();

    let mut received: Vec<(Option<String>, String)> =
        env.drain_grouped(&env.resources.sync_jobs_queue).await;
    received.sort_by(|a, b| a.1.cmp(&b.1));
    let mut expected: Vec<(Option<String>, String)> = messages
        .iter()
        .map(|m| (Some(m.tenant.to_string()), m.body.clone()))
        .collect();
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(received, expected);
}
