//! The permissions check (issue 20) through integration-api and the OAuth
//! callback, against the emulator (whose admin takes permissions away and gives
//! them back) and moto.

use e2e::sf::{ORG, WorldOptions};
use e2e::stack::{Claims, Stack, api_event, body_json, callback_event, consent, location, status};
use e2e::unique;
use serde_json::{Value, json};
use sf_emulator::access::{AccessChange, ObjectPermission, Perm};

const ADMIN: &str = "admin@acme.test";

fn change(objects: &[(&str, Perm)], granted: bool) -> AccessChange {
    AccessChange {
        user: Some(ADMIN.into()),
        objects: objects
            .iter()
            .map(|(object, permission)| ObjectPermission {
                object: (*object).into(),
                permission: *permission,
                granted,
            })
            .collect(),
        ..Default::default()
    }
}

/// Settings, connect, consent and callback, as the admin does it.
async fn connect(stack: &Stack, tenant: &str) {
    let settings = json!({
        "consumerKey": stack.sf.app.consumer_key,
        "consumerSecret": stack.sf.app.consumer_secret,
        "instanceUrl": stack.sf.base_url(),
    });
    let saved = stack
        .api(api_event(
            "PUT",
            "/integrations/salesforce/settings",
            Some(settings),
            Claims::admin(tenant),
        ))
        .await;
    assert_eq!(status(&saved), 200);
    let started = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/connect",
            None,
            Claims::admin(tenant),
        ))
        .await;
    let url = body_json(&started)["authorizeUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let back = consent(&url, ADMIN, "password", "Allow").await.unwrap();
    let done = stack.callback(callback_event(&back)).await;
    assert!(location(&done).as_str().contains("salesforce=connected"));
}

async fn check(stack: &Stack, tenant: &str) -> (u16, Value) {
    let r = stack
        .api(api_event(
            "POST",
            "/integrations/salesforce/permissions/check",
            None,
            Claims::admin(tenant),
        ))
        .await;
    (status(&r), body_json(&r))
}

async fn shown(stack: &Stack, tenant: &str) -> Value {
    let r = stack
        .api(api_event(
            "GET",
            "/integrations/salesforce/status",
            None,
            Claims::member(tenant),
        ))
        .await;
    body_json(&r)["permissions"].clone()
}

fn gaps(check: &Value) -> Vec<(String, String, Vec<String>)> {
    check["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["gap"].as_str().unwrap().to_string(),
                m["object"].as_str().unwrap_or("").to_string(),
                m["access"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_missing_permission_is_told_after_connecting_then_cleared_once_granted() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = unique("perm");
    let emu = &stack.sf.emu;
    emu.set_access(
        ORG,
        &change(
            &[
                ("Lead", Perm::Read),
                ("Event", Perm::Create),
                ("Event", Perm::Edit),
            ],
            false,
        ),
    )
    .unwrap();
    let before = stack.sf.calls("describe");
    connect(&stack, &tenant).await;
    assert_eq!(
        stack.sf.calls("describe") - before,
        1,
        "one Describe Global"
    );

    // Told right after connecting, in the status, before any call is logged.
    let after_connect = shown(&stack, &tenant).await;
    assert_eq!(after_connect["ok"], false);
    assert_eq!(after_connect["apiCalls"], 1);
    assert_eq!(
        gaps(&after_connect),
        vec![
            ("object_access".into(), "Lead".into(), vec!["read".into()]),
            (
                "object_access".into(),
                "Event".into(),
                vec!["create".into(), "edit".into()]
            ),
        ]
    );
    let lead = &after_connect["missing"][0];
    assert_eq!(lead["mandatory"], true);
    assert_eq!(
        lead["problem"],
        "The connected user cannot read Leads: calls cannot be matched to leads."
    );
    assert_eq!(
        lead["fix"],
        "Guide step 3: Setup → Profiles (or Permission Sets) → the connecting user's profile → Object Settings → Leads: Read."
    );

    // The admin grants Read on Lead; checked again on demand: only Event is left.
    emu.set_access(ORG, &change(&[("Lead", Perm::Read)], true))
        .unwrap();
    let before = stack.sf.total_calls();
    let (code, again) = check(&stack, &tenant).await;
    assert_eq!(code, 200);
    assert_eq!(
        stack.sf.total_calls() - before,
        1,
        "the check spends one API call"
    );
    assert_eq!(
        gaps(&again),
        vec![(
            "object_access".into(),
            "Event".into(),
            vec!["create".into(), "edit".into()]
        )]
    );
    // Then Event too: nothing is missing, and the status says so.
    emu.set_access(
        ORG,
        &change(&[("Event", Perm::Create), ("Event", Perm::Edit)], true),
    )
    .unwrap();
    let (_, granted) = check(&stack, &tenant).await;
    assert_eq!(granted["ok"], true);
    assert_eq!(granted["missing"], json!([]));
    assert_eq!(shown(&stack, &tenant).await, granted);
}

#[tokio::test]
async fn notes_off_is_told_in_plain_words_and_calls_still_log() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    stack
        .sf
        .emu
        .set_access(
            ORG,
            &AccessChange {
                notes_enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    let (_, result) = check(&stack, tenant.as_str()).await;
    assert_eq!(result["ok"], true, "Notes are not needed to log calls");
    assert_eq!(
        gaps(&result),
        vec![("notes".into(), "ContentNote".into(), vec![])]
    );
    assert_eq!(
        result["missing"][0]["problem"],
        "Notes are not enabled in the org: meeting summaries cannot be saved as Notes (calls are still logged)."
    );
    assert_eq!(
        result["missing"][0]["fix"],
        "Guide step 4: Setup → Notes Settings → Enable Notes."
    );
}

#[tokio::test]
async fn without_api_enabled_the_check_says_so() {
    let stack = Stack::start(WorldOptions::default()).await;
    let tenant = stack.sf.connect_tenant(&stack.aws).await;
    let off = AccessChange {
        user: Some(ADMIN.into()),
        api_enabled: Some(false),
        ..Default::default()
    };
    stack.sf.emu.set_access(ORG, &off).unwrap();
    let (code, result) = check(&stack, tenant.as_str()).await;
    assert_eq!(code, 200, "{result}");
    assert_eq!(result["ok"], false);
    assert_eq!(
        gaps(&result),
        vec![("api_enabled".into(), String::new(), vec![])]
    );
    assert!(
        result["missing"][0]["fix"]
            .as_str()
            .unwrap()
            .starts_with("Guide step 5: Setup → Profiles"),
        "{result}"
    );
}

#[tokio::test]
async fn the_emulator_refuses_what_the_user_may_not_do() {
    let stack = Stack::start(WorldOptions::default()).await;
    let emu = &stack.sf.emu;
    emu.set_access(
        ORG,
        &change(&[("Lead", Perm::Read), ("Task", Perm::Create)], false),
    )
    .unwrap();
    let base = format!("{}/services/data/v62.0", stack.sf.base_url());
    let (_, token) = stack.sf.mint_refresh_token();
    let http = reqwest::Client::new();
    let get = |path: String| http.get(path).bearer_auth(token.clone().unwrap()).send();
    let describe: Value = get(format!("{base}/sobjects/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = describe["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"Lead") && names.contains(&"Task"));
    let task = describe["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Task")
        .unwrap();
    assert_eq!(
        (task["createable"].clone(), task["updateable"].clone()),
        (json!(false), json!(true))
    );
    let q = get(format!("{base}/query?q=SELECT+Id+FROM+Lead"))
        .await
        .unwrap();
    assert_eq!(q.status(), 400);
    assert_eq!(
        q.json::<Value>().await.unwrap()[0]["errorCode"],
        "INVALID_TYPE"
    );
    let created = http
        .post(format!("{base}/composite/sobjects"))
        .bearer_auth(token.clone().unwrap())
        .json(&json!({"records": [{"attributes": {"type": "Task"}, "Subject": "x"}]}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        created[0]["errors"][0]["statusCode"],
        "INSUFFICIENT_ACCESS_OR_READONLY"
    );
    emu.set_access(
        ORG,
        &AccessChange {
            user: Some(ADMIN.into()),
            api_enabled: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let refused = get(format!("{base}/limits/")).await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()[0]["errorCode"],
        "API_DISABLED_FOR_ORG"
    );
}
