//! Describe Global (`sobjects`), sObject Basic Information (`sobjects/X`) and
//! sObject Describe (`sobjects/X/describe`), with the keys Salesforce returns.
//!
//! Key lists: the REST API guide ("Get a List of Objects": the sobjects entry
//! of Describe Global) and a v61.0 describe kept by Airbyte's Salesforce
//! connector tests (airbytehq/airbyte,
//! `airbyte-integrations/connectors/source-salesforce/unit_tests/salesforce_describe_response_builder.py`):
//! every key of an object and of a field, in Salesforce's (alphabetical) order.

use crate::access::Perm;
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};
use serde_json::{Map, Value, json};

/// Label of an object.
fn label(obj: &ObjectDef) -> &'static str {
    match obj.name {
        "OpportunityContactRole" => "Opportunity Contact Role",
        "EmailMessage" => "Email Message",
        "EmailMessageRelation" => "Email Message Relation",
        "ContentNote" => "Note",
        "ContentDocumentLink" => "Content Document Link",
        n => n,
    }
}

fn urls(obj: &ObjectDef, version: &str, ui_base: Option<&str>) -> Value {
    let base = format!("/services/data/v{version}/sobjects/{}", obj.name);
    let mut u = Map::new();
    let mut url = |key: &str, value: String| u.insert(key.into(), value.into());
    url("compactLayouts", format!("{base}/describe/compactLayouts"));
    url("rowTemplate", format!("{base}/{{ID}}"));
    url(
        "approvalLayouts",
        format!("{base}/describe/approvalLayouts"),
    );
    if let Some(ui) = ui_base {
        url("uiDetailTemplate", format!("{ui}/{{ID}}"));
        url("uiEditTemplate", format!("{ui}/{{ID}}/e"));
    }
    url("listviews", format!("{base}/listviews"));
    url("describe", format!("{base}/describe"));
    if let Some(ui) = ui_base {
        url("uiNewRecord", format!("{ui}/{}/e", obj.key_prefix));
    }
    url("quickActions", format!("{base}/quickActions"));
    url("layouts", format!("{base}/describe/layouts"));
    url("sobject", base);
    Value::Object(u)
}

fn deletable(obj: &ObjectDef) -> bool {
    obj.api_writable && obj.has_is_deleted
}

/// One entry of Describe Global's `sobjects`, also the `objectDescribe` of
/// sObject Basic Information.
pub fn summary(obj: &ObjectDef, version: &str) -> Value {
    summary_as(obj, version, obj.api_writable, obj.api_writable)
}

/// [`summary`] as a user who may create and edit as said.
fn summary_as(obj: &ObjectDef, version: &str, createable: bool, updateable: bool) -> Value {
    json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": createable,
        "custom": false,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": deletable(obj),
        "deprecatedAndHidden": false,
        "feedEnabled": obj.has_owner(),
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": obj.key_prefix,
        "label": label(obj),
        "labelPlural": obj.label_plural,
        "layoutable": true,
        "mergeable": matches!(obj.name, "Account" | "Contact" | "Lead"),
        "mruEnabled": true,
        "name": obj.name,
        "queryable": true,
        "replicateable": obj.replicable,
        "retrieveable": true,
        "searchable": obj.searchable,
        "triggerable": true,
        "undeletable": deletable(obj),
        "updateable": updateable,
        "urls": urls(obj, version, None),
    })
}

/// `GET sobjects` as seen by a user with the permissions `may` grants: the
/// objects they cannot read are not listed.
pub fn global(version: &str, may: impl Fn(&ObjectDef, Perm) -> bool) -> Value {
    json!({
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": Value::Array(
            Schema::get()
                .objects
                .iter()
                .filter(|o| may(o, Perm::Read))
                .map(|o| {
                    summary_as(
                        o,
                        version,
                        o.api_writable && may(o, Perm::Create),
                        o.api_writable && may(o, Perm::Edit),
                    )
                })
                .collect(),
        ),
    })
}

/// Every reference to `obj` from any object, as `childRelationships`.
fn child_relationships(obj: &ObjectDef) -> Value {
    let schema = Schema::get();
    let mut out = Vec::new();
    for child in &schema.objects {
        for (fi, f) in child.fields.iter().enumerate() {
            if f.ftype != FieldType::Reference || !f.refs.contains(&obj.name) {
                continue;
            }
            let name = obj
                .children
                .iter()
                .find(|c| c.child == child.index && c.field == fi)
                .map(|c| c.name);
            out.push(json!({
                "cascadeDelete": obj
                    .cascade
                    .iter()
                    .any(|(c, fld)| *c == child.name && *fld == f.name),
                "childSObject": child.name,
                "deprecatedAndHidden": false,
                "field": f.name,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": name,
                "restrictedDelete": false,
            }));
        }
    }
    Value::Array(out)
}

fn soap_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Id | FieldType::Reference => "tns:ID",
        FieldType::Boolean => "xsd:boolean",
        FieldType::Int => "xsd:int",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
        FieldType::Date => "xsd:date",
        FieldType::DateTime => "xsd:dateTime",
        FieldType::Base64 => "xsd:base64Binary",
        _ => "xsd:string",
    }
}

fn compound(obj: &ObjectDef, f: &FieldDef) -> Option<&'static str> {
    match (obj.name, f.name) {
        ("Contact" | "Lead" | "User", "FirstName" | "LastName" | "Salutation") => Some("Name"),
        ("Account", n) if n.starts_with("Billing") => Some("BillingAddress"),
        ("Contact", n) if n.starts_with("Mailing") => Some("MailingAddress"),
        ("Lead", "City" | "Country") => Some("Address"),
        _ => None,
    }
}

fn field(obj: &ObjectDef, f: &FieldDef) -> Value {
    let t = f.ftype;
    let long_text = t == FieldType::TextArea && f.length > 255;
    let text = t.is_text() && t != FieldType::Base64;
    let system = matches!(
        f.name,
        "Id" | "IsDeleted"
            | "CreatedDate"
            | "CreatedById"
            | "LastModifiedDate"
            | "LastModifiedById"
            | "SystemModstamp"
    );
    let defaulted = system
        || t == FieldType::Boolean
        || f.name == "OwnerId"
        || (f.required && f.restricted.is_some() && !f.createable)
        || matches!(
            (obj.name, f.name),
            ("Task", "Status" | "Priority" | "TaskSubtype") | ("Lead", "Status")
        );
    let (precision, scale, digits) = match t {
        FieldType::Currency => (18, 2, 0),
        FieldType::Percent => (3, 0, 0),
        FieldType::Double => (18, 0, 0),
        FieldType::Int => (0, 0, 9),
        _ => (0, 0, 0),
    };
    let byte_length = match t {
        FieldType::Id | FieldType::Reference => 18,
        _ if text => i64::from(f.length) * 3,
        _ => 0,
    };
    let picklist: Vec<Value> = f
        .restricted
        .map(|vals| {
            vals.iter()
                .map(|v| {
                    json!({
                        "active": true,
                        "defaultValue": false,
                        "label": *v,
                        "validFor": null,
                        "value": *v,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let cascade = f.refs.first().is_some_and(|parent| {
        Schema::get().object(parent).is_some_and(|p| {
            p.cascade
                .iter()
                .any(|(c, fld)| *c == obj.name && *fld == f.name)
        })
    });
    json!({
        "aggregatable": !long_text && t != FieldType::Base64,
        "aiPredictionField": false,
        "autoNumber": false,
        "byteLength": byte_length,
        "calculated": f.computed.is_some(),
        "calculatedFormula": null,
        "cascadeDelete": cascade,
        "caseSensitive": false,
        "compoundFieldName": compound(obj, f),
        "controllerName": null,
        "createable": f.createable,
        "custom": false,
        "defaultValue": (t == FieldType::Boolean).then_some(false),
        "defaultValueFormula": null,
        "defaultedOnCreate": defaulted,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": i64::from(digits),
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": false,
        "extraTypeInfo": match (t, f.name) {
            (FieldType::TextArea, _) => Some("plaintextarea"),
            (_, "Name") if f.computed.is_some() => Some("personname"),
            _ => None,
        },
        "filterable": !long_text && t != FieldType::Base64,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": !long_text
            && !matches!(
                t,
                FieldType::Base64
                    | FieldType::Double
                    | FieldType::Currency
                    | FieldType::Percent
                    | FieldType::DateTime
            ),
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": f.name == "Id" || f.name == "Username" || t == FieldType::Email,
        "inlineHelpText": null,
        "label": f.label,
        "length": if text { i64::from(f.length) } else { 0 },
        "mask": null,
        "maskType": null,
        "name": f.name,
        "nameField": f.name == "Name" || (obj.name == "ContentNote" && f.name == "Title"),
        "namePointing": f.polymorphic,
        "nillable": f.nillable,
        "permissionable": !system && !f.required && f.computed.is_none(),
        "picklistValues": picklist,
        "polymorphicForeignKey": f.polymorphic,
        "precision": i64::from(precision),
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": f.refs,
        "relationshipName": f.rel_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": f.restricted.is_some(),
        "scale": i64::from(scale),
        "searchPrefilterable": false,
        "soapType": soap_type(t),
        "sortable": !long_text && t != FieldType::Base64,
        "type": t.describe_name(),
        "unique": f.name == "Username",
        "updateable": f.updateable,
        "writeRequiresMasterRead": false,
    })
}

/// `GET sobjects/X/describe`. `base_url` is the instance URL (for the UI
/// templates).
pub fn object(obj: &ObjectDef, version: &str, base_url: &str) -> Value {
    let plural = obj.label_plural.to_ascii_lowercase();
    let mut scopes = vec![json!({ "label": format!("All {plural}"), "name": "everything" })];
    if obj.has_owner() {
        scopes.push(json!({ "label": format!("My {plural}"), "name": "mine" }));
    }
    let master = "012000000000000AAA";
    json!({
        "actionOverrides": [],
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "childRelationships": child_relationships(obj),
        "compactLayoutable": true,
        "createable": obj.api_writable,
        "custom": false,
        "customSetting": false,
        "deepCloneable": false,
        "defaultImplementation": null,
        "deletable": deletable(obj),
        "deprecatedAndHidden": false,
        "extendedBy": null,
        "extendsInterfaces": null,
        "feedEnabled": obj.has_owner(),
        "fields": obj.fields.iter().map(|f| field(obj, f)).collect::<Vec<_>>(),
        "hasSubtypes": false,
        "implementedBy": null,
        "implementsInterfaces": null,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": obj.key_prefix,
        "label": label(obj),
        "labelPlural": obj.label_plural,
        "layoutable": true,
        "listviewable": null,
        "lookupLayoutable": null,
        "mergeable": matches!(obj.name, "Account" | "Contact" | "Lead"),
        "mruEnabled": true,
        "name": obj.name,
        "namedLayoutInfos": [],
        "networkScopeFieldName": null,
        "queryable": true,
        "recordTypeInfos": [
            {
                "active": true,
                "available": true,
                "defaultRecordTypeMapping": true,
                "developerName": "Master",
                "master": true,
                "name": "Master",
                "recordTypeId": master,
                "urls": {
                    "layout": format!(
                        "/services/data/v{version}/sobjects/{}/describe/layouts/{master}",
                        obj.name
                    ),
                },
            },
        ],
        "replicateable": obj.replicable,
        "retrieveable": true,
        "searchLayoutable": obj.searchable,
        "searchable": obj.searchable,
        "sobjectDescribeOption": "FULL",
        "supportedScopes": scopes,
        "triggerable": true,
        "undeletable": deletable(obj),
        "updateable": obj.api_writable,
        "urls": urls(obj, version, Some(base_url)),
    })
}
