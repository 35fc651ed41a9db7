//! The emulated objects: one schema table per object (field name, type, length,
//! createable, updateable, nillable/required, reference targets, restricted picklists).

use std::collections::HashMap;
use std::sync::OnceLock;

/// Salesforce field types used by the emulated objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// The record id.
    Id,
    /// A lookup to another record.
    Reference,
    /// Short text.
    String,
    /// Long text.
    TextArea,
    /// Phone number as typed.
    Phone,
    /// E-mail address.
    Email,
    /// URL.
    Url,
    /// Picklist.
    Picklist,
    /// Checkbox.
    Boolean,
    /// Integer.
    Int,
    /// Double.
    Double,
    /// Currency.
    Currency,
    /// Percent.
    Percent,
    /// Date (no time).
    Date,
    /// Date and time.
    DateTime,
    /// Base64 content (stored as its text).
    Base64,
}

impl FieldType {
    /// How values of this type are stored.
    pub fn storage(self) -> Storage {
        match self {
            FieldType::Id | FieldType::Reference => Storage::Ref,
            FieldType::String
            | FieldType::TextArea
            | FieldType::Phone
            | FieldType::Email
            | FieldType::Url
            | FieldType::Picklist
            | FieldType::Base64 => Storage::Text,
            FieldType::Boolean => Storage::Bool,
            FieldType::Int => Storage::Int,
            FieldType::Double | FieldType::Currency | FieldType::Percent => Storage::Float,
            FieldType::Date => Storage::Date,
            FieldType::DateTime => Storage::DateTime,
        }
    }

    /// The name used in SOQL error messages ("must be of type …").
    pub fn soql_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "dateTime",
            FieldType::Picklist => "picklist",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::TextArea => "textarea",
            FieldType::Base64 => "base64",
            FieldType::String => "string",
        }
    }

    /// The name used by describe.
    pub fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Reference => "reference",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
            FieldType::Picklist => "picklist",
            FieldType::Phone => "phone",
            FieldType::Email => "email",
            FieldType::Url => "url",
            FieldType::TextArea => "textarea",
            FieldType::Base64 => "base64",
            FieldType::String => "string",
        }
    }

    /// True for types whose values are text.
    pub fn is_text(self) -> bool {
        self.storage() == Storage::Text
    }
}

/// Physical storage of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Text.
    Text,
    /// Boolean.
    Bool,
    /// 64-bit integer.
    Int,
    /// 64-bit float.
    Float,
    /// Days since the epoch.
    Date,
    /// Milliseconds since the epoch.
    DateTime,
    /// A record id.
    Ref,
}

/// Fields whose value is derived from others at read time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Computed {
    /// FirstName + " " + LastName.
    FullName,
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name, canonical casing.
    pub name: &'static str,
    /// Label used in validation messages.
    pub label: &'static str,
    /// Type.
    pub ftype: FieldType,
    /// Maximum length (text types).
    pub length: u32,
    /// Can be set on create.
    pub createable: bool,
    /// Can be set on update.
    pub updateable: bool,
    /// Can be null.
    pub nillable: bool,
    /// Must be given on create (and cannot be nulled) when there is no default.
    pub required: bool,
    /// Target objects of a reference.
    pub refs: &'static [&'static str],
    /// Relationship name of a reference (`Account` for `AccountId`).
    pub rel_name: Option<&'static str>,
    /// Polymorphic lookup (nested records have type `Name`).
    pub polymorphic: bool,
    /// Values of a restricted picklist.
    pub restricted: Option<&'static [&'static str]>,
    /// Derived at read time.
    pub computed: Option<Computed>,
    /// Column index in the table (None for `Id` and computed fields).
    pub column: Option<usize>,
}

impl FieldDef {
    fn new(name: &'static str, ftype: FieldType) -> FieldDef {
        let length = match ftype {
            FieldType::Phone => 40,
            FieldType::Email => 80,
            FieldType::TextArea => 32_000,
            FieldType::Base64 => 131_072,
            FieldType::Id | FieldType::Reference => 18,
            FieldType::String | FieldType::Url | FieldType::Picklist => 255,
            _ => 0,
        };
        FieldDef {
            name,
            label: name,
            ftype,
            length,
            createable: true,
            updateable: true,
            nillable: ftype != FieldType::Boolean,
            required: false,
            refs: &[],
            rel_name: None,
            polymorphic: false,
            restricted: None,
            computed: None,
            column: None,
        }
    }
    fn len(mut self, n: u32) -> Self {
        self.length = n;
        self
    }
    fn label(mut self, l: &'static str) -> Self {
        self.label = l;
        self
    }
    fn req(mut self) -> Self {
        self.required = true;
        self.nillable = false;
        self
    }
    fn ro(mut self) -> Self {
        self.createable = false;
        self.updateable = false;
        self
    }
    fn create_only(mut self) -> Self {
        self.updateable = false;
        self
    }
    fn refs(mut self, targets: &'static [&'static str], rel: &'static str) -> Self {
        self.refs = targets;
        self.rel_name = Some(rel);
        self
    }
    fn poly(mut self) -> Self {
        self.polymorphic = true;
        self
    }
    fn pick(mut self, values: &'static [&'static str]) -> Self {
        self.restricted = Some(values);
        self
    }
    fn computed(mut self, c: Computed) -> Self {
        self.computed = Some(c);
        self.createable = false;
        self.updateable = false;
        self
    }
    /// True when the field is stored in a column.
    pub fn stored(&self) -> bool {
        self.column.is_some()
    }
}

/// One object.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API name.
    pub name: &'static str,
    /// Index in [`Schema::objects`].
    pub index: usize,
    /// Id key prefix.
    pub key_prefix: &'static str,
    /// Fields in describe order.
    pub fields: Vec<FieldDef>,
    /// Lower-case field name → index in `fields`.
    pub by_name: HashMap<String, usize>,
    /// Lower-case relationship name → index in `fields` of the lookup.
    pub by_rel: HashMap<String, usize>,
    /// Number of stored columns.
    pub columns: usize,
    /// Has IsDeleted (and so a recycle bin).
    pub has_is_deleted: bool,
    /// Appears in SOSL.
    pub searchable: bool,
    /// Supports `updated` / `deleted`.
    pub replicable: bool,
    /// Records can be created/updated/deleted through the REST API.
    pub api_writable: bool,
    /// Deleting a record of this object also deletes (object, lookup field) children.
    pub cascade: &'static [(&'static str, &'static str)],
    /// Named child relationships (usable in parent-to-child subqueries).
    pub children: Vec<ChildRel>,
    /// Plural label (describe).
    pub label_plural: &'static str,
}

/// A child relationship: `Contacts` on Account is Contact.AccountId.
#[derive(Debug, Clone)]
pub struct ChildRel {
    /// Relationship name (`Contacts`).
    pub name: &'static str,
    /// Child object index.
    pub child: usize,
    /// Index of the lookup field in the child's `fields`.
    pub field: usize,
}

impl ObjectDef {
    /// True when records have an owner (OwnerId).
    pub fn has_owner(&self) -> bool {
        self.by_name.contains_key("ownerid")
    }

    /// Child relationship by name, case-insensitively.
    pub fn child_relationship(&self, name: &str) -> Option<&ChildRel> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Field by name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|i| &self.fields[*i])
    }
    /// Lookup field by relationship name, case-insensitively.
    pub fn relationship(&self, rel: &str) -> Option<&FieldDef> {
        self.by_rel
            .get(&rel.to_ascii_lowercase())
            .map(|i| &self.fields[*i])
    }
    /// Column of a stored field (panics never: returns None for non-stored).
    pub fn col(&self, name: &str) -> Option<usize> {
        self.field(name).and_then(|f| f.column)
    }
}

/// All objects.
#[derive(Debug)]
pub struct Schema {
    /// Objects in index order.
    pub objects: Vec<ObjectDef>,
    by_name: HashMap<String, usize>,
    by_prefix: HashMap<&'static str, usize>,
}

impl Schema {
    /// The schema (built once).
    pub fn get() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(build)
    }
    /// Object by name, case-insensitively.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|i| &self.objects[*i])
    }
    /// Object by key prefix.
    pub fn by_prefix(&self, prefix: &str) -> Option<&ObjectDef> {
        self.by_prefix.get(prefix).map(|i| &self.objects[*i])
    }
    /// Object by index.
    pub fn at(&self, index: usize) -> &ObjectDef {
        &self.objects[index]
    }
}

use FieldType as T;

const TASK_SUBTYPES: &[&str] = &["Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"];
const TASK_STATUSES: &[&str] = &[
    "Not Started",
    "In Progress",
    "Completed",
    "Waiting on someone else",
    "Deferred",
];
/// Task statuses that close the task.
pub const CLOSED_TASK_STATUSES: &[&str] = &["Completed"];
const PRIORITIES: &[&str] = &["High", "Normal", "Low"];
const CALL_TYPES: &[&str] = &["Inbound", "Outbound", "Internal"];
const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];
const OCR_ROLES: &[&str] = &[
    "Business User",
    "Decision Maker",
    "Economic Buyer",
    "Economic Decision Maker",
    "Evaluator",
    "Executive Sponsor",
    "Influencer",
    "Technical Buyer",
    "Other",
];
const EMAIL_STATUSES: &[&str] = &["0", "1", "2", "3", "4", "5"];
const RELATION_TYPES: &[&str] = &["ToAddress", "CcAddress", "BccAddress", "FromAddress"];
const USER_TYPES: &[&str] = &[
    "Standard",
    "PowerPartner",
    "PowerCustomerSuccess",
    "CustomerSuccess",
    "CsnOnly",
    "CspLitePortal",
    "Guest",
    "AutomatedProcess",
];
const LEAD_STATUSES: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];

fn audit(with_owner: bool, with_is_deleted: bool) -> Vec<FieldDef> {
    let mut v = Vec::new();
    if with_owner {
        v.push(
            FieldDef::new("OwnerId", T::Reference)
                .refs(&["User"], "Owner")
                .label("Owner ID"),
        );
    }
    if with_is_deleted {
        v.push(FieldDef::new("IsDeleted", T::Boolean).ro().label("Deleted"));
    }
    v.push(FieldDef::new("CreatedDate", T::DateTime).ro());
    v.push(
        FieldDef::new("CreatedById", T::Reference)
            .refs(&["User"], "CreatedBy")
            .ro(),
    );
    v.push(FieldDef::new("LastModifiedDate", T::DateTime).ro());
    v.push(
        FieldDef::new("LastModifiedById", T::Reference)
            .refs(&["User"], "LastModifiedBy")
            .ro(),
    );
    v.push(FieldDef::new("SystemModstamp", T::DateTime).ro());
    v
}

fn names() -> Vec<FieldDef> {
    vec![
        FieldDef::new("FirstName", T::String)
            .len(40)
            .label("First Name"),
        FieldDef::new("LastName", T::String)
            .len(80)
            .req()
            .label("Last Name"),
        FieldDef::new("Name", T::String)
            .len(121)
            .computed(Computed::FullName)
            .label("Full Name"),
    ]
}

struct Spec {
    name: &'static str,
    plural: &'static str,
    prefix: &'static str,
    fields: Vec<FieldDef>,
    searchable: bool,
    replicable: bool,
    api_writable: bool,
    cascade: &'static [(&'static str, &'static str)],
}

fn specs() -> Vec<Spec> {
    let mut out = Vec::new();

    // User
    let mut f = vec![FieldDef::new("Username", T::String).len(80).req()];
    f.extend(names());
    f.extend([
        FieldDef::new("Email", T::Email).len(128).req(),
        FieldDef::new("Alias", T::String).len(8),
        FieldDef::new("IsActive", T::Boolean).label("Active"),
        FieldDef::new("UserType", T::Picklist)
            .len(40)
            .pick(USER_TYPES)
            .create_only(),
        FieldDef::new("Title", T::String).len(80),
        FieldDef::new("Department", T::String).len(80),
        FieldDef::new("Phone", T::Phone),
        FieldDef::new("MobilePhone", T::Phone),
        FieldDef::new("TimeZoneSidKey", T::Picklist).len(40),
    ]);
    f.extend(audit(false, false));
    out.push(Spec {
        name: "User",
        plural: "Users",
        prefix: "005",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: false,
        cascade: &[],
    });

    // Account
    let mut f = vec![
        FieldDef::new("Name", T::String)
            .len(255)
            .req()
            .label("Account Name"),
        FieldDef::new("Type", T::Picklist),
        FieldDef::new("Industry", T::Picklist),
        FieldDef::new("Website", T::Url),
        FieldDef::new("Phone", T::Phone),
        FieldDef::new("BillingStreet", T::TextArea).len(255),
        FieldDef::new("BillingCity", T::String).len(40),
        FieldDef::new("BillingPostalCode", T::String).len(20),
        FieldDef::new("BillingCountry", T::String).len(80),
        FieldDef::new("NumberOfEmployees", T::Int),
        FieldDef::new("AnnualRevenue", T::Currency),
        FieldDef::new("Description", T::TextArea),
        FieldDef::new("ParentId", T::Reference).refs(&["Account"], "Parent"),
        // Set on the records a merge deleted: the record that survived.
        FieldDef::new("MasterRecordId", T::Reference)
            .refs(&["Account"], "MasterRecord")
            .ro(),
    ];
    f.extend(audit(true, true));
    out.push(Spec {
        name: "Account",
        plural: "Accounts",
        prefix: "001",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[
            ("Contact", "AccountId"),
            ("Opportunity", "AccountId"),
            ("Task", "WhatId"),
        ],
    });

    // Contact
    let mut f = vec![FieldDef::new("Salutation", T::Picklist).len(40)];
    f.extend(names());
    f.extend([
        FieldDef::new("AccountId", T::Reference)
            .refs(&["Account"], "Account")
            .label("Account ID"),
        FieldDef::new("Title", T::String).len(128),
        FieldDef::new("Department", T::String).len(80),
        FieldDef::new("Email", T::Email),
        FieldDef::new("Phone", T::Phone).label("Business Phone"),
        FieldDef::new("MobilePhone", T::Phone).label("Mobile Phone"),
        FieldDef::new("HomePhone", T::Phone).label("Home Phone"),
        FieldDef::new("OtherPhone", T::Phone).label("Other Phone"),
        FieldDef::new("AssistantPhone", T::Phone).label("Asst. Phone"),
        FieldDef::new("MailingCity", T::String).len(40),
        FieldDef::new("MailingCountry", T::String).len(80),
        FieldDef::new("LeadSource", T::Picklist).len(40),
        FieldDef::new("Description", T::TextArea),
        FieldDef::new("MasterRecordId", T::Reference)
            .refs(&["Contact"], "MasterRecord")
            .ro(),
    ]);
    f.extend(audit(true, true));
    out.push(Spec {
        name: "Contact",
        plural: "Contacts",
        prefix: "003",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[("OpportunityContactRole", "ContactId"), ("Task", "WhoId")],
    });

    // Lead
    let mut f = names();
    f.extend([
        FieldDef::new("Company", T::String).len(255).req(),
        FieldDef::new("Title", T::String).len(128),
        FieldDef::new("Email", T::Email),
        FieldDef::new("Phone", T::Phone),
        FieldDef::new("MobilePhone", T::Phone).label("Mobile Phone"),
        FieldDef::new("Website", T::Url),
        FieldDef::new("Status", T::Picklist)
            .len(40)
            .req()
            .pick(LEAD_STATUSES)
            .label("Lead Status"),
        FieldDef::new("LeadSource", T::Picklist).len(40),
        FieldDef::new("Industry", T::Picklist),
        FieldDef::new("City", T::String).len(40),
        FieldDef::new("Country", T::String).len(80),
        FieldDef::new("IsConverted", T::Boolean)
            .ro()
            .label("Converted"),
        FieldDef::new("ConvertedDate", T::Date).ro(),
        FieldDef::new("ConvertedAccountId", T::Reference)
            .refs(&["Account"], "ConvertedAccount")
            .ro(),
        FieldDef::new("ConvertedContactId", T::Reference)
            .refs(&["Contact"], "ConvertedContact")
            .ro(),
        FieldDef::new("ConvertedOpportunityId", T::Reference)
            .refs(&["Opportunity"], "ConvertedOpportunity")
            .ro(),
        FieldDef::new("Description", T::TextArea),
        FieldDef::new("MasterRecordId", T::Reference)
            .refs(&["Lead"], "MasterRecord")
            .ro(),
    ]);
    f.extend(audit(true, true));
    out.push(Spec {
        name: "Lead",
        plural: "Leads",
        prefix: "00Q",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[("Task", "WhoId")],
    });

    // Opportunity
    let mut f = vec![
        FieldDef::new("Name", T::String)
            .len(120)
            .req()
            .label("Opportunity Name"),
        FieldDef::new("AccountId", T::Reference)
            .refs(&["Account"], "Account")
            .label("Account ID"),
        FieldDef::new("StageName", T::Picklist)
            .len(255)
            .req()
            .pick(STAGES)
            .label("Stage"),
        FieldDef::new("Amount", T::Currency),
        FieldDef::new("Probability", T::Percent),
        FieldDef::new("CloseDate", T::Date)
            .req()
            .label("Close Date"),
        FieldDef::new("Type", T::Picklist),
        FieldDef::new("LeadSource", T::Picklist).len(40),
        FieldDef::new("NextStep", T::String),
        FieldDef::new("Description", T::TextArea),
        FieldDef::new("IsClosed", T::Boolean).ro().label("Closed"),
        FieldDef::new("IsWon", T::Boolean).ro().label("Won"),
    ];
    f.extend(audit(true, true));
    out.push(Spec {
        name: "Opportunity",
        plural: "Opportunities",
        prefix: "006",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[
            ("OpportunityContactRole", "OpportunityId"),
            ("Task", "WhatId"),
        ],
    });

    // OpportunityContactRole
    let mut f = vec![
        FieldDef::new("OpportunityId", T::Reference)
            .refs(&["Opportunity"], "Opportunity")
            .req()
            .create_only()
            .label("Opportunity ID"),
        FieldDef::new("ContactId", T::Reference)
            .refs(&["Contact"], "Contact")
            .req()
            .label("Contact ID"),
        FieldDef::new("Role", T::Picklist).len(40).pick(OCR_ROLES),
        FieldDef::new("IsPrimary", T::Boolean).label("Primary"),
    ];
    f.extend(audit(false, true));
    out.push(Spec {
        name: "OpportunityContactRole",
        plural: "Opportunity Contact Role",
        prefix: "00K",
        fields: f,
        searchable: false,
        replicable: true,
        api_writable: true,
        cascade: &[],
    });

    // Task
    let mut f = vec![
        FieldDef::new("Subject", T::String).len(255),
        FieldDef::new("TaskSubtype", T::Picklist)
            .len(40)
            .pick(TASK_SUBTYPES)
            .create_only()
            .label("Task Subtype"),
        FieldDef::new("Type", T::Picklist).len(40),
        FieldDef::new("CallType", T::Picklist)
            .len(40)
            .pick(CALL_TYPES)
            .label("Call Type"),
        FieldDef::new("CallDurationInSeconds", T::Int).label("Call Duration"),
        FieldDef::new("CallObject", T::String).label("Call Object Identifier"),
        FieldDef::new("CallDisposition", T::String).label("Call Result"),
        FieldDef::new("ActivityDate", T::Date).label("Due Date Only"),
        FieldDef::new("Status", T::Picklist)
            .len(40)
            .req()
            .pick(TASK_STATUSES),
        FieldDef::new("Priority", T::Picklist)
            .len(40)
            .req()
            .pick(PRIORITIES),
        FieldDef::new("WhoId", T::Reference)
            .refs(&["Contact", "Lead"], "Who")
            .poly()
            .label("Name ID"),
        FieldDef::new("WhatId", T::Reference)
            .refs(&["Account", "Opportunity"], "What")
            .poly()
            .label("Related To ID"),
        FieldDef::new("Description", T::TextArea)
            .len(32_000)
            .label("Description"),
        FieldDef::new("IsClosed", T::Boolean).ro().label("Closed"),
        FieldDef::new("AccountId", T::Reference)
            .refs(&["Account"], "Account")
            .ro()
            .label("Account ID"),
    ];
    let mut a = audit(true, true);
    a[0].polymorphic = true;
    f.extend(a);
    out.push(Spec {
        name: "Task",
        plural: "Tasks",
        prefix: "00T",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[],
    });

    // Event (the calendar's meetings; rules in crate::event)
    let mut f = vec![
        FieldDef::new("Subject", T::String).len(255),
        FieldDef::new("StartDateTime", T::DateTime).label("Start Date Time"),
        FieldDef::new("EndDateTime", T::DateTime).label("End Date Time"),
        FieldDef::new("DurationInMinutes", T::Int).label("Duration"),
        FieldDef::new("IsAllDayEvent", T::Boolean).label("All-Day Event"),
        FieldDef::new("ActivityDateTime", T::DateTime)
            .ro()
            .label("Due Date Time"),
        FieldDef::new("ActivityDate", T::Date)
            .ro()
            .label("Due Date Only"),
        FieldDef::new("Location", T::String).len(255),
        FieldDef::new("ShowAs", T::Picklist)
            .len(40)
            .pick(&["Busy", "OutOfOffice", "Free"])
            .label("Show Time As"),
        FieldDef::new("Type", T::Picklist).len(40),
        FieldDef::new("WhoId", T::Reference)
            .refs(&["Contact", "Lead"], "Who")
            .poly()
            .label("Name ID"),
        FieldDef::new("WhatId", T::Reference)
            .refs(&["Account", "Opportunity"], "What")
            .poly()
            .label("Related To ID"),
        FieldDef::new("Description", T::TextArea)
            .len(32_000)
            .label("Description"),
        FieldDef::new("AccountId", T::Reference)
            .refs(&["Account"], "Account")
            .ro()
            .label("Account ID"),
    ];
    let mut a = audit(true, true);
    a[0].polymorphic = true;
    f.extend(a);
    out.push(Spec {
        name: "Event",
        plural: "Events",
        prefix: "00U",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[],
    });

    // EmailMessage
    let mut f = vec![
        FieldDef::new("Subject", T::String).len(3000),
        FieldDef::new("FromAddress", T::Email).len(1000),
        FieldDef::new("FromName", T::String).len(1000),
        FieldDef::new("ToAddress", T::String).len(4000),
        FieldDef::new("CcAddress", T::String).len(4000),
        FieldDef::new("BccAddress", T::String).len(4000),
        FieldDef::new("MessageDate", T::DateTime),
        FieldDef::new("Incoming", T::Boolean),
        FieldDef::new("Status", T::Picklist)
            .len(40)
            .req()
            .pick(EMAIL_STATUSES),
        FieldDef::new("ActivityId", T::Reference)
            .refs(&["Task"], "Activity")
            .label("Activity ID"),
        FieldDef::new("RelatedToId", T::Reference)
            .refs(&["Account", "Opportunity"], "RelatedTo")
            .poly()
            .label("Related To ID"),
        FieldDef::new("MessageIdentifier", T::String),
        FieldDef::new("ThreadIdentifier", T::String),
        FieldDef::new("TextBody", T::TextArea).len(131_072),
        FieldDef::new("HtmlBody", T::TextArea).len(131_072),
    ];
    f.extend(audit(false, true));
    out.push(Spec {
        name: "EmailMessage",
        plural: "Email Messages",
        prefix: "02s",
        fields: f,
        searchable: true,
        replicable: true,
        api_writable: true,
        cascade: &[("EmailMessageRelation", "EmailMessageId")],
    });

    // EmailMessageRelation
    let mut f = vec![
        FieldDef::new("EmailMessageId", T::Reference)
            .refs(&["EmailMessage"], "EmailMessage")
            .req()
            .create_only()
            .label("Email Message ID"),
        FieldDef::new("RelationId", T::Reference)
            .refs(&["Contact", "Lead", "User"], "Relation")
            .poly()
            .label("Relation ID"),
        FieldDef::new("RelationType", T::Picklist)
            .len(40)
            .req()
            .pick(RELATION_TYPES),
        FieldDef::new("RelationAddress", T::String).len(1000),
        FieldDef::new("RelationObjectType", T::String).len(40).ro(),
    ];
    f.extend(audit(false, true));
    out.push(Spec {
        name: "EmailMessageRelation",
        plural: "Email Message Relations",
        prefix: "0EM",
        fields: f,
        searchable: false,
        replicable: true,
        api_writable: true,
        cascade: &[],
    });

    // ContentNote
    let mut f = vec![
        FieldDef::new("Title", T::String).len(255).req(),
        FieldDef::new("Content", T::Base64),
        FieldDef::new("TextPreview", T::String).len(255).ro(),
        FieldDef::new("FileType", T::String).len(20).ro(),
    ];
    f.extend(audit(true, true));
    out.push(Spec {
        name: "ContentNote",
        plural: "Notes",
        prefix: "069",
        fields: f,
        searchable: false,
        replicable: true,
        api_writable: true,
        cascade: &[("ContentDocumentLink", "ContentDocumentId")],
    });

    // ContentDocumentLink
    let mut f = vec![
        FieldDef::new("ContentDocumentId", T::Reference)
            .refs(&["ContentNote"], "ContentDocument")
            .req()
            .create_only()
            .label("ContentDocument ID"),
        FieldDef::new("LinkedEntityId", T::Reference)
            .refs(
                &["Account", "Contact", "Lead", "Opportunity", "User"],
                "LinkedEntity",
            )
            .poly()
            .req()
            .create_only()
            .label("Linked Entity ID"),
        FieldDef::new("ShareType", T::Picklist)
            .len(40)
            .req()
            .pick(&["V", "C", "I"]),
        FieldDef::new("Visibility", T::Picklist).len(40).pick(&[
            "AllUsers",
            "InternalUsers",
            "SharedUsers",
        ]),
    ];
    f.extend(audit(false, true));
    out.push(Spec {
        name: "ContentDocumentLink",
        plural: "Content Document Links",
        prefix: "06A",
        fields: f,
        searchable: false,
        replicable: false,
        api_writable: true,
        cascade: &[],
    });

    out
}

/// Named child relationships: (parent, relationship, child, lookup field), as
/// in Salesforce's standard objects.
const CHILD_RELATIONSHIPS: &[(&str, &str, &str, &str)] = &[
    ("Account", "ChildAccounts", "Account", "ParentId"),
    ("Account", "Contacts", "Contact", "AccountId"),
    ("Account", "Opportunities", "Opportunity", "AccountId"),
    ("Account", "Tasks", "Task", "WhatId"),
    ("Account", "Events", "Event", "WhatId"),
    (
        "Account",
        "ContentDocumentLinks",
        "ContentDocumentLink",
        "LinkedEntityId",
    ),
    (
        "Contact",
        "OpportunityContactRoles",
        "OpportunityContactRole",
        "ContactId",
    ),
    ("Contact", "Tasks", "Task", "WhoId"),
    ("Contact", "Events", "Event", "WhoId"),
    (
        "Contact",
        "ContentDocumentLinks",
        "ContentDocumentLink",
        "LinkedEntityId",
    ),
    ("Lead", "Tasks", "Task", "WhoId"),
    ("Lead", "Events", "Event", "WhoId"),
    (
        "Lead",
        "ContentDocumentLinks",
        "ContentDocumentLink",
        "LinkedEntityId",
    ),
    (
        "Opportunity",
        "OpportunityContactRoles",
        "OpportunityContactRole",
        "OpportunityId",
    ),
    ("Opportunity", "Tasks", "Task", "WhatId"),
    ("Opportunity", "Events", "Event", "WhatId"),
    (
        "Opportunity",
        "ContentDocumentLinks",
        "ContentDocumentLink",
        "LinkedEntityId",
    ),
    (
        "EmailMessage",
        "EmailMessageRelations",
        "EmailMessageRelation",
        "EmailMessageId",
    ),
];

fn build() -> Schema {
    let mut objects = Vec::new();
    for (index, spec) in specs().into_iter().enumerate() {
        let mut fields = vec![FieldDef::new("Id", T::Id).ro().label("Record ID")];
        fields[0].nillable = false;
        fields.extend(spec.fields);
        let mut columns = 0;
        let mut by_name = HashMap::new();
        let mut by_rel = HashMap::new();
        let mut has_is_deleted = false;
        for (i, f) in fields.iter_mut().enumerate() {
            if f.ftype != T::Id && f.computed.is_none() {
                f.column = Some(columns);
                columns += 1;
            }
            if f.name == "IsDeleted" {
                has_is_deleted = true;
            }
            by_name.insert(f.name.to_ascii_lowercase(), i);
            if let Some(rel) = f.rel_name {
                by_rel.insert(rel.to_ascii_lowercase(), i);
            }
        }
        objects.push(ObjectDef {
            name: spec.name,
            label_plural: spec.plural,
            children: Vec::new(),
            index,
            key_prefix: spec.prefix,
            fields,
            by_name,
            by_rel,
            columns,
            has_is_deleted,
            searchable: spec.searchable,
            replicable: spec.replicable,
            api_writable: spec.api_writable,
            cascade: spec.cascade,
        });
    }
    let by_name: HashMap<String, usize> = objects
        .iter()
        .map(|o| (o.name.to_ascii_lowercase(), o.index))
        .collect();
    for (parent, rel, child, field) in CHILD_RELATIONSHIPS {
        let (Some(p), Some(c)) = (
            by_name.get(&parent.to_ascii_lowercase()),
            by_name.get(&child.to_ascii_lowercase()),
        ) else {
            continue;
        };
        let Some(f) = objects[*c]
            .by_name
            .get(&field.to_ascii_lowercase())
            .copied()
        else {
            continue;
        };
        objects[*p].children.push(ChildRel {
            name: rel,
            child: *c,
            field: f,
        });
    }
    let by_prefix = objects.iter().map(|o| (o.key_prefix, o.index)).collect();
    Schema {
        objects,
        by_name,
        by_prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_consistent() {
        let s = Schema::get();
        for o in &s.objects {
            // The change log keeps changed fields as a 64-bit set.
            assert!(o.fields.len() <= 64, "{} has more than 64 fields", o.name);
            for f in &o.fields {
                for target in f.refs {
                    assert!(
                        s.object(target).is_some(),
                        "{}.{} → {target}",
                        o.name,
                        f.name
                    );
                }
            }
            for (child, field) in o.cascade {
                let c = s.object(child).expect("cascade child");
                assert!(c.field(field).is_some());
            }
        }
        for o in &s.objects {
            for c in &o.children {
                let child = s.at(c.child);
                assert!(
                    child.fields[c.field].refs.contains(&o.name),
                    "{}.{} does not point to {}",
                    child.name,
                    child.fields[c.field].name,
                    o.name
                );
            }
        }
        assert_eq!(
            s.object("Account").unwrap().children.len(),
            6,
            "with Events"
        );
        let contact = s.object("contact").unwrap();
        assert_eq!(contact.name, "Contact");
        assert_eq!(contact.relationship("ACCOUNT").unwrap().name, "AccountId");
        assert!(contact.field("name").unwrap().computed.is_some());
        assert!(!s.object("User").unwrap().has_is_deleted);
    }
}
