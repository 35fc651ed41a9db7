//! Merges and Lead conversions (issue 19), against the emulator and moto: the
//! index points at the surviving record, and the calls follow it. Salesforce
//! moves the Tasks itself (the emulator does as it does); Modjo does not write them.

use e2e::scenario::*;
use e2e::sf::{ORG, SfWorld, WorldOptions};
use serde_json::json;
use sf_emulator::EventType;
use shared::domain::{IndexKey, IndexKind};
use shared::ports::RecordStore;

async fn indexed_phone(w: &World, e164: &str) -> Vec<String> {
    w.stack
        .aws
        .store()
        .query_index(
            &w.tenant,
            &IndexKey {
                kind: IndexKind::Phone,
                value: e164.into(),
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record_id)
        .collect()
}

#[tokio::test]
async fn a_call_on_a_merged_contact_follows_the_master() {
    let w = world().await;
    let dup = w
        .stack
        .sf
        .user()
        .create(
            "Contact",
            json!({"LastName": "Doe (duplicate)", "Phone": "06 11 22 33 11", "AccountId": w.ids["acme"]}),
        )
        .await;
    sync(&w.stack, &w.tenant).await;
    log(&w, &[phone_call(&w.tenant, "call_dup", "+33611223311")]).await;
    let before = outcome(&w, "call_dup").await;
    assert_eq!(before.who_id.as_deref(), Some(dup.as_str()));
    assert_eq!(indexed_phone(&w, "+33611223311").await, [dup.as_str()]);

    let jane = w.ids["jane"].clone();
    w.stack
        .sf
        .emu
        .merge(ORG, &jane, std::slice::from_ref(&dup))
        .unwrap();
    let loser = w.stack.sf.emu.record(ORG, &dup).unwrap();
    assert_eq!(loser["IsDeleted"], true);
    assert_eq!(loser["MasterRecordId"], json!(jane));
    let task = &task_by_call_object(&w, "call_dup")[0];
    assert_eq!(
        task["WhoId"],
        json!(jane),
        "Salesforce moved the Task itself"
    );

    let writes = w.stack.sf.calls("collectionsUpdate") + w.stack.sf.calls("composite");
    sync(&w.stack, &w.tenant).await;
    let after = outcome(&w, "call_dup").await;
    assert_eq!(after.who_id.as_deref(), Some(jane.as_str()));
    assert_eq!(after.linked[0].id, jane);
    let last = after.rematches.last().expect("recorded");
    assert!(last.reason.contains("merged"), "{}", last.reason);
    assert_eq!(last.from_who_id.as_deref(), Some(dup.as_str()));
    assert!(
        indexed_phone(&w, "+33611223311").await.is_empty(),
        "the loser left the index"
    );
    assert_eq!(
        w.stack.sf.calls("collectionsUpdate") + w.stack.sf.calls("composite"),
        writes,
        "Modjo does not write the Task Salesforce moved"
    );
    assert_eq!(
        &task_by_call_object(&w, "call_dup")[0]["WhoId"],
        &json!(jane)
    );
}

#[tokio::test]
async fn a_call_on_a_converted_lead_follows_its_contact_and_opportunity() {
    let w = world().await;
    log(&w, &[phone_call(&w.tenant, "call_lead", "+33677777777")]).await;
    let lead = w.ids["lead"].clone();
    assert_eq!(
        outcome(&w, "call_lead").await.who_id.as_deref(),
        Some(lead.as_str())
    );

    let (account, contact, opportunity) = w.stack.sf.emu.convert_lead(ORG, &lead, true).unwrap();
    let opportunity = opportunity.expect("an opportunity");
    let converted = w.stack.sf.emu.record(ORG, &lead).unwrap();
    assert_eq!(converted["IsConverted"], true);
    assert_eq!(converted["ConvertedContactId"], json!(contact));
    assert_eq!(converted["ConvertedAccountId"], json!(account));
    assert_eq!(converted["ConvertedOpportunityId"], json!(opportunity));
    let task = &task_by_call_object(&w, "call_lead")[0];
    assert_eq!(task["WhoId"], json!(contact));
    assert_eq!(task["WhatId"], json!(opportunity));

    sync(&w.stack, &w.tenant).await;
    let after = outcome(&w, "call_lead").await;
    assert_eq!(after.who_id.as_deref(), Some(contact.as_str()));
    assert_eq!(after.what_id.as_deref(), Some(opportunity.as_str()));
    assert!(
        after.rematches.last().unwrap().reason.contains("converted"),
        "{:?}",
        after.rematches
    );
    assert_eq!(
        indexed_phone(&w, "+33677777777").await,
        [contact.as_str()],
        "the number now points at the contact, not the lead"
    );
    assert!(!after.can_improve(), "a contact: no more re-matching");
}

/// What Change Data Capture sees of a merge: the moved Task, the loser's
/// DELETE, the master's UPDATE.
#[tokio::test]
async fn a_merge_emits_the_change_events_salesforce_emits() {
    let sf = SfWorld::start(WorldOptions {
        cdc: Some(vec!["Contact".into()]),
        ..WorldOptions::default()
    })
    .await;
    let ids = sf.seed(vec![
        ("Contact", json!({"LastName": "Master"})),
        ("Contact", json!({"LastName": "Loser"})),
    ]);
    let before = sf.emu.cdc_events(ORG).unwrap().len();
    sf.emu.merge(ORG, &ids[0], &ids[1..]).unwrap();
    let events: Vec<(EventType, Vec<String>)> = sf
        .emu
        .cdc_events(ORG)
        .unwrap()
        .into_iter()
        .skip(before)
        .filter(|e| e.topic.contains("Contact"))
        .map(|e| (e.change_type, e.record_ids))
        .collect();
    assert_eq!(
        events,
        [
            (EventType::Delete, vec![ids[1].clone()]),
            (EventType::Update, vec![ids[0].clone()]),
        ]
    );
    // A merge takes one or two others, of the same object, alive.
    assert!(
        sf.emu.merge(ORG, &ids[0], &ids[1..]).is_err(),
        "the loser is gone"
    );
    assert!(sf.emu.merge(ORG, &ids[0], &[]).is_err());
}
