//! What the settings page asks of integration-api beyond the connect story:
//! a sync now, and the settings' plain-words notices.

use e2e::sf::WorldOptions;
use e2e::stack::{Claims, Stack, api_event, body_json, status};
use serde_json::json;
use shared::sync::SyncJob;

#[tokio::test]
async fn a_sync_asked_for_is_one_job_on_the_queue_at_most_once_a_minute() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    let ask = |claims| api_event("POST", "/integrations/salesforce/sync", None, claims);

    // A member may look, not start one.
    let answer = stack.api(ask(Claims::member(tenant.as_str()))).await;
    assert_eq!(status(&answer), 403);

    let answer = stack.api(ask(Claims::admin(tenant.as_str()))).await;
    assert_eq!(status(&answer), 202, "{:?}", body_json(&answer));
    let jobs = stack.aws.drain(&stack.aws.resources.sync_jobs_queue).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = SyncJob::parse(&jobs[0]).unwrap();
    assert_eq!(
        (job.tenant_id, job.reason.as_str()),
        (tenant.clone(), "manual")
    );

    // Again within the minute: refused, with when to ask again; nothing queued.
    let again = stack.api(ask(Claims::admin(tenant.as_str()))).await;
    assert_eq!(status(&again), 429);
    let retry: u64 = again.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(
        stack
            .aws
            .drain(&stack.aws.resources.sync_jobs_queue)
            .await
            .is_empty()
    );

    // The time asked is shown with the sync's status.
    let view = stack
        .api(api_event(
            "GET",
            "/integrations/salesforce/sync",
            None,
            Claims::member(tenant.as_str()),
        ))
        .await;
    assert!(body_json(&view)["syncRequestedAt"].is_string());
}

#[tokio::test]
async fn saved_settings_say_what_was_normalised_and_refusals_name_the_field() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = e2e::unique("acme");
    let save = |instance: &str| {
        api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(
                json!({"consumerKey": "3MVG9key", "consumerSecret": "s3cret", "instanceUrl": instance}),
            ),
            Claims::admin(&tenant),
        )
    };
    let saved = stack
        .api(save("https://Acme.lightning.force.com/lightning/page/home"))
        .await;
    assert_eq!(status(&saved), 200, "{:?}", body_json(&saved));
    let body = body_json(&saved);
    assert_eq!(body["instanceUrl"], "https://acme.my.salesforce.com");
    assert_eq!(
        body["notices"],
        json!([{
            "field": "instanceUrl", "reason": "lightning_host",
            "from": "https://Acme.lightning.force.com/lightning/page/home",
            "to": "https://acme.my.salesforce.com"
        }])
    );
    assert!(body.get("consumerSecret").is_none());

    // Typed as the API host: nothing to say.
    let saved = stack.api(save("https://acme.my.salesforce.com")).await;
    assert!(body_json(&saved).get("notices").is_none());

    for (typed, reason) in [
        ("http://acme.my.salesforce.com", "not_https"),
        ("https://192.168.1.20", "ip_literal"),
        ("https://acme.example.com", "not_salesforce"),
        ("https://user:pw@acme.my.salesforce.com", "has_credentials"),
    ] {
        let refused = stack.api(save(typed)).await;
        assert_eq!(status(&refused), 400, "{typed}");
        let body = body_json(&refused);
        assert_eq!(
            (body["field"].as_str(), body["reason"].as_str()),
            (Some("instanceUrl"), Some(reason)),
            "{typed}: {body}"
        );
    }
}
