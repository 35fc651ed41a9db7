//! Change Data Capture: the per-org event bus fed by the change log, the Avro
//! schemas and binary payloads of change events, and the field bitmaps of
//! their `ChangeEventHeader`.
//!
//! Every write goes through `Org::mutate`, which appends to the change log; at
//! the end of each transaction (a REST call, a collections or composite
//! request, a seed batch) the org turns the new log entries of the objects
//! with CDC enabled into events ([`build_transaction`]) and appends them to its
//! bus ([`Cdc`]). The Pub/Sub API server ([`crate::pubsub`]) reads the bus.

use crate::schema::{FieldType, ObjectDef, Schema};
use crate::store::{RecordId, ValueRef};
use crate::time::Millis;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

/// Objects that can be selected for Change Data Capture.
pub const CDC_OBJECTS: &[&str] = &[
    "Account",
    "Contact",
    "Lead",
    "Opportunity",
    "OpportunityContactRole",
];

/// The channel carrying the change events of every selected object.
pub const CHANGE_EVENTS_TOPIC: &str = "/data/ChangeEvents";

/// Default retention of the event bus: 72 hours.
pub const DEFAULT_RETENTION_MS: Millis = 72 * 3_600_000;

/// Namespace of the change event records.
pub const NAMESPACE: &str = "com.sforce.eventbus";

/// `changeOrigin` prefix of changes made through the REST API.
pub const REST_ORIGIN: &str = "com/salesforce/api/rest/";

/// `changeType` of a change event (the symbols of the Avro enum, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// Record created.
    Create,
    /// Record updated.
    Update,
    /// Record deleted.
    Delete,
    /// Record undeleted.
    Undelete,
    /// Gap event: re-read the created records.
    GapCreate,
    /// Gap event: re-read the updated records.
    GapUpdate,
    /// Gap event: re-read the deleted records.
    GapDelete,
    /// Gap event: re-read the undeleted records.
    GapUndelete,
    /// Overflow event: re-synchronise the object.
    GapOverflow,
}

/// The enum symbols, in schema order.
pub const CHANGE_TYPES: &[&str] = &[
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

impl EventType {
    /// Index of the symbol in the `ChangeType` enum.
    pub fn index(self) -> usize {
        self as usize
    }
    /// Symbol (`GAP_UPDATE`).
    pub fn symbol(self) -> &'static str {
        CHANGE_TYPES[self.index()]
    }
    /// Parses a symbol.
    pub fn parse(s: &str) -> Option<EventType> {
        use EventType::*;
        [
            Create,
            Update,
            Delete,
            Undelete,
            GapCreate,
            GapUpdate,
            GapDelete,
            GapUndelete,
            GapOverflow,
        ]
        .into_iter()
        .find(|t| t.symbol().eq_ignore_ascii_case(s))
    }
    /// True for `GAP_*` types other than overflow.
    pub fn is_gap_record(self) -> bool {
        matches!(
            self,
            EventType::GapCreate
                | EventType::GapUpdate
                | EventType::GapDelete
                | EventType::GapUndelete
        )
    }
}

impl From<crate::org::ChangeType> for EventType {
    fn from(c: crate::org::ChangeType) -> Self {
        match c {
            crate::org::ChangeType::Create => EventType::Create,
            crate::org::ChangeType::Update => EventType::Update,
            crate::org::ChangeType::Delete => EventType::Delete,
            crate::org::ChangeType::Undelete => EventType::Undelete,
        }
    }
}

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

/// A compound field (Name, address) of a change event: a nested record whose
/// members are fields of the object.
struct CompoundDef {
    name: &'static str,
    record: &'static str,
    /// (name inside the record, object field).
    members: &'static [(&'static str, &'static str)],
}

fn compound_defs(object: &str) -> &'static [CompoundDef] {
    match object {
        "Contact" => &[
            CompoundDef {
                name: "Name",
                record: "PersonName",
                members: &[
                    ("Salutation", "Salutation"),
                    ("FirstName", "FirstName"),
                    ("LastName", "LastName"),
                ],
            },
            CompoundDef {
                name: "MailingAddress",
                record: "Address",
                members: &[("City", "MailingCity"), ("Country", "MailingCountry")],
            },
        ],
        "Lead" => &[
            CompoundDef {
                name: "Name",
                record: "PersonName",
                members: &[("FirstName", "FirstName"), ("LastName", "LastName")],
            },
            CompoundDef {
                name: "Address",
                record: "Address",
                members: &[("City", "City"), ("Country", "Country")],
            },
        ],
        "Account" => &[CompoundDef {
            name: "BillingAddress",
            record: "Address",
            members: &[
                ("Street", "BillingStreet"),
                ("City", "BillingCity"),
                ("PostalCode", "BillingPostalCode"),
                ("Country", "BillingCountry"),
            ],
        }],
        _ => &[],
    }
}

/// A top-level field of a change event after the header.
#[derive(Debug, Clone)]
pub enum Slot {
    /// One field of the object (index in `ObjectDef::fields`).
    Field(usize),
    /// A compound field: a nested record.
    Compound {
        /// Field name (`Name`, `BillingAddress`).
        name: &'static str,
        /// Record type name (`PersonName`, `Address`).
        record: &'static str,
        /// (name inside the record, object field index).
        members: Vec<(&'static str, usize)>,
    },
}

/// The change event schema of one object.
#[derive(Debug, Clone)]
pub struct CdcSchema {
    /// Object index.
    pub obj: usize,
    /// Object name (`entityName`).
    pub entity: &'static str,
    /// `/data/OpportunityChangeEvent`.
    pub topic: String,
    /// Avro schema (JSON text).
    pub json: String,
    /// Schema id: base64url (no padding) of the first 16 bytes of SHA-256(json).
    pub id: String,
    /// Top-level fields after the header: `slots[i]` is at position `i + 1`.
    pub slots: Vec<Slot>,
    /// By object field index: (top-level position, position inside the compound).
    pub pos: Vec<Option<(usize, Option<usize>)>>,
}

impl CdcSchema {
    /// Name of each top-level field, by position (0 is `ChangeEventHeader`).
    pub fn top_names(&self) -> Vec<&'static str> {
        let mut v = vec!["ChangeEventHeader"];
        let def = Schema::get().at(self.obj);
        for s in &self.slots {
            v.push(match s {
                Slot::Field(fi) => def.fields[*fi].name,
                Slot::Compound { name, .. } => name,
            });
        }
        v
    }
}

fn avro_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Boolean => "boolean",
        FieldType::Int => "int",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "double",
        FieldType::Date | FieldType::DateTime => "long",
        FieldType::Id
        | FieldType::Reference
        | FieldType::String
        | FieldType::TextArea
        | FieldType::Phone
        | FieldType::Email
        | FieldType::Url
        | FieldType::Picklist
        | FieldType::Base64 => "string",
    }
}

/// `doc` of a field: its Salesforce data type (`Data:DateOnly` for dates,
/// `Data:DateTime` for datetimes, else the describe type).
fn field_doc(t: FieldType) -> String {
    match t {
        FieldType::Date => "Data:DateOnly".into(),
        FieldType::DateTime => "Data:DateTime".into(),
        other => format!("Data:{}", other.describe_name()),
    }
}

fn nullable(name: &str, ty: serde_json::Value, doc: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "type": ["null", ty], "doc": doc, "default": null})
}

fn header_schema() -> serde_json::Value {
    let arr = || serde_json::json!({"type": "array", "items": "string"});
    serde_json::json!({
        "name": "ChangeEventHeader",
        "type": {
            "type": "record",
            "name": "ChangeEventHeader",
            "fields": [
                {"name": "entityName", "type": "string"},
                {"name": "recordIds", "type": arr()},
                {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": CHANGE_TYPES}},
                {"name": "changeOrigin", "type": "string"},
                {"name": "transactionKey", "type": "string"},
                {"name": "sequenceNumber", "type": "int"},
                {"name": "commitTimestamp", "type": "long"},
                {"name": "commitNumber", "type": "long"},
                {"name": "commitUser", "type": "string"},
                {"name": "nulledFields", "type": arr()},
                {"name": "diffFields", "type": arr()},
                {"name": "changedFields", "type": arr()}
            ]
        },
        "doc": "Data:ComplexValueType"
    })
}

fn excluded(f: &crate::schema::FieldDef) -> bool {
    f.ftype == FieldType::Id
        || f.computed.is_some()
        || f.column.is_none()
        || matches!(f.name, "IsDeleted" | "SystemModstamp")
}

fn build_schema(def: &ObjectDef) -> CdcSchema {
    let compounds = compound_defs(def.name);
    let mut slots: Vec<Slot> = Vec::new();
    let mut pos = vec![None; def.fields.len()];
    let mut emitted = vec![false; compounds.len()];
    for (fi, f) in def.fields.iter().enumerate() {
        if excluded(f) {
            continue;
        }
        let owner = compounds
            .iter()
            .position(|c| c.members.iter().any(|(_, of)| *of == f.name));
        match owner {
            Some(ci) => {
                if emitted[ci] {
                    continue;
                }
                emitted[ci] = true;
                let c = &compounds[ci];
                let members: Vec<(&'static str, usize)> = c
                    .members
                    .iter()
                    .filter_map(|(n, of)| {
                        def.by_name.get(&of.to_ascii_lowercase()).map(|i| (*n, *i))
                    })
                    .collect();
                let top = slots.len() + 1;
                for (k, (_, mfi)) in members.iter().enumerate() {
                    pos[*mfi] = Some((top, Some(k)));
                }
                slots.push(Slot::Compound {
                    name: c.name,
                    record: c.record,
                    members,
                });
            }
            None => {
                pos[fi] = Some((slots.len() + 1, None));
                slots.push(Slot::Field(fi));
            }
        }
    }
    let mut fields = vec![header_schema()];
    for s in &slots {
        match s {
            Slot::Field(fi) => {
                let f = &def.fields[*fi];
                fields.push(nullable(
                    f.name,
                    serde_json::Value::from(avro_type(f.ftype)),
                    &field_doc(f.ftype),
                ));
            }
            Slot::Compound {
                name,
                record,
                members,
            } => {
                let inner: Vec<serde_json::Value> = members
                    .iter()
                    .map(|(n, mfi)| {
                        let f = &def.fields[*mfi];
                        nullable(
                            n,
                            serde_json::Value::from(avro_type(f.ftype)),
                            &field_doc(f.ftype),
                        )
                    })
                    .collect();
                fields.push(nullable(
                    name,
                    serde_json::json!({"type": "record", "name": record, "fields": inner}),
                    "Data:ComplexValueType",
                ));
            }
        }
    }
    let entity = def.name;
    let json = serde_json::json!({
        "type": "record",
        "name": format!("{entity}ChangeEvent"),
        "namespace": NAMESPACE,
        "fields": fields
    })
    .to_string();
    let digest = Sha256::digest(json.as_bytes());
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    CdcSchema {
        obj: def.index,
        entity,
        topic: format!("/data/{entity}ChangeEvent"),
        json,
        id,
        slots,
        pos,
    }
}

/// The schemas of every CDC object.
pub fn schemas() -> &'static [CdcSchema] {
    static S: OnceLock<Vec<CdcSchema>> = OnceLock::new();
    S.get_or_init(|| {
        let schema = Schema::get();
        CDC_OBJECTS
            .iter()
            .filter_map(|n| schema.object(n))
            .map(build_schema)
            .collect()
    })
}

/// Schema of an object (None when the object is not a CDC object).
pub fn schema_for_obj(obj: usize) -> Option<&'static CdcSchema> {
    schemas().iter().find(|s| s.obj == obj)
}

/// Schema of a per-object topic (`/data/OpportunityChangeEvent`).
pub fn schema_for_topic(topic: &str) -> Option<&'static CdcSchema> {
    schemas().iter().find(|s| s.topic == topic)
}

/// Schema by id.
pub fn schema_by_id(id: &str) -> Option<&'static CdcSchema> {
    schemas().iter().find(|s| s.id == id)
}

/// CDC object index by name (case-insensitive).
pub fn cdc_object(name: &str) -> Option<usize> {
    schemas()
        .iter()
        .find(|s| s.entity.eq_ignore_ascii_case(name))
        .map(|s| s.obj)
}

// ---------------------------------------------------------------------------
// Bitmaps
// ---------------------------------------------------------------------------

/// `0x…` bitmap of positions: bit i (of the big-endian number the hex spells)
/// is position i; upper-case hex, whole bytes, as few as hold the highest bit.
pub fn bitmap_hex(positions: &[usize]) -> String {
    let Some(max) = positions.iter().max() else {
        return "0x00".into();
    };
    let mut le = vec![0u8; max / 8 + 1];
    for p in positions {
        le[p / 8] |= 1 << (p % 8);
    }
    let mut s = String::from("0x");
    for b in le.iter().rev() {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Positions set in a `0x…` bitmap (inverse of [`bitmap_hex`]).
pub fn bitmap_positions(hex: &str) -> Option<Vec<usize>> {
    let digits = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X"))?;
    let mut out = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16)? as usize;
        for b in 0..4 {
            if v & (1 << b) != 0 {
                out.push(i * 4 + b);
            }
        }
    }
    out.sort_unstable();
    Some(out)
}

/// The bitmap strings of a set of (top position, position in compound)
/// pairs: the top-level bitmap first (when any top-level field is set), then
/// `"N-0x…"` for each compound field N with members set, by position.
pub fn bitmap_fields(set: &[(usize, Option<usize>)]) -> Vec<String> {
    let mut top: Vec<usize> = set
        .iter()
        .filter(|(_, n)| n.is_none())
        .map(|(p, _)| *p)
        .collect();
    top.sort_unstable();
    top.dedup();
    let mut out = Vec::new();
    if !top.is_empty() {
        out.push(bitmap_hex(&top));
    }
    let mut parents: Vec<usize> = set
        .iter()
        .filter(|(_, n)| n.is_some())
        .map(|(p, _)| *p)
        .collect();
    parents.sort_unstable();
    parents.dedup();
    for p in parents {
        let nested: Vec<usize> = set
            .iter()
            .filter(|(q, _)| *q == p)
            .filter_map(|(_, n)| *n)
            .collect();
        out.push(format!("{p}-{}", bitmap_hex(&nested)));
    }
    out
}

/// Decodes bitmap strings into field names (`Name.FirstName` for members of a
/// compound field), the way Salesforce's sample subscribers do. For the
/// emulator's own tests; unknown positions are skipped.
pub fn decode_bitmap_fields(schema: &CdcSchema, bitmaps: &[String]) -> Vec<String> {
    let names = schema.top_names();
    let mut out = Vec::new();
    for b in bitmaps {
        if b.starts_with("0x") {
            for p in bitmap_positions(b).unwrap_or_default() {
                if let Some(n) = names.get(p) {
                    out.push((*n).to_string());
                }
            }
        } else if let Some((parent, hex)) = b.split_once('-') {
            let Ok(p) = parent.parse::<usize>() else {
                continue;
            };
            let Some(Slot::Compound { name, members, .. }) =
                p.checked_sub(1).and_then(|i| schema.slots.get(i))
            else {
                continue;
            };
            for k in bitmap_positions(hex).unwrap_or_default() {
                if let Some((m, _)) = members.get(k) {
                    out.push(format!("{name}.{m}"));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Avro binary
// ---------------------------------------------------------------------------

#[derive(Default)]
struct AvroWriter(Vec<u8>);

impl AvroWriter {
    fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let b = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                self.0.push(b);
                break;
            }
            self.0.push(b | 0x80);
        }
    }
    fn int(&mut self, v: i32) {
        self.long(i64::from(v));
    }
    fn string(&mut self, s: &str) {
        self.long(s.len() as i64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn strings(&mut self, items: &[String]) {
        if !items.is_empty() {
            self.long(items.len() as i64);
            for s in items {
                self.string(s);
            }
        }
        self.long(0);
    }
}

fn write_value(
    w: &mut AvroWriter,
    t: FieldType,
    v: ValueRef<'_>,
    id18: &dyn Fn(RecordId) -> String,
) {
    if matches!(v, ValueRef::Null) {
        w.long(0);
        return;
    }
    w.long(1);
    match (avro_type(t), v) {
        ("boolean", ValueRef::Bool(b)) => w.0.push(u8::from(b)),
        ("int", ValueRef::Int(i)) => {
            w.int(i32::try_from(i).unwrap_or(if i < 0 { i32::MIN } else { i32::MAX }))
        }
        ("double", ValueRef::Float(f)) => w.0.extend_from_slice(&f.to_le_bytes()),
        ("double", ValueRef::Int(i)) => w.0.extend_from_slice(&(i as f64).to_le_bytes()),
        ("long", ValueRef::Date(d)) => w.long(i64::from(d)),
        ("long", ValueRef::DateTime(ms)) => w.long(ms),
        (_, ValueRef::Ref(r)) => w.string(&id18(r)),
        (_, ValueRef::Text(s)) => w.string(s),
        (_, other) => w.string(&format!("{other:?}")),
    }
}

/// Reads a record's stored values (the org's columns).
pub trait RecordSource {
    /// Value of object field `fi` of record `id`.
    fn value(&self, id: RecordId, fi: usize) -> ValueRef<'_>;
    /// 18-character id.
    fn id18(&self, id: RecordId) -> String;
}

/// Which fields a change event body carries.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// Every field with its value (null when null): CREATE, UNDELETE.
    All,
    /// The fields whose bit is set (changed or nulled); others null: UPDATE.
    Only(u64),
    /// Nothing: DELETE and gap events.
    None,
}

fn encode_body(src: &dyn RecordSource, schema: &CdcSchema, id: RecordId, body: Body) -> Vec<u8> {
    let def = Schema::get().at(schema.obj);
    let mut w = AvroWriter::default();
    let wanted = |fi: usize| match body {
        Body::All => true,
        Body::Only(bits) => fi < 64 && bits & (1u64 << fi) != 0,
        Body::None => false,
    };
    let id18 = |r: RecordId| src.id18(r);
    for s in &schema.slots {
        match s {
            Slot::Field(fi) => {
                let v = if wanted(*fi) {
                    src.value(id, *fi)
                } else {
                    ValueRef::Null
                };
                write_value(&mut w, def.fields[*fi].ftype, v, &id18);
            }
            Slot::Compound { members, .. } => {
                let vals: Vec<ValueRef<'_>> = members
                    .iter()
                    .map(|(_, mfi)| {
                        if wanted(*mfi) {
                            src.value(id, *mfi)
                        } else {
                            ValueRef::Null
                        }
                    })
                    .collect();
                let present = match body {
                    Body::All => vals.iter().any(|v| !matches!(v, ValueRef::Null)),
                    Body::Only(_) => members.iter().any(|(_, mfi)| wanted(*mfi)),
                    Body::None => false,
                };
                if !present {
                    w.long(0);
                    continue;
                }
                w.long(1);
                for ((_, mfi), v) in members.iter().zip(vals) {
                    write_value(&mut w, def.fields[*mfi].ftype, v, &id18);
                }
            }
        }
    }
    w.0
}

/// The `ChangeEventHeader` of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Object name.
    pub entity_name: &'static str,
    /// 18-character ids.
    pub record_ids: Vec<String>,
    /// Change type.
    pub change_type: EventType,
    /// `com/salesforce/api/rest/62.0;client=…` or empty.
    pub change_origin: String,
    /// Transaction key.
    pub transaction_key: String,
    /// Position in the transaction (from 1).
    pub sequence_number: i32,
    /// Commit time (ms).
    pub commit_timestamp: i64,
    /// Commit number.
    pub commit_number: i64,
    /// Committing user.
    pub commit_user: String,
    /// Bitmaps of the nulled fields.
    pub nulled_fields: Vec<String>,
    /// Bitmaps of the diff fields (always empty).
    pub diff_fields: Vec<String>,
    /// Bitmaps of the changed fields.
    pub changed_fields: Vec<String>,
}

fn encode_header(h: &Header) -> Vec<u8> {
    let mut w = AvroWriter::default();
    w.string(h.entity_name);
    w.strings(&h.record_ids);
    w.int(h.change_type.index() as i32);
    w.string(&h.change_origin);
    w.string(&h.transaction_key);
    w.int(h.sequence_number);
    w.long(h.commit_timestamp);
    w.long(h.commit_number);
    w.string(&h.commit_user);
    w.strings(&h.nulled_fields);
    w.strings(&h.diff_fields);
    w.strings(&h.changed_fields);
    w.0
}

// ---------------------------------------------------------------------------
// The bus
// ---------------------------------------------------------------------------

/// One event on an org's bus.
#[derive(Debug, Clone)]
pub struct BusEvent {
    /// Replay id (position on the org's bus, from 1).
    pub replay: u64,
    /// Object index.
    pub obj: usize,
    /// When it entered the bus (emulated ms): retention is measured from it.
    pub published: Millis,
    /// Event uuid (`ProducerEvent.id`).
    pub uuid: String,
    /// Schema id.
    pub schema_id: &'static str,
    /// Avro binary datum.
    pub payload: Arc<[u8]>,
    /// Header (kept for the Rust API and tests).
    pub header: Arc<Header>,
}

/// The header of an event on an org's bus (Rust and control API).
#[derive(Debug, Clone, Serialize)]
pub struct EventInfo {
    /// Replay id (the Pub/Sub API sends it as 8 big-endian bytes).
    pub replay_id: u64,
    /// Topic (`/data/OpportunityChangeEvent`).
    pub topic: String,
    /// `changeType`.
    pub change_type: EventType,
    /// `recordIds`.
    pub record_ids: Vec<String>,
    /// `changedFields` bitmaps.
    pub changed_fields: Vec<String>,
    /// `nulledFields` bitmaps.
    pub nulled_fields: Vec<String>,
    /// `changeOrigin`.
    pub change_origin: String,
    /// `commitTimestamp`.
    pub commit_timestamp: i64,
}

impl BusEvent {
    /// Header summary.
    pub fn info(&self) -> EventInfo {
        EventInfo {
            replay_id: self.replay,
            topic: schema_for_obj(self.obj)
                .map(|s| s.topic.clone())
                .unwrap_or_default(),
            change_type: self.header.change_type,
            record_ids: self.header.record_ids.clone(),
            changed_fields: self.header.changed_fields.clone(),
            nulled_fields: self.header.nulled_fields.clone(),
            change_origin: self.header.change_origin.clone(),
            commit_timestamp: self.header.commit_timestamp,
        }
    }
}

/// A change log entry waiting to become an event.
#[derive(Debug, Clone)]
pub struct PendingChange {
    /// Record.
    pub id: RecordId,
    /// Acting user.
    pub user: RecordId,
    /// Commit time.
    pub commit: Millis,
    /// Changed field bits.
    pub changed: u64,
    /// Nulled field bits.
    pub nulled: u64,
    /// `<version>[;client=<name>]` of the writer (API writes).
    pub client: Option<Arc<str>>,
    /// Made through the REST API (not the control API).
    pub api: bool,
    /// Kind.
    pub change_type: crate::org::ChangeType,
}

/// Why a replay id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// Not 8 bytes, newer than the bus, or older than the retention window.
    Invalid,
}

/// Per-org CDC state: selected objects and the event bus.
#[derive(Debug)]
pub struct Cdc {
    enabled: Vec<bool>,
    /// Events older than this are dropped and their replay ids refused.
    pub retention_ms: Millis,
    events: VecDeque<BusEvent>,
    last_replay: u64,
    pruned_through: u64,
    /// Change log position already turned into events.
    pub(crate) cursor: usize,
    commit_number: u64,
    transactions: u64,
    /// Nesting of open batches (a seed call).
    pub(crate) batch_depth: usize,
    /// Bus time of the open batch.
    pub(crate) batch_now: Option<Millis>,
}

impl Default for Cdc {
    fn default() -> Self {
        Cdc {
            enabled: vec![false; Schema::get().objects.len()],
            retention_ms: DEFAULT_RETENTION_MS,
            events: VecDeque::new(),
            last_replay: 0,
            pruned_through: 0,
            cursor: 0,
            commit_number: 6_000_000_000,
            transactions: 0,
            batch_depth: 0,
            batch_now: None,
        }
    }
}

/// 8-byte big-endian replay id.
pub fn replay_bytes(n: u64) -> Vec<u8> {
    n.to_be_bytes().to_vec()
}

/// Parses an 8-byte big-endian replay id.
pub fn parse_replay(b: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes)
}

impl Cdc {
    /// CDC enabled for an object index.
    pub fn is_enabled(&self, obj: usize) -> bool {
        self.enabled.get(obj).copied().unwrap_or(false)
    }
    /// Any object enabled.
    pub fn any_enabled(&self) -> bool {
        self.enabled.iter().any(|e| *e)
    }
    /// Selects or deselects an object.
    pub fn set_enabled(&mut self, obj: usize, on: bool) {
        if let Some(e) = self.enabled.get_mut(obj) {
            *e = on;
        }
    }
    /// Names of the selected objects.
    pub fn enabled_names(&self) -> Vec<&'static str> {
        let schema = Schema::get();
        self.enabled
            .iter()
            .enumerate()
            .filter(|(_, e)| **e)
            .map(|(i, _)| schema.at(i).name)
            .collect()
    }
    /// Replay id of the newest event (0 when the bus is empty): the tip.
    pub fn tip(&self) -> u64 {
        self.last_replay
    }
    /// Events kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }
    /// True when no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
    /// Drops the events older than the retention window.
    pub fn prune(&mut self, now: Millis) {
        while let Some(e) = self.events.front() {
            if now - e.published > self.retention_ms {
                self.pruned_through = e.replay;
                self.events.pop_front();
            } else {
                break;
            }
        }
    }
    /// Where a subscription starting after replay id `x` begins: `x` itself
    /// when valid. Valid: the tip (replaying after it loses nothing), the id of
    /// an event still kept, or 0 when nothing was ever dropped.
    pub fn validate_replay(&self, x: u64) -> Result<u64, ReplayError> {
        if x > self.last_replay {
            return Err(ReplayError::Invalid);
        }
        if x == self.last_replay || x > self.pruned_through || (x == 0 && self.pruned_through == 0)
        {
            Ok(x)
        } else {
            Err(ReplayError::Invalid)
        }
    }
    /// Position before the oldest kept event (EARLIEST).
    pub fn earliest(&self) -> u64 {
        self.pruned_through
    }
    /// Up to `max` events after `after` whose object passes `filter`.
    pub fn events_after(
        &self,
        after: u64,
        max: usize,
        filter: impl Fn(usize) -> bool,
    ) -> Vec<BusEvent> {
        let start = self.events.partition_point(|e| e.replay <= after);
        self.events
            .range(start..)
            .filter(|e| filter(e.obj))
            .take(max)
            .cloned()
            .collect()
    }
    /// Every kept event (oldest first).
    pub fn all_events(&self) -> impl Iterator<Item = &BusEvent> {
        self.events.iter()
    }
    fn next_transaction(&mut self) -> (String, i64) {
        self.transactions += 1;
        self.commit_number += 1;
        let key = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            rand::random::<u32>(),
            rand::random::<u16>(),
            rand::random::<u16>() & 0x0fff | 0x4000,
            rand::random::<u16>() & 0x3fff | 0x8000,
            self.transactions
        );
        (key, i64::try_from(self.commit_number).unwrap_or(i64::MAX))
    }
    fn publish(&mut self, obj: usize, header: Header, body: &[u8], published: Millis) {
        let Some(schema) = schema_for_obj(obj) else {
            return;
        };
        let mut payload = encode_header(&header);
        payload.extend_from_slice(body);
        self.last_replay += 1;
        self.events.push_back(BusEvent {
            replay: self.last_replay,
            obj,
            published,
            uuid: uuid4(),
            schema_id: &schema.id,
            payload: Arc::from(payload),
            header: Arc::new(header),
        });
    }

    /// Publishes header-only gap events: one per object for `GAP_CREATE`…
    /// `GAP_UNDELETE` (record ids grouped), or one `GAP_OVERFLOW` for `obj`.
    pub fn publish_gap(
        &mut self,
        change_type: EventType,
        obj: usize,
        ids: Vec<String>,
        user: String,
        now: Millis,
    ) {
        let Some(schema) = schema_for_obj(obj) else {
            return;
        };
        let (key, commit_number) = self.next_transaction();
        let header = Header {
            entity_name: schema.entity,
            record_ids: ids,
            change_type,
            change_origin: String::new(),
            transaction_key: key,
            sequence_number: 1,
            commit_timestamp: now,
            commit_number,
            commit_user: user,
            nulled_fields: Vec::new(),
            diff_fields: Vec::new(),
            changed_fields: Vec::new(),
        };
        let mut body = AvroWriter::default();
        for _ in &schema.slots {
            body.long(0);
        }
        self.publish(obj, header, &body.0, now);
    }
}

fn uuid4() -> String {
    let a: u128 = rand::random();
    let s = format!("{a:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &s[0..8],
        &s[8..12],
        &s[13..16],
        &s[17..20],
        &s[20..32]
    )
}

/// `changeOrigin` of a change: `com/salesforce/api/rest/62.0;client=x`, with
/// the API version of the request that made it (`origin` is what follows
/// `rest/`).
pub fn change_origin(api: bool, origin: Option<&str>) -> String {
    if !api {
        return String::new();
    }
    format!("{REST_ORIGIN}{}", origin.unwrap_or(crate::API_VERSION))
}

struct Group {
    obj: usize,
    key: (
        crate::org::ChangeType,
        u64,
        u64,
        Option<Arc<str>>,
        bool,
        RecordId,
        Millis,
    ),
    body: Vec<u8>,
    ids: Vec<String>,
    first: PendingChange,
}

/// Turns the changes of one transaction into events on `cdc` (only objects
/// with CDC enabled). Changes of one object with the same type, fields, values,
/// writer and time share one event (`recordIds` lists them all).
pub fn build_transaction(
    src: &dyn RecordSource,
    cdc: &mut Cdc,
    pending: &[PendingChange],
    published: Millis,
) {
    let mut groups: Vec<Group> = Vec::new();
    for p in pending {
        let obj = p.id.obj();
        if !cdc.is_enabled(obj) {
            continue;
        }
        let Some(schema) = schema_for_obj(obj) else {
            continue;
        };
        let body = match p.change_type {
            crate::org::ChangeType::Create | crate::org::ChangeType::Undelete => Body::All,
            crate::org::ChangeType::Update => Body::Only(p.changed | p.nulled),
            crate::org::ChangeType::Delete => Body::None,
        };
        let bytes = encode_body(src, schema, p.id, body);
        let key = (
            p.change_type,
            p.changed,
            p.nulled,
            p.client.clone(),
            p.api,
            p.user,
            p.commit,
        );
        let id18 = src.id18(p.id);
        if let Some(g) = groups.iter_mut().rev().find(|g| g.obj == obj)
            && g.key == key
            && g.body == bytes
        {
            g.ids.push(id18);
            continue;
        }
        groups.push(Group {
            obj,
            key,
            body: bytes,
            ids: vec![id18],
            first: p.clone(),
        });
    }
    if groups.is_empty() {
        return;
    }
    let (tx_key, commit_number) = cdc.next_transaction();
    for (seq, g) in groups.into_iter().enumerate() {
        let Some(schema) = schema_for_obj(g.obj) else {
            continue;
        };
        let p = &g.first;
        let positions = |bits: u64| -> Vec<(usize, Option<usize>)> {
            (0..64usize)
                .filter(|fi| bits & (1u64 << fi) != 0)
                .filter_map(|fi| schema.pos.get(fi).copied().flatten())
                .collect()
        };
        let (changed, nulled) = match p.change_type {
            crate::org::ChangeType::Update => (
                bitmap_fields(&positions(p.changed | p.nulled)),
                bitmap_fields(&positions(p.nulled)),
            ),
            _ => (Vec::new(), Vec::new()),
        };
        let header = Header {
            entity_name: schema.entity,
            record_ids: g.ids,
            change_type: p.change_type.into(),
            change_origin: change_origin(p.api, p.client.as_deref()),
            transaction_key: tx_key.clone(),
            sequence_number: i32::try_from(seq + 1).unwrap_or(i32::MAX),
            commit_timestamp: p.commit,
            commit_number,
            commit_user: src.id18(p.user),
            nulled_fields: nulled,
            diff_fields: Vec::new(),
            changed_fields: changed,
        };
        cdc.publish(g.obj, header, &g.body, published);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_round_trip() {
        assert_eq!(bitmap_hex(&[1]), "0x02");
        assert_eq!(bitmap_hex(&[5, 6, 7, 10, 24, 26, 29, 30]), "0x650004E0");
        assert_eq!(
            bitmap_positions("0x650004E0").unwrap(),
            vec![5, 6, 7, 10, 24, 26, 29, 30]
        );
        assert_eq!(bitmap_hex(&[8]), "0x0100");
        assert_eq!(
            bitmap_fields(&[(3, None), (4, Some(4)), (1, None), (4, Some(0))]),
            vec!["0x0A".to_string(), "4-0x11".to_string()]
        );
    }

    #[test]
    fn zigzag() {
        let mut w = AvroWriter::default();
        w.long(0);
        w.long(-1);
        w.long(1);
        w.long(64);
        assert_eq!(w.0, vec![0, 1, 2, 0x80, 0x01]);
    }

    #[test]
    fn schemas_are_stable_and_exclude_system_fields() {
        let s = schema_for_topic("/data/OpportunityChangeEvent").unwrap();
        assert_eq!(s.id.len(), 22);
        let names = s.top_names();
        assert_eq!(names[0], "ChangeEventHeader");
        assert!(names.contains(&"StageName") && names.contains(&"CloseDate"));
        assert!(!names.contains(&"Id") && !names.contains(&"IsDeleted"));
        assert!(!names.contains(&"SystemModstamp"));
        assert_eq!(
            names,
            vec![
                "ChangeEventHeader",
                "Name",
                "AccountId",
                "StageName",
                "Amount",
                "Probability",
                "CloseDate",
                "Type",
                "LeadSource",
                "NextStep",
                "Description",
                "IsClosed",
                "IsWon",
                "OwnerId",
                "CreatedDate",
                "CreatedById",
                "LastModifiedDate",
                "LastModifiedById",
            ]
        );
        let ocr = schema_for_topic("/data/OpportunityContactRoleChangeEvent").unwrap();
        assert_eq!(
            ocr.top_names(),
            vec![
                "ChangeEventHeader",
                "OpportunityId",
                "ContactId",
                "Role",
                "IsPrimary",
                "CreatedDate",
                "CreatedById",
                "LastModifiedDate",
                "LastModifiedById",
            ]
        );
        let c = schema_for_topic("/data/ContactChangeEvent").unwrap();
        let cn = c.top_names();
        assert!(cn.contains(&"Name") && !cn.contains(&"FirstName"));
        assert_eq!(
            build_schema(Schema::get().object("Opportunity").unwrap()).id,
            s.id
        );
    }
}
