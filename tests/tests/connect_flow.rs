//! The seed's connect story through the handlers, against the emulator and moto:
//! settings → connect → consent page → callback → status → users → auto-match →
//! manual override → disconnect; and every attack on the way.

use std::time::Duration;

use chrono::Utc;
use e2e::sf::{ORG, WorldOptions};
use e2e::stack::{
    CALLBACK_URL, Claims, RETURN_URL, Stack, TestApp, api_event, body_json, build_app,
    callback_event, consent, location, status,
};
use e2e::unique;
use serde_json::{Value, json};
use sf_emulator::UserSpec;
use shared::domain::{CallOutcome, CallState, ConnectionStatus, TenantId};
use shared::ports::{CallStore, ConnectionStore, SecretStore};

fn settings_body(stack: &Stack, secret: &str) -> Value {
    json!({
        "consumerKey": stack.sf.app.consumer_key,
        "consumerSecret": secret,
        "instanceUrl": stack.sf.base_url(),
        "phoneRegion": "fr",
    })
}

fn reason(url: &url::Url) -> (String, Option<String>) {
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    (
        q.get("salesforce").cloned().unwrap_or_default(),
        q.get("reason").cloned(),
    )
}

/// Settings saved and a connect started: the authorize URL.
async fn start(stack: &Stack, tenant: &str) -> String {
    let saved = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(settings_body(stack, &stack.sf.app.consumer_secret)),
            Claims::admin(tenant),
        ))
        .await;
    assert_eq!(status(&saved), 200, "{:?}", body_json(&saved));
    let connect = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(tenant),
        ))
        .await;
    assert_eq!(status(&connect), 200, "{:?}", body_json(&connect));
    body_json(&connect)["authorizeUrl"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn connect(stack: &Stack, tenant: &str) {
    let url = start(stack, tenant).await;
    let back = consent(&url, "admin@acme.test", "password", "Allow")
        .await
        .expect("consent redirects");
    let done = stack.callback(callback_event(&back)).await;
    assert_eq!(reason(&location(&done)), ("connected".into(), None));
}

#[tokio::test]
async fn the_whole_connect_story() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    for (username, email) in [
        ("bob@acme.test", "Bob@Acme.test"),
        ("dup1@acme.test", "shared@acme.test"),
        ("dup2@acme.test", "shared@acme.test"),
    ] {
        stack
            .sf
            .emu
            .create_user(
                ORG,
                UserSpec {
                    username: username.into(),
                    email: email.into(),
                    last_name: username.into(),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    stack
        .sf
        .emu
        .create_user(
            ORG,
            UserSpec {
                username: "gone@acme.test".into(),
                email: "gone@acme.test".into(),
                last_name: "Gone".into(),
                active: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    stack
        .sf
        .emu
        .create_user(
            ORG,
            UserSpec {
                username: "partner@acme.test".into(),
                email: "partner@acme.test".into(),
                last_name: "Partner".into(),
                user_type: Some("PowerPartner".into()),
                ..Default::default()
            },
        )
        .unwrap();

    // 1. Settings: validated, normalised, stored; the secret is never echoed.
    let saved = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(settings_body(&stack, &stack.sf.app.consumer_secret)),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&saved), 200);
    let saved = body_json(&saved);
    assert_eq!(saved["consumerSecretSet"], true);
    assert_eq!(saved["phoneRegion"], "FR");
    assert!(!saved.to_string().contains(&stack.sf.app.consumer_secret));
    let read = stack
        .api(api_event(
            "GET",
            "/integrations/salesforce/settings",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    assert!(
        !body_json(&read)
            .to_string()
            .contains(&stack.sf.app.consumer_secret)
    );

    // 2. Connect: authorize URL with a signed state and a PKCE challenge.
    let connect = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    let authorize = url::Url::parse(body_json(&connect)["authorizeUrl"].as_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], stack.sf.app.consumer_key);
    assert_eq!(q["redirect_uri"], e2e::stack::CALLBACK_URL);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].starts_with("v1."));
    assert!(q["scope"].contains("refresh_token"));

    // 3. The admin logs in and allows access on the consent page.
    let back = consent(authorize.as_str(), "admin@acme.test", "password", "Allow")
        .await
        .unwrap();
    assert_eq!(back.path(), "/integrations/salesforce/callback");

    // 4. Callback: code exchanged, tokens stored, back to Modjo.
    let done = stack.callback(callback_event(&back)).await;
    assert_eq!(status(&done), 302);
    let target = location(&done);
    assert!(target.as_str().starts_with(RETURN_URL));
    assert_eq!(reason(&target), ("connected".into(), None));
    let t = TenantId::parse(&tenant).unwrap();
    let creds = stack
        .aws
        .secrets()
        .get_credentials(&t)
        .await
        .unwrap()
        .unwrap();
    assert!(creds.refresh_token.is_some() && creds.access_token.is_some());

    // 5. Status.
    let st = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/status",
                None,
                Claims::member(&tenant),
            ))
            .await,
    );
    assert_eq!(st["status"], "connected");
    assert_eq!(st["orgId"], json!(stack.sf.org_id));
    assert_eq!(st["salesforceUser"]["id"], json!(stack.sf.admin.id));
    assert_eq!(st["salesforceUser"]["username"], "admin@acme.test");

    // 6. Users: active standard users only.
    let users = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/users",
                None,
                Claims::admin(&tenant),
            ))
            .await,
    );
    let mut usernames: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Username"].as_str().unwrap())
        .collect();
    usernames.sort();
    assert_eq!(
        usernames,
        [
            "admin@acme.test",
            "bob@acme.test",
            "dup1@acme.test",
            "dup2@acme.test"
        ]
    );

    // 7. Auto-match: case-insensitive; ambiguous and unmatched reported, not guessed.
    let body = json!({"users": [
        {"id": "usr_bob", "email": "BOB@acme.TEST"},
        {"id": "usr_dup", "email": "shared@acme.test"},
        {"id": "usr_none", "email": "nobody@acme.test"},
        {"id": "usr_gone", "email": "gone@acme.test"},
    ]});
    let report = body_json(
        &stack
            .api(api_event(
                "POST",
                "/integrations/salesforce/users/auto-match",
                Some(body.clone()),
                Claims::admin(&tenant),
            ))
            .await,
    );
    assert_eq!(
        report["matched"],
        json!([{"modjoUserId": "usr_bob", "sfUserId": id_of(&users, "bob@acme.test")}])
    );
    assert_eq!(report["ambiguous"][0]["modjoUserId"], "usr_dup");
    assert_eq!(
        report["ambiguous"][0]["candidates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(report["unmatched"], json!(["usr_none", "usr_gone"]));

    // 8. Manual override wins, and a later auto-match keeps it.
    let admin_id = stack.sf.admin.id.clone();
    let put = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/mappings/usr_bob",
            Some(json!({"sfUserId": admin_id})),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&put), 200, "{:?}", body_json(&put));
    let report = body_json(
        &stack
            .api(api_event(
                "POST",
                "/integrations/salesforce/users/auto-match",
                Some(body),
                Claims::admin(&tenant),
            ))
            .await,
    );
    assert_eq!(
        report["keptManual"],
        json!([{"modjoUserId": "usr_bob", "sfUserId": admin_id}])
    );
    let mappings = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/mappings",
                None,
                Claims::admin(&tenant),
            ))
            .await,
    );
    assert_eq!(mappings["mappings"][0]["source"], "manual");
    // A manual mapping must name an active standard user.
    let bad = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/mappings/usr_x",
            Some(json!({"sfUserId": id_of_any(&stack, "gone@acme.test")})),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&bad), 400);

    // 9. Disconnect: revoked at Salesforce, secret deleted, audit kept.
    let refresh = creds.refresh_token.clone().unwrap();
    let del = stack
        .api(api_event(
            "DELETE",
            "/integrations/salesforce/connection",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&del), 200, "{:?}", body_json(&del));
    assert!(
        stack
            .aws
            .secrets()
            .get_credentials(&t)
            .await
            .unwrap()
            .is_none()
    );
    let st = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/status",
                None,
                Claims::member(&tenant),
            ))
            .await,
    );
    assert_eq!(st["status"], "disconnected");
    let refused = refresh_at_emulator(&stack, secrecy::ExposeSecret::expose_secret(&refresh)).await;
    assert_eq!(
        refused["error"], "invalid_grant",
        "the refresh token was revoked at Salesforce"
    );
    let trail: Vec<String> = stack
        .aws
        .store()
        .audit_trail(&t)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in [
        "settings_saved",
        "connect_started",
        "oauth_callback",
        "users_auto_matched",
        "mapping_set",
        "disconnected",
    ] {
        assert!(
            trail.iter().any(|a| a == action),
            "{action} missing from {trail:?}"
        );
    }
}

fn id_of(users: &Value, username: &str) -> String {
    users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["Username"] == username)
        .map(|u| u["Id"].as_str().unwrap().to_string())
        .unwrap()
}

fn id_of_any(stack: &Stack, username: &str) -> String {
    stack
        .sf
        .emu
        .query(
            ORG,
            &format!("SELECT Id FROM User WHERE Username = '{username}'"),
            false,
        )
        .unwrap()[0]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn refresh_at_emulator(stack: &Stack, refresh_token: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", stack.sf.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &stack.sf.app.consumer_key),
            ("client_secret", &stack.sf.app.consumer_secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn state_attacks_are_refused() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    let url = start(&stack, &tenant).await;
    let back = consent(&url, "admin@acme.test", "password", "Allow")
        .await
        .unwrap();

    // Forged: the state's payload changed, signature kept.
    let mut forged = back.clone();
    let state = back
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let parts: Vec<&str> = state.split('.').collect();
    let tampered = format!("v1.{}x.{}", parts[1], parts[2]);
    forged
        .query_pairs_mut()
        .clear()
        .append_pair("code", "abc")
        .append_pair("state", &tampered);
    assert_eq!(
        reason(&location(&stack.callback(callback_event(&forged)).await)),
        ("error".into(), Some("invalid_state".into()))
    );
    // Missing state.
    let mut missing = back.clone();
    missing.query_pairs_mut().clear().append_pair("code", "abc");
    assert_eq!(
        reason(&location(&stack.callback(callback_event(&missing)).await))
            .1
            .as_deref(),
        Some("invalid_state")
    );
    // Signed by someone else (another key).
    let other = shared::connect::state::sign(
        &shared::domain::SigningKeys::new(secrecy::SecretString::from(
            "another-key-another-key-another-key-12",
        )),
        &shared::connect::state::StateClaims {
            tenant: TenantId::parse(&tenant).unwrap(),
            user_id: "usr_admin".into(),
            nonce: "n".into(),
            expires_at: Utc::now().timestamp() + 600,
        },
    );
    let mut foreign = back.clone();
    foreign
        .query_pairs_mut()
        .clear()
        .append_pair("code", "abc")
        .append_pair("state", &other);
    assert_eq!(
        reason(&location(&stack.callback(callback_event(&foreign)).await))
            .1
            .as_deref(),
        Some("invalid_state")
    );

    // The genuine callback works once; replayed, it is refused.
    assert_eq!(
        reason(&location(&stack.callback(callback_event(&back)).await)).0,
        "connected"
    );
    assert_eq!(
        reason(&location(&stack.callback(callback_event(&back)).await)),
        ("error".into(), Some("state_expired_or_used".into()))
    );
    // Never a redirect to a URL from the request.
    let mut evil = back.clone();
    evil.query_pairs_mut()
        .append_pair("redirect_uri", "https://evil.example/")
        .append_pair("return", "https://evil.example/");
    assert!(
        location(&stack.callback(callback_event(&evil)).await)
            .as_str()
            .starts_with(RETURN_URL)
    );
}

/// Settings saved and a connect started on `app` (an integration-api container).
async fn start_on(stack: &Stack, app: &TestApp, tenant: &str) -> String {
    for (method, path, body) in [
        (
            "PUT",
            "/integrations/salesforce/settings",
            Some(settings_body(stack, &stack.sf.app.consumer_secret)),
        ),
        ("POST", "/integrations/salesforce/connect", None),
    ] {
        let answer = shared::api::routes::handle(
            app,
            &stack.sync_queue,
            api_event(method, path, body, Claims::admin(tenant)),
        )
        .await;
        assert_eq!(status(&answer), 200, "{:?}", body_json(&answer));
        if method == "POST" {
            return body_json(&answer)["authorizeUrl"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }
    unreachable!()
}

/// Consent given, then the callback served by `app` (an oauth-callback container).
async fn finish_on(stack: &Stack, app: &TestApp, authorize_url: &str) -> (String, Option<String>) {
    let back = consent(authorize_url, "admin@acme.test", "password", "Allow")
        .await
        .expect("consent redirects");
    let done = shared::api::callback::handle(app, &stack.call_queue, callback_event(&back)).await;
    reason(&location(&done))
}

#[tokio::test]
async fn rotating_the_signing_key_breaks_no_connect_in_flight() {
    let stack = Stack::start(WorldOptions::default()).await;
    let (early, late) = (unique("acme"), unique("acme"));
    let container = || {
        build_app(
            &stack.aws,
            &stack.sf,
            Duration::from_secs(600),
            CALLBACK_URL,
        )
    };
    // Before the rotation: a connect starts, and a callback container reads the key.
    let old_api = container();
    let signed_before = start_on(&stack, &old_api, &early).await;
    let old_callback = container();
    old_callback.signing_keys().await.unwrap();

    stack
        .aws
        .clients
        .secrets
        .put_secret_value()
        .secret_id(&stack.aws.resources.signing_key_id)
        .secret_string("rotated".repeat(10))
        .send()
        .await
        .unwrap();

    // After it: containers started since sign with the new key...
    let new_api = container();
    let signed_after = start_on(&stack, &new_api, &late).await;
    // ...which the container that read the old one accepts (it reads the keys
    // again when none it holds verifies a state, at most once a second)...
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        finish_on(&stack, &old_callback, &signed_after).await,
        ("connected".into(), None)
    );
    // ...and the state signed before the rotation completes on a new container.
    let new_callback = container();
    assert_eq!(
        finish_on(&stack, &new_callback, &signed_before).await,
        ("connected".into(), None)
    );
}

#[tokio::test]
async fn expired_state_is_refused() {
    let stack = Stack::with_state_ttl(WorldOptions::default(), Duration::from_secs(1)).await;
    let tenant = unique("acme");
    let url = start(&stack, &tenant).await;
    let back = consent(&url, "admin@acme.test", "password", "Allow")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        reason(&location(&stack.callback(callback_event(&back)).await)),
        ("error".into(), Some("state_expired_or_used".into()))
    );
}

#[tokio::test]
async fn access_denied_is_handled() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    let url = start(&stack, &tenant).await;
    let back = consent(&url, "admin@acme.test", "password", "Deny")
        .await
        .unwrap();
    assert!(
        back.query_pairs()
            .any(|(k, v)| k == "error" && v == "access_denied")
    );
    let done = stack.callback(callback_event(&back)).await;
    assert_eq!(
        reason(&location(&done)),
        ("error".into(), Some("access_denied".into()))
    );
    let st = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/status",
                None,
                Claims::member(&tenant),
            ))
            .await,
    );
    assert_eq!(st["status"], "pending");
}

#[tokio::test]
async fn wrong_consumer_secret_gives_invalid_client() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    let saved = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(settings_body(&stack, "wrong-secret")),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&saved), 200);
    let connect = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    let url = body_json(&connect)["authorizeUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let back = consent(&url, "admin@acme.test", "password", "Allow")
        .await
        .unwrap();
    let done = stack.callback(callback_event(&back)).await;
    assert_eq!(
        reason(&location(&done)),
        ("error".into(), Some("invalid_client".into()))
    );
}

#[tokio::test]
async fn redirect_uri_mismatch_never_reaches_the_callback() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    start(&stack, &tenant).await;
    // The same tenant, but our configured callback differs from the connected app's.
    let other = stack.app_with_callback("https://app.modjo.test/elsewhere/callback");
    let actor = shared::domain::Actor {
        tenant: TenantId::parse(&tenant).unwrap(),
        user_id: "usr_admin".into(),
    };
    let url = other.connect().start_connect(&actor, false).await.unwrap();
    let err = consent(url.as_str(), "admin@acme.test", "password", "Allow")
        .await
        .unwrap_err();
    assert_eq!(
        err.0, 400,
        "Salesforce shows an error page instead of redirecting"
    );
    assert!(err.1.contains("redirect_uri"), "{}", err.1);
}

#[tokio::test]
async fn pkce_mismatch_is_refused() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    let first = start(&stack, &tenant).await;
    let second_connect = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    let second =
        url::Url::parse(body_json(&second_connect)["authorizeUrl"].as_str().unwrap()).unwrap();
    // The code of the first authorisation, delivered with the second state: the
    // verifier kept for the second state does not match the first challenge.
    let back = consent(&first, "admin@acme.test", "password", "Allow")
        .await
        .unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let state = second
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let mut injected = back.clone();
    injected
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &state);
    let done = stack.callback(callback_event(&injected)).await;
    assert_eq!(
        reason(&location(&done)),
        ("error".into(), Some("token_exchange_failed".into()))
    );
    let t = TenantId::parse(&tenant).unwrap();
    assert!(
        stack
            .aws
            .secrets()
            .get_credentials(&t)
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .is_none()
    );
}

#[tokio::test]
async fn instance_url_ssrf_attempts_are_refused_and_nothing_is_stored() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    for attack in [
        "http://acme.my.salesforce.com",
        "https://169.254.169.254/latest/meta-data/",
        "https://evil.com",
        "https://salesforce.com.evil.com",
        "https://acme.my.salesforce.com@evil.com",
        "https://10.0.0.1",
        "https://acme.my.salesforce.com.",
        "http://127.0.0.1:1",
    ] {
        let mut body = settings_body(&stack, "s");
        body["instanceUrl"] = json!(attack);
        let r = stack
            .api(api_event(
                "PUT",
                "/integrations/salesforce/settings",
                Some(body),
                Claims::admin(&tenant),
            ))
            .await;
        assert_eq!(status(&r), 400, "{attack}: {:?}", body_json(&r));
        assert_eq!(body_json(&r)["error"], "invalid_request");
        let mut body = settings_body(&stack, "s");
        body["loginUrl"] = json!(attack);
        let r = stack
            .api(api_event(
                "PUT",
                "/integrations/salesforce/settings",
                Some(body),
                Claims::admin(&tenant),
            ))
            .await;
        assert_eq!(status(&r), 400, "login {attack}");
    }
    let t = TenantId::parse(&tenant).unwrap();
    assert!(
        stack
            .aws
            .secrets()
            .get_credentials(&t)
            .await
            .unwrap()
            .is_none()
    );
    // A Lightning URL is normalised to its API host.
    let mut body = settings_body(&stack, "s");
    body["instanceUrl"] = json!("https://acme.lightning.force.com/lightning/page/home");
    let r = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(body),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(
        body_json(&r)["instanceUrl"],
        "https://acme.my.salesforce.com"
    );
}

#[tokio::test]
async fn claims_are_required_and_checked() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    let cases = [
        (None, 401),
        (
            Some(e2e::stack::Claims {
                tenant: "".into(),
                sub: "usr".into(),
                role: "admin".into(),
            }),
            401,
        ),
        (
            Some(e2e::stack::Claims {
                tenant: "a#b".into(),
                sub: "usr".into(),
                role: "admin".into(),
            }),
            401,
        ),
        (
            Some(e2e::stack::Claims {
                tenant: tenant.clone(),
                sub: "".into(),
                role: "admin".into(),
            }),
            401,
        ),
        (Claims::member(&tenant), 403),
    ];
    for (claims, expected) in cases {
        for (method, path) in [
            ("PUT", "settings"),
            ("POST", "connect"),
            ("DELETE", "connection"),
            ("POST", "users/auto-match"),
        ] {
            let r = stack
                .api(api_event(
                    method,
                    &format!("/integrations/salesforce/{path}"),
                    Some(settings_body(&stack, "s")),
                    claims.clone(),
                ))
                .await;
            assert_eq!(status(&r), expected, "{method} {path} with {claims:?}");
        }
    }
    let r = stack
        .api(api_event(
            "GET",
            "/integrations/salesforce/status",
            None,
            None,
        ))
        .await;
    assert_eq!(status(&r), 401);
    let r = stack
        .api(api_event(
            "GET",
            "/integrations/salesforce/nowhere",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&r), 404);
    let r = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(json!("not an object")),
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&r), 400);
}

#[tokio::test]
async fn one_tenant_can_neither_read_nor_change_another() {
    let stack = Stack::start(WorldOptions::default()).await;
    let (a, b) = (unique("tenant-a"), unique("tenant-b"));
    connect(&stack, &b).await;
    let put = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/mappings/usr_1",
            Some(json!({"sfUserId": stack.sf.admin.id})),
            Claims::admin(&b),
        ))
        .await;
    assert_eq!(status(&put), 200);

    // A's claims see A's (empty) world, whatever the path or body say about B.
    let st = stack
        .api(api_event(
            "GET",
            "/integrations/salesforce/status",
            None,
            Claims::admin(&a),
        ))
        .await;
    assert_eq!(status(&st), 404);
    let st = stack
        .api(api_event(
            "GET",
            &format!("/integrations/salesforce/status?tenantId={b}"),
            None,
            Claims::admin(&a),
        ))
        .await;
    assert_eq!(status(&st), 404);
    let mappings = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/mappings",
                None,
                Claims::admin(&a),
            ))
            .await,
    );
    assert_eq!(mappings["mappings"], json!([]));
    let del = stack
        .api(api_event(
            "DELETE",
            "/integrations/salesforce/mappings/usr_1",
            None,
            Claims::admin(&a),
        ))
        .await;
    assert_eq!(status(&del), 404);
    let del = stack
        .api(api_event(
            "DELETE",
            "/integrations/salesforce/connection",
            Some(json!({"tenantId": b})),
            Claims::admin(&a),
        ))
        .await;
    assert_eq!(status(&del), 404);
    let connect = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            Some(json!({"tenantId": b})),
            Claims::admin(&a),
        ))
        .await;
    assert_eq!(status(&connect), 409, "A has no settings of its own");

    // B is untouched.
    let tb = TenantId::parse(&b).unwrap();
    assert_eq!(
        stack
            .aws
            .store()
            .get_connection(&tb)
            .await
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Connected
    );
    let mappings = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/mappings",
                None,
                Claims::admin(&b),
            ))
            .await,
    );
    assert_eq!(mappings["mappings"].as_array().unwrap().len(), 1);

    // A state issued to A cannot complete B's connection.
    let b_version = stack
        .aws
        .store()
        .get_connection(&tb)
        .await
        .unwrap()
        .unwrap()
        .version;
    let url_a = {
        let body = settings_body(&stack, &stack.sf.app.consumer_secret);
        stack
            .api(api_event(
                "PUT",
                "/integrations/salesforce/settings",
                Some(body),
                Claims::admin(&a),
            ))
            .await;
        let c = stack
            .api(api_event(
                "POST",
                "/integrations/salesforce/connect",
                None,
                Claims::admin(&a),
            ))
            .await;
        body_json(&c)["authorizeUrl"].as_str().unwrap().to_string()
    };
    let back = consent(&url_a, "admin@acme.test", "password", "Allow")
        .await
        .unwrap();
    stack.callback(callback_event(&back)).await;
    let ta = TenantId::parse(&a).unwrap();
    assert_eq!(
        stack
            .aws
            .store()
            .get_connection(&ta)
            .await
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Connected
    );
    assert_eq!(
        stack
            .aws
            .store()
            .get_connection(&tb)
            .await
            .unwrap()
            .unwrap()
            .version,
        b_version,
        "B's record was not rewritten"
    );
}

#[tokio::test]
async fn reconnect_after_needs_reauth_replays_parked_calls() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    connect(&stack, &tenant).await;
    let t = TenantId::parse(&tenant).unwrap();
    // The token dies; the tenant is marked needs_reauth; two calls were parked
    // meanwhile (the call logger marks the connection when it parks calls).
    let mut conn = stack.aws.store().get_connection(&t).await.unwrap().unwrap();
    conn.status = ConnectionStatus::NeedsReauth;
    conn.calls_waiting_since = Some(Utc::now());
    stack.aws.store().save_connection(&conn).await.unwrap();
    for call in ["call_1", "call_2"] {
        let parked = CallOutcome {
            reason: Some("tenant needs to reconnect".into()),
            message: Some(json!({"version": 1, "tenantId": tenant, "callId": call}).to_string()),
            ..CallOutcome::new(call, CallState::Waiting, Utc::now())
        };
        stack.aws.store().save_outcome(&t, &parked).await.unwrap();
    }
    // Connect is allowed again, and the reconnect replays them.
    connect(&stack, &tenant).await;
    let mut replayed = stack
        .aws
        .drain_grouped(&stack.aws.resources.call_events_queue)
        .await;
    replayed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(replayed.len(), 2);
    assert!(replayed[0].1.contains("call_1") && replayed[1].1.contains("call_2"));
    // In the tenant's message group: the queue serves other tenants' calls
    // first while a large replay drains.
    assert!(
        replayed
            .iter()
            .all(|(group, _)| group.as_deref() == Some(tenant.as_str())),
        "{replayed:?}"
    );
    // Replayed once: the mark is cleared, a later reconnect sends nothing again.
    let conn = stack.aws.store().get_connection(&t).await.unwrap().unwrap();
    assert_eq!(conn.calls_waiting_since, None);
    let again = shared::calls::outcomes::replay_parked(&stack.aws.store(), &t, &stack.call_queue)
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert!(
        stack
            .aws
            .drain(&stack.aws.resources.call_events_queue)
            .await
            .is_empty()
    );
    let st = body_json(
        &stack
            .api(api_event(
                "GET",
                "/integrations/salesforce/status",
                None,
                Claims::member(&tenant),
            ))
            .await,
    );
    assert_eq!(st["status"], "connected");
}

#[tokio::test]
async fn connect_refuses_while_a_stored_token_works() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("acme");
    connect(&stack, &tenant).await;
    let again = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&again), 409);
    let forced = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect?force=true",
            None,
            Claims::admin(&tenant),
        ))
        .await;
    assert_eq!(status(&forced), 200);
}
