//! Describe Global, sObject Basic Information and sObject Describe carry the
//! keys Salesforce returns. The key lists are those of a v61.0 describe kept
//! by Airbyte's Salesforce connector tests (airbytehq/airbyte,
//! airbyte-integrations/connectors/source-salesforce/unit_tests/salesforce_describe_response_builder.py)
//! and of Describe Global in the REST API guide ("Get a List of Objects").

// Test code: unwrap on fixtures is the assertion.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const OBJECT_KEYS: &[&str] = &[
    "actionOverrides",
    "activateable",
    "associateEntityType",
    "associateParentEntity",
    "childRelationships",
    "compactLayoutable",
    "createable",
    "custom",
    "customSetting",
    "deepCloneable",
    "defaultImplementation",
    "deletable",
    "deprecatedAndHidden",
    "extendedBy",
    "extendsInterfaces",
    "feedEnabled",
    "fields",
    "hasSubtypes",
    "implementedBy",
    "implementsInterfaces",
    "isInterface",
    "isSubtype",
    "keyPrefix",
    "label",
    "labelPlural",
    "layoutable",
    "listviewable",
    "lookupLayoutable",
    "mergeable",
    "mruEnabled",
    "name",
    "namedLayoutInfos",
    "networkScopeFieldName",
    "queryable",
    "recordTypeInfos",
    "replicateable",
    "retrieveable",
    "searchLayoutable",
    "searchable",
    "sobjectDescribeOption",
    "supportedScopes",
    "triggerable",
    "undeletable",
    "updateable",
    "urls",
];

const FIELD_KEYS: &[&str] = &[
    "aggregatable",
    "aiPredictionField",
    "autoNumber",
    "byteLength",
    "calculated",
    "calculatedFormula",
    "cascadeDelete",
    "caseSensitive",
    "compoundFieldName",
    "controllerName",
    "createable",
    "custom",
    "defaultValue",
    "defaultValueFormula",
    "defaultedOnCreate",
    "dependentPicklist",
    "deprecatedAndHidden",
    "digits",
    "displayLocationInDecimal",
    "encrypted",
    "externalId",
    "extraTypeInfo",
    "filterable",
    "filteredLookupInfo",
    "formulaTreatNullNumberAsZero",
    "groupable",
    "highScaleNumber",
    "htmlFormatted",
    "idLookup",
    "inlineHelpText",
    "label",
    "length",
    "mask",
    "maskType",
    "name",
    "nameField",
    "namePointing",
    "nillable",
    "permissionable",
    "picklistValues",
    "polymorphicForeignKey",
    "precision",
    "queryByDistance",
    "referenceTargetField",
    "referenceTo",
    "relationshipName",
    "relationshipOrder",
    "restrictedDelete",
    "restrictedPicklist",
    "scale",
    "searchPrefilterable",
    "soapType",
    "sortable",
    "type",
    "unique",
    "updateable",
    "writeRequiresMasterRead",
];

const GLOBAL_KEYS: &[&str] = &[
    "activateable",
    "associateEntityType",
    "associateParentEntity",
    "createable",
    "custom",
    "customSetting",
    "deepCloneable",
    "deletable",
    "deprecatedAndHidden",
    "feedEnabled",
    "hasSubtypes",
    "isInterface",
    "isSubtype",
    "keyPrefix",
    "label",
    "labelPlural",
    "layoutable",
    "mergeable",
    "mruEnabled",
    "name",
    "queryable",
    "replicateable",
    "retrieveable",
    "searchable",
    "triggerable",
    "undeletable",
    "updateable",
    "urls",
];

const CHILD_KEYS: &[&str] = &[
    "cascadeDelete",
    "childSObject",
    "deprecatedAndHidden",
    "field",
    "junctionIdListNames",
    "junctionReferenceTo",
    "relationshipName",
    "restrictedDelete",
];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn object_and_field_describes_have_salesforces_keys() {
    let env = env().await;
    let at = env.token().await;
    let global: Value = env
        .get(&at, &format!("{V}/sobjects"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        keys(&global),
        set(&["encoding", "maxBatchSize", "sobjects"])
    );
    let objects = global["sobjects"].as_array().unwrap();
    assert_eq!(objects.len(), 12);
    for o in objects {
        assert_eq!(keys(o), set(GLOBAL_KEYS), "{}", o["name"]);
        let name = o["name"].as_str().unwrap();
        let d: Value = env
            .get(&at, &format!("{V}/sobjects/{name}/describe"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(keys(&d), set(OBJECT_KEYS), "{name}");
        for f in d["fields"].as_array().unwrap() {
            assert_eq!(keys(f), set(FIELD_KEYS), "{name}.{}", f["name"]);
        }
        for c in d["childRelationships"].as_array().unwrap() {
            assert_eq!(keys(c), set(CHILD_KEYS), "{name}: {c}");
        }
        let basic: Value = env
            .get(&at, &format!("{V}/sobjects/{name}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(keys(&basic), set(&["objectDescribe", "recentItems"]));
        assert_eq!(keys(&basic["objectDescribe"]), set(GLOBAL_KEYS));
    }
}

#[tokio::test]
async fn describe_values_follow_the_schema() {
    let env = env().await;
    let at = env.token().await;
    let task: Value = env
        .get(&at, &format!("{V}/sobjects/Task/describe"))
        .await
        .json()
        .await
        .unwrap();
    let field = |n: &str| {
        task["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .unwrap()
            .clone()
    };
    let who = field("WhoId");
    assert_eq!(who["type"], "reference");
    assert_eq!(who["referenceTo"], json!(["Contact", "Lead"]));
    assert_eq!(who["relationshipName"], "Who");
    assert_eq!(who["polymorphicForeignKey"], true);
    assert_eq!(who["soapType"], "tns:ID");
    let desc = field("Description");
    assert_eq!(desc["length"], 32_000);
    assert_eq!(
        desc["filterable"], false,
        "long text areas cannot be filtered"
    );
    assert_eq!(field("Subject")["length"], 255);
    let subtype = field("TaskSubtype");
    assert_eq!(subtype["restrictedPicklist"], true);
    assert_eq!(subtype["updateable"], false);
    assert!(subtype["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == &json!({"active": true, "defaultValue": false, "label": "Call", "validFor": null, "value": "Call"})));
    assert!(
        task["urls"]["uiDetailTemplate"]
            .as_str()
            .unwrap()
            .starts_with(env.emu.base_url())
    );
}

/// Every named child relationship that describe lists can be queried in a
/// subquery.
#[tokio::test]
async fn named_child_relationships_are_queryable() {
    let env = env().await;
    let at = env.token().await;
    let global: Value = env
        .get(&at, &format!("{V}/sobjects"))
        .await
        .json()
        .await
        .unwrap();
    let mut named = 0;
    for o in global["sobjects"].as_array().unwrap() {
        let name = o["name"].as_str().unwrap();
        let d: Value = env
            .get(&at, &format!("{V}/sobjects/{name}/describe"))
            .await
            .json()
            .await
            .unwrap();
        for c in d["childRelationships"].as_array().unwrap() {
            let Some(rel) = c["relationshipName"].as_str() else {
                continue;
            };
            named += 1;
            let (s, body) = env
                .query(
                    &at,
                    &format!("SELECT Id, (SELECT Id FROM {rel}) FROM {name}"),
                )
                .await;
            assert_eq!(s, 200, "{name}.{rel}: {body}");
        }
    }
    assert_eq!(
        named, 18,
        "Tasks and Events of Account, Contact, Lead, Opportunity"
    );
    let opp: Value = env
        .get(&at, &format!("{V}/sobjects/Opportunity/describe"))
        .await
        .json()
        .await
        .unwrap();
    assert!(opp["childRelationships"].as_array().unwrap().iter().any(|c| c
        == &json!({"cascadeDelete": true, "childSObject": "OpportunityContactRole", "deprecatedAndHidden": false,
                   "field": "OpportunityId", "junctionIdListNames": [], "junctionReferenceTo": [],
                   "relationshipName": "OpportunityContactRoles", "restrictedDelete": false})));
}
