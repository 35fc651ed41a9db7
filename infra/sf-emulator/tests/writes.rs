//! sObject writes, validation rules, sObject Collections and composite.

// Test code: unwrap on fixtures is the assertion (clippy.toml allows it in #[test] fns; helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(env: &Env, at: &str, t: &str, body: Value) -> (u16, Value) {
    let r = env
        .send(at, Method::POST, &format!("{V}/sobjects/{t}/"), body)
        .await;
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

#[tokio::test]
async fn crud_and_not_found() {
    let env = env().await;
    let at = env.token().await;
    let (s, acc) = create(
        &env,
        &at,
        "Account",
        json!({"Name": "Acme", "Website": "acme.com"}),
    )
    .await;
    assert_eq!(s, 201);
    let id = acc["id"].as_str().unwrap().to_string();
    assert_eq!(acc, json!({"id": id, "success": true, "errors": []}));
    assert!(id.starts_with("001") && id.len() == 18);
    let rec: Value = env
        .get(&at, &format!("{V}/sobjects/Account/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rec["Name"], "Acme");
    assert_eq!(
        rec["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/Account/{id}")
    );
    assert_eq!(
        rec["OwnerId"],
        env.emu.seed_ref("acme", "ada").unwrap(),
        "owner defaults to the session user"
    );
    let raw = env
        .get(
            &at,
            &format!("{V}/sobjects/Account/{}?fields=Website,Name", &id[..15]),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_key_order(&raw, &["attributes", "Website", "Name"]);
    let rec: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(rec.as_object().unwrap().len(), 3);
    let r = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/sobjects/Account/{id}"),
            json!({"Website": null, "Phone": "+33 1 42 68 53 00"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.text().await.unwrap(), "");
    let rec = env.emu.record("acme", &id).unwrap();
    assert!(rec["Website"].is_null());
    assert_eq!(rec["Phone"], "+33 1 42 68 53 00");
    // Unknown type, unknown id.
    let r = env.get(&at, &format!("{V}/sobjects/Foo/{id}")).await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );
    let (s, body) = create(&env, &at, "Foo", json!({"Name": "x"})).await;
    assert_eq!((s, error_code(&body)), (404, "NOT_FOUND"));
    let r = env
        .get(&at, &format!("{V}/sobjects/Account/001000000000000AAA"))
        .await;
    assert_eq!(r.status(), 404);
    // Delete, then the record is gone for reads and writes.
    assert_eq!(
        env.send(
            &at,
            Method::DELETE,
            &format!("{V}/sobjects/Account/{id}"),
            Value::Null
        )
        .await
        .status(),
        204
    );
    let r = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/sobjects/Account/{id}"),
            json!({"Name": "B"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.json().await.unwrap()), "ENTITY_IS_DELETED");
    let r = env
        .send(
            &at,
            Method::DELETE,
            &format!("{V}/sobjects/Account/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(r.status(), 404);
    let c = env.emu.counters("acme").unwrap();
    for k in [
        "sobjectCreate",
        "sobjectRead",
        "sobjectUpdate",
        "sobjectDelete",
    ] {
        assert!(c.by_kind.get(k).copied().unwrap_or(0) >= 1, "{k}");
    }
}

#[tokio::test]
async fn validation_rules() {
    let env = env().await;
    let at = env.token().await;
    env.seed(vec![
        ("Account", "acme", json!({"Name": "Acme"})),
        ("Contact", "jane", json!({"LastName": "Doe", "AccountId": "@acme"})),
        ("Lead", "lead", json!({"LastName": "Lee", "Company": "Initech"})),
        ("Opportunity", "opp", json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31", "AccountId": "@acme"})),
    ]);
    let r = |name: &str| env.emu.seed_ref("acme", name).unwrap();
    let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
        (
            "Contact",
            json!({"FirstName": "x"}),
            "REQUIRED_FIELD_MISSING",
            vec!["LastName"],
        ),
        (
            "Lead",
            json!({"LastName": "x"}),
            "REQUIRED_FIELD_MISSING",
            vec!["Company"],
        ),
        ("Account", json!({}), "REQUIRED_FIELD_MISSING", vec!["Name"]),
        (
            "Opportunity",
            json!({"Name": "x"}),
            "REQUIRED_FIELD_MISSING",
            vec!["StageName", "CloseDate"],
        ),
        (
            "OpportunityContactRole",
            json!({"Role": "Other"}),
            "REQUIRED_FIELD_MISSING",
            vec!["OpportunityId", "ContactId"],
        ),
        (
            "Task",
            json!({"Description": "x".repeat(32_001)}),
            "STRING_TOO_LONG",
            vec!["Description"],
        ),
        (
            "Task",
            json!({"Subject": "x".repeat(256)}),
            "STRING_TOO_LONG",
            vec!["Subject"],
        ),
        (
            "Task",
            json!({"WhoId": r("acme")}),
            "INVALID_CROSS_REFERENCE_KEY",
            vec!["WhoId"],
        ),
        (
            "Task",
            json!({"WhoId": "003000000000000AAA"}),
            "INVALID_CROSS_REFERENCE_KEY",
            vec!["WhoId"],
        ),
        (
            "Task",
            json!({"WhatId": "nonsense"}),
            "MALFORMED_ID",
            vec!["WhatId"],
        ),
        (
            "Task",
            json!({"WhoId": r("lead"), "WhatId": r("acme")}),
            "FIELD_INTEGRITY_EXCEPTION",
            vec!["WhoId", "WhatId"],
        ),
        (
            "Task",
            json!({"CallType": "Sideways"}),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            vec!["CallType"],
        ),
        (
            "Task",
            json!({"IsClosed": true}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            vec!["IsClosed"],
        ),
        (
            "Contact",
            json!({"LastName": "x", "AccountId": r("opp")}),
            "INVALID_CROSS_REFERENCE_KEY",
            vec!["AccountId"],
        ),
    ];
    for (t, body, code, fields) in cases {
        let (s, resp) = create(&env, &at, t, body.clone()).await;
        assert_eq!(s, 400, "{t} {body}");
        assert_eq!(error_code(&resp), code, "{t}: {resp}");
        let got: Vec<&str> = resp[0]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{t}: {resp}");
    }
    // Unknown field and JSON type errors.
    let (s, resp) = create(&env, &at, "Task", json!({"Nope": 1})).await;
    assert_eq!((s, error_code(&resp)), (400, "INVALID_FIELD"));
    let (s, resp) = create(&env, &at, "Task", json!({"CallDurationInSeconds": "12"})).await;
    assert_eq!((s, error_code(&resp)), (400, "JSON_PARSER_ERROR"));
    // Salesforce reads the body as a stream (its parser errors carry a line
    // and column): of two bad fields, the first in the body is reported, not
    // the first in alphabetical order (unconfirmed for unknown fields).
    let (s, resp) = create(
        &env,
        &at,
        "Task",
        json!({"Zeta": 1, "Subject": "s", "Alpha": 2}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        resp[0]["message"],
        "No such column 'Zeta' on sobject of type Task"
    );
    // Inactive owner.
    env.emu.set_user_active("acme", REP, false).unwrap();
    let (s, resp) = create(&env, &at, "Task", json!({"OwnerId": r("rita")})).await;
    assert_eq!((s, error_code(&resp)), (400, "INACTIVE_OWNER_OR_USER"));
    // Defaults and derived fields.
    let (s, task) = create(&env, &at, "Task", json!({"Subject": "Call", "TaskSubtype": "Call", "WhoId": r("jane"), "Status": "Completed", "Description": "x".repeat(32_000)})).await;
    assert_eq!(s, 201, "{task}");
    let tid = task["id"].as_str().unwrap();
    let t = env.emu.record("acme", tid).unwrap();
    assert_eq!(t["IsClosed"], true);
    assert_eq!(t["Priority"], "Normal");
    assert_eq!(t["AccountId"], r("acme"), "derived from the contact");
    let (_, t2) = create(&env, &at, "Task", json!({"WhatId": r("opp")})).await;
    let t2 = env.emu.record("acme", t2["id"].as_str().unwrap()).unwrap();
    assert_eq!(t2["Status"], "Not Started");
    assert_eq!(t2["IsClosed"], false);
    assert_eq!(t2["AccountId"], r("acme"), "derived from the opportunity");
    // TaskSubtype is create-only.
    let resp = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/sobjects/Task/{tid}"),
            json!({"TaskSubtype": "Email"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(body[0]["fields"], json!(["TaskSubtype"]));
    // Nulling a required field.
    let resp = env
        .send(
            &at,
            Method::PATCH,
            &format!("{V}/sobjects/Contact/{}", r("jane")),
            json!({"LastName": null}),
        )
        .await;
    assert_eq!(
        error_code(&resp.json().await.unwrap()),
        "REQUIRED_FIELD_MISSING"
    );
    let contact = env.emu.record("acme", &r("jane")).unwrap();
    assert_eq!(contact["Name"], "Doe");
}

#[tokio::test]
async fn collections_results_use_status_code() {
    let env = env().await;
    let at = env.token().await;
    let body = json!({"allOrNone": false, "records": [
        {"attributes": {"type": "Task"}, "Subject": "ok 1"},
        {"attributes": {"type": "Contact"}, "FirstName": "no last name"},
        {"attributes": {"type": "Task"}, "Subject": "ok 2"}
    ]});
    let r = env
        .send(&at, Method::POST, &format!("{V}/composite/sobjects"), body)
        .await;
    assert_eq!(r.status(), 200);
    let res: Value = r.json().await.unwrap();
    assert_eq!(res[0]["success"], true);
    assert!(res[0]["id"].as_str().unwrap().starts_with("00T"));
    assert_eq!(res[0]["errors"], json!([]));
    assert_eq!(
        res[1],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]})
    );
    assert_eq!(res[2]["success"], true);
    // All or none: nothing is written.
    let before = env.emu.records("acme", "Task", true).unwrap().len();
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Task"}, "Subject": "rolled back"},
        {"attributes": {"type": "Task"}, "CallType": "Bad"}
    ]});
    let res: Value = env
        .send(&at, Method::POST, &format!("{V}/composite/sobjects"), body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res[0]["success"], false);
    assert_eq!(
        res[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        res[1]["errors"][0]["statusCode"],
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    );
    assert_eq!(env.emu.records("acme", "Task", true).unwrap().len(), before);
    // Update.
    let id0 = res_id(&env, &at).await;
    let body = json!({"records": [
        {"attributes": {"type": "Task"}, "id": id0, "Subject": "renamed"},
        {"attributes": {"type": "Task"}, "Subject": "no id"},
        {"attributes": {"type": "Task"}, "id": id0, "TaskSubtype": "Email"}
    ]});
    let res: Value = env
        .send(&at, Method::PATCH, &format!("{V}/composite/sobjects"), body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res[0], json!({"id": id0, "success": true, "errors": []}));
    assert_eq!(res[1]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    assert_eq!(
        res[2]["errors"][0]["statusCode"],
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    );
    // More than 200 records: a top-level error.
    let many: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Task"}, "Subject": format!("t{i}")}))
        .collect();
    let r = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/composite/sobjects"),
            json!({"records": many}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "EXCEEDED_ID_LIMIT");
    // Retrieve: nulls for missing ids.
    let r = env
        .get(
            &at,
            &format!("{V}/composite/sobjects/Task?ids={id0},00T000000000000AAA&fields=Id,Subject"),
        )
        .await;
    let res: Value = r.json().await.unwrap();
    assert_eq!(res[0]["Subject"], "renamed");
    assert!(res[1].is_null());
    let c = env.emu.counters("acme").unwrap();
    assert_eq!(c.by_kind.get("collectionsCreate"), Some(&3));
    assert_eq!(c.by_kind.get("collectionsUpdate"), Some(&1));
    assert_eq!(c.by_kind.get("collectionsRetrieve"), Some(&1));
}

async fn res_id(env: &Env, at: &str) -> String {
    let (_, t) = create(env, at, "Task", json!({"Subject": "for update"})).await;
    t["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn composite_with_references_and_all_or_none() {
    let env = env().await;
    let at = env.token().await;
    let body = json!({"allOrNone": false, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": "acc", "body": {"Name": "Composite Co"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Contact", "referenceId": "con", "body": {"LastName": "Ref", "AccountId": "@{acc.id}"}},
        {"method": "GET", "url": "/services/data/v62.0/sobjects/Contact/@{con.id}?fields=AccountId", "referenceId": "get"},
        {"method": "GET", "url": "/services/data/v62.0/query?q=SELECT+Id,Account.Name+FROM+Contact+WHERE+Id+=+'@{con.id}'", "referenceId": "q"}
    ]});
    let r = env
        .send(&at, Method::POST, &format!("{V}/composite"), body)
        .await;
    assert_eq!(r.status(), 200);
    let res: Value = r.json().await.unwrap();
    let subs = res["compositeResponse"].as_array().unwrap();
    assert_eq!(subs[0]["httpStatusCode"], 201);
    assert_eq!(subs[0]["referenceId"], "acc");
    let acc = subs[0]["body"]["id"].as_str().unwrap();
    assert_eq!(
        subs[0]["httpHeaders"]["Location"],
        format!("/services/data/v62.0/sobjects/Account/{acc}")
    );
    assert_eq!(subs[2]["httpStatusCode"], 200);
    assert_eq!(subs[2]["body"]["AccountId"], acc);
    assert_eq!(
        subs[3]["body"]["records"][0]["Account"]["Name"],
        "Composite Co"
    );
    assert_eq!(
        env.emu.counters("acme").unwrap().by_kind.get("composite"),
        Some(&1)
    );
    // All or none: a failure rolls everything back.
    let accounts = env.emu.records("acme", "Account", true).unwrap().len();
    let body = json!({"allOrNone": true, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": "a", "body": {"Name": "Gone"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Contact", "referenceId": "b", "body": {"FirstName": "no last"}},
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": "c", "body": {"Name": "Never"}}
    ]});
    let res: Value = env
        .send(&at, Method::POST, &format!("{V}/composite"), body)
        .await
        .json()
        .await
        .unwrap();
    let subs = res["compositeResponse"].as_array().unwrap();
    assert_eq!(subs.len(), 3);
    assert_eq!(subs[0]["httpStatusCode"], 400);
    assert_eq!(subs[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(subs[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(subs[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        env.emu.records("acme", "Account", true).unwrap().len(),
        accounts
    );
    // A reference to a failed subrequest.
    let body = json!({"compositeRequest": [
        {"method": "POST", "url": "/services/data/v62.0/sobjects/Contact", "referenceId": "bad", "body": {}},
        {"method": "GET", "url": "/services/data/v62.0/sobjects/Contact/@{bad.id}", "referenceId": "dep"}
    ]});
    let res: Value = env
        .send(&at, Method::POST, &format!("{V}/composite"), body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(res["compositeResponse"][1]["httpStatusCode"], 400);
    assert_eq!(
        res["compositeResponse"][1]["body"][0]["errorCode"],
        "PROCESSING_HALTED"
    );
    // More than 25 subrequests.
    let many: Vec<Value> = (0..26).map(|i| json!({"method": "GET", "url": "/services/data/v62.0/limits", "referenceId": format!("r{i}")})).collect();
    let r = env
        .send(
            &at,
            Method::POST,
            &format!("{V}/composite"),
            json!({"compositeRequest": many}),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()[0]["errorCode"].is_string());
}

#[tokio::test]
async fn change_log_records_client_and_fields() {
    let env = env().await;
    let at = env.token().await;
    let r = env
        .http
        .post(env.url(&format!("{V}/sobjects/Opportunity")))
        .bearer_auth(&at)
        .header("Sforce-Call-Options", "client=modjo-sync")
        .json(&json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-31"}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env
        .http
        .patch(env.url(&format!("{V}/sobjects/Opportunity/{id}")))
        .bearer_auth(&at)
        .json(&json!({"StageName": "Closed Won", "NextStep": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let log = env.emu.changes("acme").unwrap();
    let mine: Vec<_> = log
        .iter()
        .filter(|c| c.record_ids == vec![id.clone()])
        .collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].change_type, sf_emulator::ChangeType::Create);
    assert_eq!(mine[0].client.as_deref(), Some("modjo-sync"));
    assert!(mine[0].changed_fields.contains(&"StageName"));
    assert_eq!(mine[1].change_type, sf_emulator::ChangeType::Update);
    assert!(mine[1].client.is_none());
    assert!(mine[1].changed_fields.contains(&"StageName"));
    assert!(
        mine[1].changed_fields.contains(&"IsWon"),
        "derived fields are part of the change"
    );
    assert!(mine[1].nulled_fields.contains(&"NextStep"));
    let opp = env.emu.record("acme", &id).unwrap();
    assert_eq!(opp["IsClosed"], true);
    assert_eq!(opp["IsWon"], true);
}

#[tokio::test]
async fn change_log_sequence_survives_rollback_and_can_be_disabled() {
    let env = env().await;
    let at = env.token().await;
    let (s, _) = create(&env, &at, "Task", json!({"Subject": "one"})).await;
    assert_eq!(s, 201);
    // All or none: the rolled-back create leaves no entry and no gap.
    let body = json!({"allOrNone": true, "records": [
        {"attributes": {"type": "Task"}, "Subject": "rolled back"},
        {"attributes": {"type": "Task"}, "CallType": "Bad"}
    ]});
    let r = env
        .send(&at, Method::POST, &format!("{V}/composite/sobjects"), body)
        .await;
    assert_eq!(r.status(), 200);
    let (s, two) = create(&env, &at, "Task", json!({"Subject": "two"})).await;
    assert_eq!(s, 201);
    let log = env.emu.changes("acme").unwrap();
    let seqs: Vec<u64> = log.iter().map(|c| c.sequence).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());
    let last = log.last().unwrap();
    assert_eq!(
        last.record_ids,
        vec![two["id"].as_str().unwrap().to_string()]
    );
    assert_eq!(last.entity_name, "Task");
    assert!(last.changed_fields.contains(&"Subject"));
    assert!(!last.changed_fields.contains(&"IsDeleted"));
    assert_eq!(
        env.emu.footprint("acme").unwrap().change_log_entries,
        log.len()
    );

    // An org without change log (bulk benchmarks).
    env.emu
        .create_org(sf_emulator::OrgSpec {
            key: Some("bulk".into()),
            change_log: Some(false),
            ..Default::default()
        })
        .unwrap();
    env.emu
        .create_user(
            "bulk",
            sf_emulator::UserSpec {
                username: "u@bulk.test".into(),
                email: "u@bulk.test".into(),
                last_name: "U".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let recs: Vec<sf_emulator::SeedRecord> = (0..50)
        .map(|i| sf_emulator::SeedRecord {
            object: "Contact".into(),
            reference: None,
            fields: json!({"LastName": format!("L{i}"), "Title": "Head of Sales"})
                .as_object()
                .cloned()
                .unwrap(),
        })
        .collect();
    env.emu.seed("bulk", &recs).unwrap();
    assert!(env.emu.changes("bulk").unwrap().is_empty());
    let grown = env.emu.footprint("bulk").unwrap();
    env.emu.shrink_to_fit("bulk").unwrap();
    let fp = env.emu.footprint("bulk").unwrap();
    assert!(fp.records_bytes <= grown.records_bytes);
    assert_eq!(
        (fp.records, fp.change_log_entries, fp.change_log_bytes),
        (51, 0, 0)
    );
    assert!(fp.records_bytes > 0);
    let rows = env.emu.records("bulk", "Contact", false).unwrap();
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[49]["LastName"], "L49");
    assert_eq!(rows[49]["Title"], "Head of Sales");
}
