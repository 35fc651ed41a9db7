//! Manual links and the calls that need attention (issue 19), through the API
//! handler, against the emulator and moto.

use e2e::scenario::*;
use e2e::stack::{Claims, api_event, body_json, status};
use serde_json::{Value, json};
use shared::domain::CallState;
use shared::ports::ConnectionStore as _;

async fn put_link(w: &World, call_id: &str, body: Value, claims: Option<Claims>) -> (u16, Value) {
    let r = w
        .stack
        .api(api_event(
            "PUT",
            &format!("/integrations/salesforce/calls/{call_id}/link"),
            Some(body),
            claims,
        ))
        .await;
    (status(&r), body_json(&r))
}

fn host(tenant: &str) -> Option<Claims> {
    Some(Claims {
        tenant: tenant.into(),
        sub: "usr_12".into(),
        role: "member".into(),
    })
}

#[tokio::test]
async fn an_admin_links_an_unmatched_call_and_re_matching_never_overrides_it() {
    let w = world().await;
    log(&w, &[phone_call(&w.tenant, "call_manual", "+33611220000")]).await;
    assert_eq!(outcome(&w, "call_manual").await.state, CallState::Unmatched);
    // Linked to an account only, by hand.
    let (code, view) = put_link(
        &w,
        "call_manual",
        json!({"whatId": w.ids["acme"]}),
        Claims::admin(w.tenant.as_str()),
    )
    .await;
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["state"], "created");
    assert_eq!(view["linkedByHand"]["by"], "usr_admin");
    assert_eq!(view["linked"][0]["name"], "Acme");
    let task = task_by_call_object(&w, "call_manual");
    assert_eq!(task.len(), 1, "the Task is created");
    assert_eq!(task[0]["WhatId"], json!(w.ids["acme"]));
    assert_eq!(task[0]["WhoId"], Value::Null);
    assert_eq!(
        task[0]["OwnerId"],
        json!(w.rep),
        "owned as the logger owns it"
    );
    assert!(
        task[0]["Description"]
            .as_str()
            .unwrap()
            .contains("https://app.modjo.ai/calls/call_manual")
    );

    // The audit trail says who, from what, to what.
    let trail = w.stack.aws.store().audit_trail(&w.tenant).await.unwrap();
    let entry = trail
        .iter()
        .find(|e| e.action == "call_linked")
        .expect("an audit entry");
    assert_eq!(entry.actor, "usr_admin");
    assert_eq!(
        entry.detail.as_deref(),
        Some(
            format!(
                "call call_manual: Who none, What none → Who none, What {}",
                w.ids["acme"]
            )
            .as_str()
        )
    );

    // A contact with the call's number appears: re-matching leaves it alone.
    w.stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Late", "Phone": "06 11 22 00 00"}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;
    let task = &task_by_call_object(&w, "call_manual")[0];
    assert_eq!(task["WhoId"], Value::Null, "the manual link stands");
    assert!(outcome(&w, "call_manual").await.rematches.is_empty());
}

#[tokio::test]
async fn the_host_re_points_a_logged_call_and_others_may_not() {
    let w = world().await;
    log(&w, &[phone_call(&w.tenant, "call_host", "+33140000001")]).await;
    let before = outcome(&w, "call_host").await;
    assert_eq!(before.who_id, None, "the account only");
    let body = json!({"whoId": w.ids["bob"], "whatId": w.ids["globex"]});
    let (code, _) = put_link(
        &w,
        "call_host",
        body.clone(),
        Claims::member(w.tenant.as_str()),
    )
    .await;
    assert_eq!(code, 403, "a member who is not the host");
    let (code, _) = put_link(&w, "call_host", body.clone(), host("other-tenant")).await;
    assert_eq!(code, 404, "another workspace does not see the call");
    let (code, view) = put_link(&w, "call_host", body, host(w.tenant.as_str())).await;
    assert_eq!(code, 200, "{view}");
    let task = &task_by_call_object(&w, "call_host")[0];
    assert_eq!(task["WhoId"], json!(w.ids["bob"]));
    assert_eq!(task["WhatId"], json!(w.ids["globex"]));
    assert_eq!(
        task["Id"],
        json!(before.task_id.unwrap()),
        "the same Task, updated"
    );
    let o = outcome(&w, "call_host").await;
    let manual = o.linked_by_hand.expect("linked by hand");
    assert_eq!(manual.by, "usr_12");
    assert_eq!(
        manual.from_what_id.as_deref(),
        Some(w.ids["globex"].as_str())
    );
    assert_eq!(o.who_id.as_deref(), Some(w.ids["bob"].as_str()));
}

#[tokio::test]
async fn an_id_salesforce_does_not_know_is_refused_and_nothing_changes() {
    let w = world().await;
    log(&w, &[phone_call(&w.tenant, "call_bad", "+33140000001")]).await;
    let before = outcome(&w, "call_bad").await;
    let (code, answer) = put_link(
        &w,
        "call_bad",
        json!({"whoId": "003000000000000AAA"}),
        Claims::admin(w.tenant.as_str()),
    )
    .await;
    assert_eq!(code, 400, "{answer}");
    let after = outcome(&w, "call_bad").await;
    assert_eq!(after, before);
    let task = &task_by_call_object(&w, "call_bad")[0];
    assert_eq!(task["WhoId"], Value::Null);
}

#[tokio::test]
async fn calls_needing_attention_are_unmatched_or_ambiguous_with_their_candidates() {
    let w = world().await;
    log(
        &w,
        &[
            phone_call(&w.tenant, "call_nobody", "+33611229999"),
            phone_call(&w.tenant, "call_two", "+33655555555"),
            phone_call(&w.tenant, "call_clear", "+33612345678"),
        ],
    )
    .await;
    let read = |claims: Option<Claims>| {
        api_event("GET", "/integrations/salesforce/attention", None, claims)
    };
    let r = w.stack.api(read(Claims::member(w.tenant.as_str()))).await;
    assert_eq!(status(&r), 200);
    let body = body_json(&r);
    let mut listed: Vec<&str> = body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["callId"].as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["call_nobody", "call_two"]);
    let two = body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["callId"] == "call_two")
        .unwrap();
    let candidates: Vec<&str> = two["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        candidates,
        [w.ids["recent"].as_str(), w.ids["old"].as_str()],
        "the chosen one first"
    );
    // Once linked by hand, a call no longer needs attention.
    let (code, _) = put_link(
        &w,
        "call_two",
        json!({"whoId": w.ids["old"]}),
        Claims::admin(w.tenant.as_str()),
    )
    .await;
    assert_eq!(code, 200);
    let body = body_json(&w.stack.api(read(Claims::member(w.tenant.as_str()))).await);
    let listed: Vec<&str> = body["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["callId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["call_nobody"]);
}
