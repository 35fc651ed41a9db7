//! Describe Global (`sobjects`), sObject Basic Information (`sobjects/X`) and
//! sObject Describe (`sobjects/X/describe`), with the keys Salesforce returns.
//!
//! Key lists: the REST API guide ("Get a List of Objects": the sobjects entry
//! of Describe Global) and a v61.0 describe kept by Airbyte's Salesforce
//! connector tests (airbytehq/airbyte,
//! `airbyte-integrations/connectors/source-salesforce/unit_tests/salesforce_describe_response_builder.py`):
//! every key of an object and of a field, in Salesforce's (alphabetical) order.

use crate::access::Perm;
use crate::json::Json;
use crate::schema::{FieldDef, FieldType, ObjectDef, Schema};

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

fn urls(obj: &ObjectDef, version: &str, ui_base: Option<&str>) -> Json {
    let base = format!("/services/data/v{version}/sobjects/{}", obj.name);
    let mut u = Json::obj()
        .with("compactLayouts", format!("{base}/describe/compactLayouts"))
        .with("rowTemplate", format!("{base}/{{ID}}"))
        .with(
            "approvalLayouts",
            format!("{base}/describe/approvalLayouts"),
        );
    if let Some(ui) = ui_base {
        u.push("uiDetailTemplate", format!("{ui}/{{ID}}"));
        u.push("uiEditTemplate", format!("{ui}/{{ID}}/e"));
    }
    u.push("listviews", format!("{base}/listviews"));
    u.push("describe", format!("{base}/describe"));
    if let Some(ui) = ui_base {
        u.push("uiNewRecord", format!("{ui}/{}/e", obj.key_prefix));
    }
    u.push("quickActions", format!("{base}/quickActions"));
    u.push("layouts", format!("{base}/describe/layouts"));
    u.with("sobject", base)
}

fn deletable(obj: &ObjectDef) -> bool {
    obj.api_writable && obj.has_is_deleted
}

/// One entry of Describe Global's `sobjects`, also the `objectDescribe` of
/// sObject Basic Information.
pub fn summary(obj: &ObjectDef, version: &str) -> Json {
    summary_as(obj, version, obj.api_writable, obj.api_writable)
}

/// [`summary`] as a user who may create and edit as said.
fn summary_as(obj: &ObjectDef, version: &str, createable: bool, updateable: bool) -> Json {
    Json::obj()
        .with("activateable", false)
        .with("associateEntityType", Json::Null)
        .with("associateParentEntity", Json::Null)
        .with("createable", createable)
        .with("custom", false)
        .with("customSetting", false)
        .with("deepCloneable", false)
        .with("deletable", deletable(obj))
        .with("deprecatedAndHidden", false)
        .with("feedEnabled", obj.has_owner())
        .with("hasSubtypes", false)
        .with("isInterface", false)
        .with("isSubtype", false)
        .with("keyPrefix", obj.key_prefix)
        .with("label", label(obj))
        .with("labelPlural", obj.label_plural)
        .with("layoutable", true)
        .with(
            "mergeable",
            matches!(obj.name, "Account" | "Contact" | "Lead"),
        )
        .with("mruEnabled", true)
        .with("name", obj.name)
        .with("queryable", true)
        .with("replicateable", obj.replicable)
        .with("retrieveable", true)
        .with("searchable", obj.searchable)
        .with("triggerable", true)
        .with("undeletable", deletable(obj))
        .with("updateable", updateable)
        .with("urls", urls(obj, version, None))
}

/// `GET sobjects` as seen by a user with the permissions `may` grants: the
/// objects they cannot read are not listed.
pub fn global(version: &str, may: impl Fn(&ObjectDef, Perm) -> bool) -> Json {
    Json::obj()
        .with("encoding", "UTF-8")
        .with("maxBatchSize", 200i64)
        .with(
            "sobjects",
            Json::Arr(
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
        )
}

/// Every reference to `obj` from any object, as `childRelationships`.
fn child_relationships(obj: &ObjectDef) -> Json {
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
            out.push(
                Json::obj()
                    .with(
                        "cascadeDelete",
                        obj.cascade
                            .iter()
                            .any(|(c, fld)| *c == child.name && *fld == f.name),
                    )
                    .with("childSObject", child.name)
                    .with("deprecatedAndHidden", false)
                    .with("field", f.name)
                    .with("junctionIdListNames", Json::Arr(vec![]))
                    .with("junctionReferenceTo", Json::Arr(vec![]))
                    .with("relationshipName", name)
                    .with("restrictedDelete", false),
            );
        }
    }
    Json::Arr(out)
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

fn field(obj: &ObjectDef, f: &FieldDef) -> Json {
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
    let picklist: Vec<Json> = f
        .restricted
        .map(|vals| {
            vals.iter()
                .map(|v| {
                    Json::obj()
                        .with("active", true)
                        .with("defaultValue", false)
                        .with("label", *v)
                        .with("validFor", Json::Null)
                        .with("value", *v)
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
    Json::obj()
        .with("aggregatable", !long_text && t != FieldType::Base64)
        .with("aiPredictionField", false)
        .with("autoNumber", false)
        .with("byteLength", byte_length)
        .with("calculated", f.computed.is_some())
        .with("calculatedFormula", Json::Null)
        .with("cascadeDelete", cascade)
        .with("caseSensitive", false)
        .with("compoundFieldName", compound(obj, f))
        .with("controllerName", Json::Null)
        .with("createable", f.createable)
        .with("custom", false)
        .with(
            "defaultValue",
            if t == FieldType::Boolean {
                Json::Bool(false)
            } else {
                Json::Null
            },
        )
        .with("defaultValueFormula", Json::Null)
        .with("defaultedOnCreate", defaulted)
        .with("dependentPicklist", false)
        .with("deprecatedAndHidden", false)
        .with("digits", i64::from(digits))
        .with("displayLocationInDecimal", false)
        .with("encrypted", false)
        .with("externalId", false)
        .with(
            "extraTypeInfo",
            match (t, f.name) {
                (FieldType::TextArea, _) => Json::from("plaintextarea"),
                (_, "Name") if f.computed.is_some() => Json::from("personname"),
                _ => Json::Null,
            },
        )
        .with("filterable", !long_text && t != FieldType::Base64)
        .with("filteredLookupInfo", Json::Null)
        .with("formulaTreatNullNumberAsZero", false)
        .with(
            "groupable",
            !long_text
                && !matches!(
                    t,
                    FieldType::Base64
                        | FieldType::Double
                        | FieldType::Currency
                        | FieldType::Percent
                        | FieldType::DateTime
                ),
        )
        .with("highScaleNumber", false)
        .with("htmlFormatted", false)
        .with(
            "idLookup",
            f.name == "Id" || f.name == "Username" || t == FieldType::Email,
        )
        .with("inlineHelpText", Json::Null)
        .with("label", f.label)
        .with("length", if text { i64::from(f.length) } else { 0 })
        .with("mask", Json::Null)
        .with("maskType", Json::Null)
        .with("name", f.name)
        .with(
            "nameField",
            f.name == "Name" || (obj.name == "ContentNote" && f.name == "Title"),
        )
        .with("namePointing", f.polymorphic)
        .with("nillable", f.nillable)
        .with(
            "permissionable",
            !system && !f.required && f.computed.is_none(),
        )
        .with("picklistValues", Json::Arr(picklist))
        .with("polymorphicForeignKey", f.polymorphic)
        .with("precision", i64::from(precision))
        .with("queryByDistance", false)
        .with("referenceTargetField", Json::Null)
        .with(
            "referenceTo",
            Json::Arr(f.refs.iter().map(|r| Json::from(*r)).collect()),
        )
        .with("relationshipName", f.rel_name)
        .with("relationshipOrder", Json::Null)
        .with("restrictedDelete", false)
        .with("restrictedPicklist", f.restricted.is_some())
        .with("scale", i64::from(scale))
        .with("searchPrefilterable", false)
        .with("soapType", soap_type(t))
        .with("sortable", !long_text && t != FieldType::Base64)
        .with("type", t.describe_name())
        .with("unique", f.name == "Username")
        .with("updateable", f.updateable)
        .with("writeRequiresMasterRead", false)
}

/// `GET sobjects/X/describe`. `base_url` is the instance URL (for the UI
/// templates).
pub fn object(obj: &ObjectDef, version: &str, base_url: &str) -> Json {
    let plural = obj.label_plural.to_ascii_lowercase();
    let mut scopes = vec![
        Json::obj()
            .with("label", format!("All {plural}"))
            .with("name", "everything"),
    ];
    if obj.has_owner() {
        scopes.push(
            Json::obj()
                .with("label", format!("My {plural}"))
                .with("name", "mine"),
        );
    }
    let master = "012000000000000AAA";
    Json::obj()
        .with("actionOverrides", Json::Arr(vec![]))
        .with("activateable", false)
        .with("associateEntityType", Json::Null)
        .with("associateParentEntity", Json::Null)
        .with("childRelationships", child_relationships(obj))
        .with("compactLayoutable", true)
        .with("createable", obj.api_writable)
        .with("custom", false)
        .with("customSetting", false)
        .with("deepCloneable", false)
        .with("defaultImplementation", Json::Null)
        .with("deletable", deletable(obj))
        .with("deprecatedAndHidden", false)
        .with("extendedBy", Json::Null)
        .with("extendsInterfaces", Json::Null)
        .with("feedEnabled", obj.has_owner())
        .with(
            "fields",
            Json::Arr(obj.fields.iter().map(|f| field(obj, f)).collect()),
        )
        .with("hasSubtypes", false)
        .with("implementedBy", Json::Null)
        .with("implementsInterfaces", Json::Null)
        .with("isInterface", false)
        .with("isSubtype", false)
        .with("keyPrefix", obj.key_prefix)
        .with("label", label(obj))
        .with("labelPlural", obj.label_plural)
        .with("layoutable", true)
        .with("listviewable", Json::Null)
        .with("lookupLayoutable", Json::Null)
        .with(
            "mergeable",
            matches!(obj.name, "Account" | "Contact" | "Lead"),
        )
        .with("mruEnabled", true)
        .with("name", obj.name)
        .with("namedLayoutInfos", Json::Arr(vec![]))
        .with("networkScopeFieldName", Json::Null)
        .with("queryable", true)
        .with(
            "recordTypeInfos",
            Json::Arr(vec![
                Json::obj()
                    .with("active", true)
                    .with("available", true)
                    .with("defaultRecordTypeMapping", true)
                    .with("developerName", "Master")
                    .with("master", true)
                    .with("name", "Master")
                    .with("recordTypeId", master)
                    .with(
                        "urls",
                        Json::obj().with(
                            "layout",
                            format!(
                                "/services/data/v{version}/sobjects/{}/describe/layouts/{master}",
                                obj.name
                            ),
                        ),
                    ),
            ]),
        )
        .with("replicateable", obj.replicable)
        .with("retrieveable", true)
        .with("searchLayoutable", obj.searchable)
        .with("searchable", obj.searchable)
        .with("sobjectDescribeOption", "FULL")
        .with("supportedScopes", Json::Arr(scopes))
        .with("triggerable", true)
        .with("undeletable", deletable(obj))
        .with("updateable", obj.api_writable)
        .with("urls", urls(obj, version, Some(base_url)))
}
