//! One org: its records, connected apps, API usage, faults, query locators and the
//! change log. Every record mutation goes through [`Org::mutate`].

mod merge;

pub use merge::Converted;

use crate::ids;
use crate::schema::{CLOSED_TASK_STATUSES, FieldDef, FieldType, ObjectDef, Schema};
use crate::soql::Plan;
use crate::soql::plan::{DataView, attributes, record_map, value_json};
use crate::store::{RecordId, Table, Value, ValueRef};
use crate::time::{Millis, fmt_datetime, parse_date, parse_datetime, to_second};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A per-record error (`statusCode` in collections, `errorCode` at top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecError {
    /// Salesforce status code, e.g. `REQUIRED_FIELD_MISSING`.
    pub code: &'static str,
    /// Message.
    pub message: String,
    /// Fields concerned.
    pub fields: Vec<String>,
}

impl RecError {
    /// Builds an error.
    pub fn new(code: &'static str, message: impl Into<String>, fields: Vec<String>) -> RecError {
        RecError {
            code,
            message: message.into(),
            fields,
        }
    }
    /// `{"statusCode","message","fields"}` (collections and composite results).
    pub fn to_status_json(&self) -> serde_json::Value {
        json!({
            "statusCode": self.code,
            "message": self.message.as_str(),
            "fields": self.fields,
        })
    }
    /// `{"message","errorCode","fields"}` (top-level error arrays).
    pub fn to_error_json(&self) -> serde_json::Value {
        json!({
            "message": self.message.as_str(),
            "errorCode": self.code,
            "fields": self.fields,
        })
    }
}

/// Kind of change (Change Data Capture vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    /// Created.
    Create,
    /// Updated.
    Update,
    /// Deleted.
    Delete,
    /// Undeleted.
    Undelete,
}

/// One entry of the change log (what Change Data Capture will publish).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEntry {
    /// Monotonic sequence number in the org.
    pub sequence: u64,
    /// Object name.
    pub entity_name: &'static str,
    /// Ids of the records (18 characters).
    pub record_ids: Vec<String>,
    /// CREATE / UPDATE / DELETE / UNDELETE.
    pub change_type: ChangeType,
    /// Fields set or changed.
    pub changed_fields: Vec<&'static str>,
    /// Fields set to null.
    pub nulled_fields: Vec<&'static str>,
    /// `client=<name>` from `Sforce-Call-Options`, if any.
    pub client: Option<String>,
    /// Commit time (ms).
    pub commit_timestamp: Millis,
    /// User who made the change (18 characters).
    pub commit_user: String,
}

/// Compact form of a change log entry (a million entries must stay small:
/// 48 bytes, no allocation). Its sequence number is its position + 1 (the log
/// only grows, and a rollback truncates it with the sequence).
#[derive(Debug, Clone)]
struct Change {
    id: RecordId,
    user: RecordId,
    commit: Millis,
    /// Field positions set or changed (bit i = `fields[i]`).
    changed: u64,
    /// Field positions set to null.
    nulled: u64,
    /// Index + 1 in `Org::origins` (0: none).
    client: u32,
    change_type: ChangeType,
    /// Made through the REST API (not a seed or the control API).
    api: bool,
}

/// Who writes, when, and how.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// Acting user.
    pub user: RecordId,
    /// Client name from `Sforce-Call-Options`.
    pub client: Option<String>,
    /// API version of the request (`62.0`; None for seeds).
    pub version: Option<String>,
    /// Commit time (ms).
    pub now: Millis,
    /// Seeding: read-only and audit fields may be given.
    pub seed: bool,
}

/// A record mutation.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Insert a record of an object with (field index, value) pairs.
    Create {
        /// Object index.
        obj: usize,
        /// Field values (references as text ids).
        fields: Vec<(usize, Value)>,
    },
    /// Update fields of a record.
    Update {
        /// Record.
        id: RecordId,
        /// Field values.
        fields: Vec<(usize, Value)>,
    },
    /// Move a record (and its cascade children) to the recycle bin.
    Delete {
        /// Record.
        id: RecordId,
    },
    /// Restore a record from the recycle bin.
    Undelete {
        /// Record.
        id: RecordId,
    },
}

/// A connected app.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApp {
    /// Display name.
    pub name: String,
    /// Consumer key (client_id).
    pub consumer_key: String,
    /// Consumer secret.
    pub consumer_secret: String,
    /// Callback URL (must equal redirect_uri).
    pub callback_url: String,
    /// Refresh token rotation.
    pub rotate_refresh_tokens: bool,
    /// When set, GET authorize approves at once as this username.
    pub auto_approve_user: Option<String>,
    /// The web-server flow requires the client secret.
    pub require_secret: bool,
}

/// Fault to inject into the next API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureKind {
    /// 503 `SERVER_UNAVAILABLE`.
    ServerUnavailable,
    /// `UNABLE_TO_LOCK_ROW` (400 at top level; per record in collection writes).
    UnableToLockRow,
    /// 403 `REQUEST_LIMIT_EXCEEDED` (the concurrent-request flavour).
    RequestLimitExceeded,
}

/// Active faults of an org.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    /// The next N API requests fail with this kind.
    pub fail_next: u64,
    /// Kind of the failures.
    pub fail_kind: Option<FailureKind>,
    /// Only requests of this kind fail (`None`: any).
    pub fail_only: Option<String>,
    /// Latency added to each request (ms).
    pub latency_ms: u64,
    /// Each request waits a further random time up to this (ms).
    pub jitter_ms: u64,
    /// Each request fails, transiently, with this probability (percent), as
    /// [`Self::random_kinds`] say (one drawn at random).
    pub fail_percent: u8,
    /// The transient failures [`Self::fail_percent`] draws from.
    pub random_kinds: Vec<FailureKind>,
}

/// Page size caps of query results. Salesforce: "There is no guarantee that
/// the requested batch size is the actual batch size. Changes are made as
/// necessary to maximize performance" (Query Options Header); pages are
/// shorter e.g. for wide rows or relationship queries. Each cap applies when
/// its condition holds; the smallest wins. Without caps pages are full (child
/// rows of subqueries always count toward the page, as documented).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagePolicy {
    /// Cap of every page.
    pub max: Option<usize>,
    /// Cap of pages of queries selecting a parent field or a subquery.
    pub with_relationships: Option<usize>,
    /// Cap of pages of queries selecting a long text field (a text area over
    /// 255 characters, e.g. Task.Description).
    pub with_long_text: Option<usize>,
}

impl PagePolicy {
    /// Refuses caps of 0.
    pub fn validate(&self) -> Result<(), String> {
        if [self.max, self.with_relationships, self.with_long_text].contains(&Some(0)) {
            return Err("query page caps must be at least 1".into());
        }
        Ok(())
    }

    /// The most rows a page of `plan` may hold when `batch` were asked for.
    pub fn cap(&self, plan: &Plan, batch: usize) -> usize {
        let mut cap = batch;
        let mut apply = |c: Option<usize>, when: bool| {
            if let (Some(c), true) = (c, when) {
                cap = cap.min(c);
            }
        };
        apply(self.max, true);
        apply(self.with_relationships, plan.has_relationships());
        apply(self.with_long_text, plan.has_long_text());
        cap.max(1)
    }
}

/// Status codes a [`crate::world::RecordFault`] may inject, with Salesforce's
/// usual message for each.
pub const INJECTABLE: &[(&str, &str)] = &[
    (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "This record does not pass a validation rule of the org",
    ),
    ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"),
    ("ENTITY_IS_DELETED", "entity is deleted"),
    (
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "insufficient access rights on object id",
    ),
    (
        "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
        "insufficient access rights on cross-reference id",
    ),
    ("DUPLICATES_DETECTED", "Use one of these records?"),
    (
        "DUPLICATE_VALUE",
        "duplicate value found: an external id duplicates value on another record",
    ),
    (
        "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
        "TaskTrigger: execution of BeforeInsert caused by: System.DmlException: Insert failed",
    ),
    ("FIELD_INTEGRITY_EXCEPTION", "field integrity exception"),
    (
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record",
    ),
];

/// A compiled [`crate::world::RecordFault`].
#[derive(Debug, Clone)]
pub struct InjectedError {
    obj: usize,
    op: crate::world::WriteOp,
    record: Option<RecordId>,
    field: Option<usize>,
    equals: Option<serde_json::Value>,
    contains: Option<String>,
    code: &'static str,
    message: String,
    fields: Vec<String>,
    remaining: Option<u64>,
}

impl InjectedError {
    /// Checks a fault against the schema and the org's records.
    pub fn compile(org: &Org, spec: &crate::world::RecordFault) -> Result<InjectedError, String> {
        let obj = Schema::get()
            .object(&spec.object)
            .ok_or_else(|| format!("unknown object {}", spec.object))?;
        let (code, default_message) = INJECTABLE
            .iter()
            .find(|(c, _)| *c == spec.status_code)
            .copied()
            .ok_or_else(|| {
                format!(
                    "status_code {} cannot be injected; one of: {}",
                    spec.status_code,
                    INJECTABLE
                        .iter()
                        .map(|(c, _)| *c)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        let field = match &spec.field {
            None => None,
            Some(f) => Some(
                *obj.by_name
                    .get(&f.to_ascii_lowercase())
                    .ok_or_else(|| format!("no field {f} on {}", obj.name))?,
            ),
        };
        if field.is_none() && (spec.equals.is_some() || spec.contains.is_some()) {
            return Err("equals and contains need a field".into());
        }
        let record = match &spec.record_id {
            None => None,
            Some(id) => match org.parse_id(id) {
                Some(r) if r.obj() == obj.index => Some(r),
                _ => return Err(format!("no {} record {id}", obj.name)),
            },
        };
        if spec.times == Some(0) {
            return Err("times must be at least 1".into());
        }
        let fields = spec.fields.clone().unwrap_or_else(|| match (code, field) {
            ("INVALID_CROSS_REFERENCE_KEY", Some(f)) => vec![obj.fields[f].name.to_string()],
            _ => Vec::new(),
        });
        Ok(InjectedError {
            obj: obj.index,
            op: spec.operation,
            record,
            field,
            equals: spec.equals.clone(),
            contains: spec.contains.clone(),
            code,
            message: spec
                .message
                .clone()
                .unwrap_or_else(|| default_message.to_string()),
            fields,
            remaining: spec.times,
        })
    }

    fn matches(
        &self,
        view: &DataView,
        obj: usize,
        op: crate::world::WriteOp,
        id: Option<RecordId>,
        vals: &[Value],
    ) -> bool {
        use crate::world::WriteOp;
        if self.obj != obj || !(self.op == WriteOp::Any || self.op == op) {
            return false;
        }
        if self.record.is_some() && self.record != id {
            return false;
        }
        let Some(fi) = self.field else {
            return true;
        };
        let v = vals.get(fi).unwrap_or(&Value::Null);
        if let Some(want) = &self.contains
            && !matches!(v, Value::Text(t) if t.contains(want.as_str()))
        {
            return false;
        }
        match &self.equals {
            None => true,
            Some(want) => value_equals(view, v, want),
        }
    }
}

/// A stored value compared with a JSON value (ids on their 15 characters,
/// dates and datetimes as Salesforce writes them).
fn value_equals(view: &DataView, v: &Value, want: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (v, want) {
        (Value::Null, J::Null) => true,
        (Value::Text(t), J::String(w)) => t.as_ref() == w,
        (Value::Ref(r), J::String(w)) => {
            ids::normalize15(w).is_some_and(|w| view.id15(*r) == w.as_bytes())
        }
        (Value::Bool(b), J::Bool(w)) => b == w,
        (Value::Int(i), J::Number(n)) => n.as_i64() == Some(*i),
        (Value::Float(f), J::Number(n)) => n.as_f64() == Some(*f),
        (Value::Date(d), J::String(w)) => parse_date(w) == Some(*d),
        (Value::DateTime(t), J::String(w)) => parse_datetime(w) == Some(*t),
        _ => false,
    }
}

/// A query cursor.
#[derive(Debug, Clone)]
pub struct Locator {
    /// Compiled query (for rendering pages).
    pub plan: Arc<Plan>,
    /// Snapshot of the ordered result ids.
    pub ids: Arc<Vec<RecordId>>,
    /// Access token that opened it.
    pub token: String,
    /// User that opened it.
    pub user: RecordId,
    /// Opened at (ms).
    pub opened: Millis,
    /// Last use (ms).
    pub last_used: Millis,
    /// Page size.
    pub batch: usize,
    /// Endpoint (`query` or `queryAll`).
    pub all: bool,
}

/// Idle time after which a locator expires.
pub const LOCATOR_IDLE_MS: Millis = 15 * 60 * 1000;
/// Open locators per user.
pub const MAX_LOCATORS_PER_USER: usize = 10;

/// Reversible operations recorded inside a transaction.
#[derive(Debug, Clone)]
enum Undo {
    Cell {
        obj: usize,
        col: usize,
        row: usize,
        old: Value,
    },
    Deleted {
        obj: usize,
        row: usize,
        old: Option<Millis>,
    },
}

/// A transaction savepoint.
#[derive(Debug, Clone)]
pub struct Savepoint {
    lens: Vec<usize>,
    undo: usize,
    changes: usize,
}

/// One org.
#[derive(Debug)]
pub struct Org {
    /// Position in the world.
    pub index: usize,
    /// Organization id (18 characters).
    pub id: String,
    /// Pod characters of its ids.
    pub pod: String,
    /// Name.
    pub name: String,
    /// Records, one table per object.
    pub tables: Vec<Table>,
    /// Connected apps.
    pub apps: Vec<ConnectedApp>,
    /// Login passwords by user.
    pub passwords: HashMap<RecordId, String>,
    /// Daily API allocation.
    pub api_limit: u64,
    /// API requests used.
    pub api_used: u64,
    /// Requests by endpoint kind.
    pub counters: BTreeMap<&'static str, u64>,
    /// Faults.
    pub faults: Faults,
    /// Open query locators.
    pub locators: HashMap<String, Locator>,
    locator_seq: u64,
    /// Change log (compact; see [`Org::change_entries`]).
    changes: Vec<Change>,
    /// Origins seen in the change log: `<version>[;client=<name>]`, the
    /// tail of CDC's `changeOrigin` (`com/salesforce/api/rest/<tail>`).
    origins: Vec<Arc<str>>,
    /// Record changes in the log.
    pub change_log_enabled: bool,
    /// Session idle timeout (ms).
    pub session_timeout_ms: Millis,
    /// Records newer than this are not yet in the search index (ms).
    pub search_lag_ms: Millis,
    /// Creation time of the org.
    pub created_at: Millis,
    /// Seed references (`@name` → id).
    pub seed_refs: HashMap<String, String>,
    tx_depth: usize,
    undo: Vec<Undo>,
    /// Change Data Capture: selected objects and the event bus.
    pub cdc: crate::cdc::Cdc,
    /// Injected per-record failures.
    pub record_faults: Vec<InjectedError>,
    /// Query page caps.
    pub page_policy: PagePolicy,
    /// Object permissions, API Enabled, Notes.
    pub access: crate::access::Access,
}

fn string_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parser_error(obj: &ObjectDef, f: &FieldDef, v: &serde_json::Value, what: &str) -> RecError {
    RecError::new(
        "JSON_PARSER_ERROR",
        format!(
            "Cannot deserialize instance of {what} from {} value {} or request may be missing a required field (field {}.{})",
            match v {
                serde_json::Value::String(_) => "VALUE_STRING",
                serde_json::Value::Number(_) => "VALUE_NUMBER",
                serde_json::Value::Bool(_) => "VALUE_BOOLEAN",
                serde_json::Value::Array(_) => "START_ARRAY",
                serde_json::Value::Object(_) => "START_OBJECT",
                serde_json::Value::Null => "VALUE_NULL",
            },
            string_json(v),
            obj.name,
            f.name
        ),
        vec![],
    )
}

/// Converts JSON request fields into values. Unknown fields and JSON type errors
/// fail the whole request (Salesforce fails deserialisation before any DML).
pub fn parse_fields(
    obj: &ObjectDef,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(usize, Value)>, RecError> {
    let mut out = Vec::with_capacity(map.len());
    for (key, v) in map {
        if key == "attributes" {
            continue;
        }
        let Some(fi) = obj.by_name.get(&key.to_ascii_lowercase()).copied() else {
            return Err(RecError::new(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", obj.name),
                vec![],
            ));
        };
        let f = &obj.fields[fi];
        let value = if v.is_null() {
            Value::Null
        } else {
            match f.ftype {
                FieldType::Boolean => match v {
                    serde_json::Value::Bool(b) => Value::Bool(*b),
                    _ => return Err(parser_error(obj, f, v, "boolean")),
                },
                FieldType::Int => match v.as_i64() {
                    Some(i) => Value::Int(i),
                    None => return Err(parser_error(obj, f, v, "int")),
                },
                FieldType::Double | FieldType::Currency | FieldType::Percent => match v.as_f64() {
                    Some(x) if v.is_number() => Value::Float(x),
                    _ => return Err(parser_error(obj, f, v, "double")),
                },
                FieldType::Date => match v.as_str().and_then(parse_date) {
                    Some(d) => Value::Date(d),
                    None => return Err(parser_error(obj, f, v, "date")),
                },
                FieldType::DateTime => match v.as_str().and_then(parse_datetime) {
                    Some(t) => Value::DateTime(to_second(t)),
                    None => return Err(parser_error(obj, f, v, "datetime")),
                },
                _ => match v {
                    serde_json::Value::String(s) => Value::Text(s.as_str().into()),
                    _ => return Err(parser_error(obj, f, v, "string")),
                },
            }
        };
        out.push((fi, value));
    }
    Ok(out)
}

fn is_audit(name: &str) -> bool {
    matches!(
        name,
        "CreatedDate" | "CreatedById" | "LastModifiedDate" | "LastModifiedById" | "SystemModstamp"
    )
}

impl Org {
    /// A new empty org.
    pub fn new(index: usize, name: String, api_limit: u64, now: Millis) -> Org {
        let pod = ids::pod_for(index);
        let id = ids::make_id("00D", &pod, index as u64 + 1);
        let schema = Schema::get();
        Org {
            index,
            id,
            pod,
            name,
            tables: schema.objects.iter().map(Table::new).collect(),
            apps: Vec::new(),
            passwords: HashMap::new(),
            api_limit,
            api_used: 0,
            counters: BTreeMap::new(),
            faults: Faults::default(),
            locators: HashMap::new(),
            locator_seq: 0,
            changes: Vec::new(),
            origins: Vec::new(),
            change_log_enabled: true,
            session_timeout_ms: 2 * 3600 * 1000,
            search_lag_ms: 0,
            created_at: now,
            seed_refs: HashMap::new(),
            tx_depth: 0,
            undo: Vec::new(),
            cdc: crate::cdc::Cdc::default(),
            record_faults: Vec::new(),
            page_policy: PagePolicy::default(),
            access: Default::default(),
        }
    }

    /// Read view for SOQL.
    pub fn view(&self) -> DataView<'_> {
        DataView {
            tables: &self.tables,
            pod: &self.pod,
        }
    }

    /// 18-character id.
    pub fn id18(&self, r: RecordId) -> String {
        self.view().id18(r)
    }

    /// Resolves a 15/18-character id of this org to an existing record.
    pub fn parse_id(&self, text: &str) -> Option<RecordId> {
        let id15 = ids::normalize15(text)?;
        let (prefix, pod, seq) = ids::split15(&id15)?;
        let obj = Schema::get().by_prefix(prefix)?;
        if pod != self.pod || seq == 0 {
            return None;
        }
        let r = RecordId::new(obj.index, seq);
        self.tables[obj.index].has_row(r.row()).then_some(r)
    }

    /// True when the record exists and is not deleted.
    pub fn is_live(&self, r: RecordId) -> bool {
        self.view().live(r)
    }

    /// Value of a named field.
    pub fn get(&self, r: RecordId, field: &str) -> ValueRef<'_> {
        let obj = Schema::get().at(r.obj());
        match obj.col(field) {
            Some(c) => self.tables[r.obj()].get(c, r.row()),
            None => ValueRef::Null,
        }
    }

    /// Text value of a named field.
    pub fn text(&self, r: RecordId, field: &str) -> Option<&str> {
        match self.get(r, field) {
            ValueRef::Text(s) => Some(s),
            _ => None,
        }
    }

    /// All fields (or the given ones) of a record as JSON, attributes first.
    pub fn record_json(
        &self,
        r: RecordId,
        fields: Option<&[usize]>,
        version: &str,
    ) -> serde_json::Value {
        let obj = Schema::get().at(r.obj());
        let view = self.view();
        let all: Vec<usize> = (0..obj.fields.len()).collect();
        let fields = fields.unwrap_or(&all);
        let mut rec = record_map(attributes(&view, version, r, obj.name), fields.len());
        for fi in fields {
            let f = &obj.fields[*fi];
            let acc = field_accessor_for(obj, f);
            let got = view.get(&acc, r);
            rec.insert(f.name.into(), value_json(&view, got.as_ref()));
        }
        serde_json::Value::Object(rec)
    }

    /// Opens a savepoint; writes after it can be rolled back.
    pub fn savepoint(&mut self) -> Savepoint {
        self.tx_depth += 1;
        Savepoint {
            lens: self.tables.iter().map(Table::len).collect(),
            undo: self.undo.len(),
            changes: self.changes.len(),
        }
    }

    /// Keeps the writes since the savepoint.
    pub fn release(&mut self, sp: Savepoint) {
        self.tx_depth = self.tx_depth.saturating_sub(1);
        if self.tx_depth == 0 {
            self.undo.clear();
            self.cdc_flush(None);
        } else {
            let _ = sp;
        }
    }

    /// Undoes every write since the savepoint.
    pub fn rollback(&mut self, sp: Savepoint) {
        while self.undo.len() > sp.undo {
            match self.undo.pop() {
                Some(Undo::Cell { obj, col, row, old }) => self.tables[obj].set(col, row, old),
                Some(Undo::Deleted { obj, row, old }) => match old {
                    Some(t) => {
                        self.tables[obj].deleted_at.insert(row, t);
                    }
                    None => {
                        self.tables[obj].deleted_at.remove(&row);
                    }
                },
                None => break,
            }
        }
        for (t, len) in self.tables.iter_mut().zip(sp.lens.iter()) {
            t.truncate(*len);
        }
        self.changes.truncate(sp.changes);
        self.tx_depth = self.tx_depth.saturating_sub(1);
        if self.tx_depth == 0 {
            self.undo.clear();
            self.cdc_flush(None);
        }
    }

    /// Opens a batch: the writes until [`Org::end_batch`] are one transaction
    /// for Change Data Capture (a seed call). `now` is the bus time.
    pub fn begin_batch(&mut self, now: Millis) {
        self.cdc.batch_depth += 1;
        if self.cdc.batch_now.is_none() {
            self.cdc.batch_now = Some(now);
        }
    }

    /// Closes a batch (publishes its change events when it is the outermost).
    pub fn end_batch(&mut self) {
        self.cdc.batch_depth = self.cdc.batch_depth.saturating_sub(1);
        if self.cdc.batch_depth == 0 {
            let now = self.cdc.batch_now.take();
            self.cdc_flush(now);
        }
    }

    /// Turns the change log entries written since the last flush into change
    /// events (one transaction), unless a transaction or batch is still open.
    fn cdc_flush(&mut self, now: Option<Millis>) {
        if self.tx_depth > 0 || self.cdc.batch_depth > 0 {
            return;
        }
        let start = self.cdc.cursor.min(self.changes.len());
        self.cdc.cursor = self.changes.len();
        if start == self.changes.len() || !self.cdc.any_enabled() {
            return;
        }
        let pending: Vec<crate::cdc::PendingChange> = self.changes[start..]
            .iter()
            .filter(|c| self.cdc.is_enabled(c.id.obj()))
            .map(|c| crate::cdc::PendingChange {
                id: c.id,
                user: c.user,
                commit: c.commit,
                changed: c.changed,
                nulled: c.nulled,
                client: (c.client as usize)
                    .checked_sub(1)
                    .and_then(|i| self.origins.get(i))
                    .cloned(),
                api: c.api,
                change_type: c.change_type,
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        let published = now.unwrap_or_else(|| pending.iter().map(|p| p.commit).max().unwrap_or(0));
        let mut cdc = std::mem::take(&mut self.cdc);
        crate::cdc::build_transaction(&*self, &mut cdc, &pending, published);
        self.cdc = cdc;
    }

    /// Publishes what is pending and moves the flush cursor to the end of
    /// the log (before CDC is switched on for an object).
    pub fn cdc_sync(&mut self) {
        self.cdc_flush(None);
        self.cdc.cursor = self.changes.len();
    }

    fn set_cell(&mut self, obj: usize, col: usize, row: usize, v: Value) {
        if self.tx_depth > 0 {
            let old = self.tables[obj].get(col, row).to_owned();
            self.undo.push(Undo::Cell { obj, col, row, old });
        }
        self.tables[obj].set(col, row, v);
    }

    fn set_deleted(&mut self, obj: usize, row: usize, at: Option<Millis>) {
        if self.tx_depth > 0 {
            let old = self.tables[obj].deleted_at.get(&row).copied();
            self.undo.push(Undo::Deleted { obj, row, old });
        }
        match at {
            Some(t) => {
                self.tables[obj].deleted_at.insert(row, t);
            }
            None => {
                self.tables[obj].deleted_at.remove(&row);
            }
        }
    }

    /// The one entry point for record writes: validates, applies, derives fields,
    /// maintains audit fields and records the change log entry.
    pub fn mutate(&mut self, m: Mutation, ctx: &WriteCtx) -> Result<RecordId, RecError> {
        let res = match m {
            Mutation::Create { obj, fields } => self.create(obj, fields, ctx),
            Mutation::Update { id, fields } => self.update(id, fields, ctx).map(|_| id),
            Mutation::Delete { id } => self.delete(id, ctx).map(|_| id),
            Mutation::Undelete { id } => self.undelete(id, ctx).map(|_| id),
        };
        self.cdc_flush(None);
        res
    }

    fn log_change(
        &mut self,
        id: RecordId,
        change_type: ChangeType,
        changed: &[usize],
        nulled: &[usize],
        ctx: &WriteCtx,
    ) {
        if !self.change_log_enabled && !self.cdc.is_enabled(id.obj()) {
            return;
        }
        let bits = |fields: &[usize]| -> u64 {
            fields.iter().fold(0, |acc, fi| {
                debug_assert!(*fi < 64, "an object has at most 64 fields");
                acc | 1u64.checked_shl(*fi as u32).unwrap_or(0)
            })
        };
        let origin = match (ctx.version.as_deref(), ctx.client.as_deref()) {
            (None, None) => None,
            (v, Some(name)) => Some(format!("{};client={name}", v.unwrap_or(crate::API_VERSION))),
            (Some(v), None) => Some(v.to_string()),
        };
        let client = match origin {
            None => 0,
            Some(tail) => match self.origins.iter().position(|c| **c == *tail) {
                Some(i) => i + 1,
                None => {
                    self.origins.push(Arc::from(tail));
                    self.origins.len()
                }
            },
        };
        self.changes.push(Change {
            id,
            user: ctx.user,
            commit: ctx.now,
            changed: bits(changed),
            nulled: bits(nulled),
            client: u32::try_from(client).unwrap_or(0),
            change_type,
            api: !ctx.seed,
        });
    }

    /// The change log, oldest first.
    pub fn change_entries(&self) -> Vec<ChangeEntry> {
        let schema = Schema::get();
        self.changes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let def = schema.at(c.id.obj());
                let names = |bits: u64| {
                    def.fields
                        .iter()
                        .enumerate()
                        .filter(|(fi, _)| *fi < 64 && bits & (1 << fi) != 0)
                        .map(|(_, f)| f.name)
                        .collect()
                };
                ChangeEntry {
                    sequence: i as u64 + 1,
                    entity_name: def.name,
                    record_ids: vec![self.id18(c.id)],
                    change_type: c.change_type,
                    changed_fields: names(c.changed),
                    nulled_fields: names(c.nulled),
                    client: (c.client as usize)
                        .checked_sub(1)
                        .and_then(|i| self.origins.get(i))
                        .and_then(|tail| tail.split_once(";client="))
                        .map(|(_, name)| name.to_string()),
                    commit_timestamp: c.commit,
                    commit_user: self.id18(c.user),
                }
            })
            .collect()
    }

    /// Number of change log entries.
    pub fn change_log_len(&self) -> usize {
        self.changes.len()
    }

    /// Releases spare capacity of the records and the change log (after a
    /// bulk load).
    pub fn shrink_to_fit(&mut self) {
        for t in &mut self.tables {
            t.shrink_to_fit();
        }
        self.changes.shrink_to_fit();
    }

    /// Heap bytes held by the records and by the change log (capacity
    /// included).
    pub fn footprint(&self) -> (usize, usize) {
        (
            self.tables.iter().map(Table::heap_bytes).sum(),
            self.changes.capacity() * std::mem::size_of::<Change>(),
        )
    }

    /// Resolves and checks a reference value.
    fn check_ref(&self, f: &FieldDef, v: &Value) -> Result<Value, RecError> {
        let text = match v {
            Value::Null => return Ok(Value::Null),
            Value::Text(t) => t.as_ref(),
            Value::Ref(r) => return Ok(Value::Ref(*r)),
            _ => "",
        };
        let schema = Schema::get();
        let Some(id15) = ids::normalize15(text) else {
            return Err(RecError::new(
                "MALFORMED_ID",
                format!("{}: id value of incorrect type: {text}", f.label),
                vec![f.name.to_string()],
            ));
        };
        let target = ids::split15(&id15).and_then(|(p, _, _)| schema.by_prefix(p));
        let allowed = target.is_some_and(|t| f.refs.contains(&t.name));
        if !allowed {
            return Err(RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                format!("{}: id value of incorrect type: {text}", f.label),
                vec![f.name.to_string()],
            ));
        }
        match self.parse_id(&id15) {
            Some(r) if self.is_live(r) => Ok(Value::Ref(r)),
            _ => Err(RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                vec![f.name.to_string()],
            )),
        }
    }

    /// Validates field values (length, picklists, references) and converts
    /// reference ids.
    fn check_values(&self, obj: &ObjectDef, fields: &mut [(usize, Value)]) -> Result<(), RecError> {
        for (fi, v) in fields.iter_mut() {
            let f = &obj.fields[*fi];
            match f.ftype {
                FieldType::Reference => {
                    *v = self.check_ref(f, v)?;
                    if f.name == "OwnerId"
                        && let Value::Ref(u) = v
                        && self.get(*u, "IsActive") != ValueRef::Bool(true)
                    {
                        return Err(RecError::new(
                            "INACTIVE_OWNER_OR_USER",
                            format!(
                                "operation performed with inactive user [{}] as owner of {}",
                                self.id18(*u),
                                obj.name.to_ascii_lowercase()
                            ),
                            vec![],
                        ));
                    }
                }
                t if t.is_text() => {
                    if let Value::Text(s) = v {
                        // Salesforce counts UTF-16 code units (a Java
                        // platform): an emoji is 2 of them. Its message
                        // quotes the whole value: "Description: data value
                        // too large: <value> (max length=255)" (as quoted in
                        // SalesforceLabs/Milestones-PM#32 and
                        // SalesforceCommerceCloud/b2c-crm-sync#181).
                        let n = s.encode_utf16().count();
                        if n > f.length as usize {
                            return Err(RecError::new(
                                "STRING_TOO_LONG",
                                format!(
                                    "{}: data value too large: {s} (max length={})",
                                    f.label, f.length
                                ),
                                vec![f.name.to_string()],
                            ));
                        }
                        if let Some(values) = f.restricted
                            && !values.contains(&s.as_ref())
                        {
                            return Err(RecError::new(
                                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                format!(
                                    "{}: bad value for restricted picklist field: {s}",
                                    f.label
                                ),
                                vec![f.name.to_string()],
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_writable(
        obj: &ObjectDef,
        fields: &[(usize, Value)],
        create: bool,
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        let bad: Vec<String> = fields
            .iter()
            .map(|(fi, _)| &obj.fields[*fi])
            .filter(|f| {
                let ok = if create { f.createable } else { f.updateable };
                let seed_ok = ctx.seed && f.computed.is_none() && f.name != "Id";
                !ok && !seed_ok
            })
            .map(|f| f.name.to_string())
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(RecError::new(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    bad.join(", ")
                ),
                bad,
            ))
        }
    }

    /// Values after applying `fields` over the current row (or over nulls).
    fn merged(&self, obj: &ObjectDef, row: Option<usize>, fields: &[(usize, Value)]) -> Vec<Value> {
        let mut vals: Vec<Value> = vec![Value::Null; obj.fields.len()];
        if let Some(row) = row {
            for (i, f) in obj.fields.iter().enumerate() {
                if let Some(c) = f.column {
                    vals[i] = self.tables[obj.index].get(c, row).to_owned();
                }
            }
        }
        for (fi, v) in fields {
            vals[*fi] = v.clone();
        }
        vals
    }

    fn derive(&self, obj: &ObjectDef, vals: &mut [Value]) {
        let idx = |n: &str| obj.by_name.get(&n.to_ascii_lowercase()).copied();
        if obj.name == "Event" {
            crate::event::derive(obj, vals);
        }
        match obj.name {
            "Task" | "Event" => {
                if let (Some(s), Some(c)) = (idx("Status"), idx("IsClosed")) {
                    let closed = matches!(&vals[s], Value::Text(t) if CLOSED_TASK_STATUSES.contains(&t.as_ref()));
                    vals[c] = Value::Bool(closed);
                }
                if let (Some(what), Some(who), Some(acc)) =
                    (idx("WhatId"), idx("WhoId"), idx("AccountId"))
                {
                    let schema = Schema::get();
                    let mut account = Value::Null;
                    if let Value::Ref(w) = &vals[what] {
                        match schema.at(w.obj()).name {
                            "Account" => account = Value::Ref(*w),
                            "Opportunity" => account = self.get(*w, "AccountId").to_owned(),
                            _ => {}
                        }
                    }
                    if account.is_null()
                        && let Value::Ref(c) = &vals[who]
                        && schema.at(c.obj()).name == "Contact"
                    {
                        account = self.get(*c, "AccountId").to_owned();
                    }
                    vals[acc] = account;
                }
            }
            "Opportunity" => {
                if let (Some(s), Some(c), Some(w)) =
                    (idx("StageName"), idx("IsClosed"), idx("IsWon"))
                {
                    let stage = match &vals[s] {
                        Value::Text(t) => t.to_string(),
                        _ => String::new(),
                    };
                    vals[c] = Value::Bool(stage == "Closed Won" || stage == "Closed Lost");
                    vals[w] = Value::Bool(stage == "Closed Won");
                }
            }
            "EmailMessageRelation" => {
                if let (Some(r), Some(t)) = (idx("RelationId"), idx("RelationObjectType")) {
                    vals[t] = match &vals[r] {
                        Value::Ref(x) => Value::Text(Schema::get().at(x.obj()).name.into()),
                        _ => Value::Null,
                    };
                }
            }
            "ContentNote" => {
                if let (Some(c), Some(p), Some(ft)) =
                    (idx("Content"), idx("TextPreview"), idx("FileType"))
                {
                    vals[ft] = Value::Text("SNOTE".into());
                    vals[p] = match &vals[c] {
                        Value::Text(b64) => {
                            use base64::Engine;
                            let decoded = base64::engine::general_purpose::STANDARD
                                .decode(b64.as_bytes())
                                .ok()
                                .and_then(|b| String::from_utf8(b).ok())
                                .unwrap_or_default();
                            let plain = strip_tags(&decoded);
                            let preview: String = plain.chars().take(255).collect();
                            if preview.is_empty() {
                                Value::Null
                            } else {
                                Value::Text(preview.into())
                            }
                        }
                        _ => Value::Null,
                    };
                }
            }
            _ => {}
        }
    }

    /// Fails a write that an injected [`InjectedError`] matches (API writes
    /// only: seeds and the control API are never refused).
    fn check_injected(
        &mut self,
        obj: &ObjectDef,
        op: crate::world::WriteOp,
        id: Option<RecordId>,
        vals: &[Value],
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        if ctx.seed || self.record_faults.is_empty() {
            return Ok(());
        }
        let view = self.view();
        let Some(i) = self
            .record_faults
            .iter()
            .position(|f| f.matches(&view, obj.index, op, id, vals))
        else {
            return Ok(());
        };
        let f = &mut self.record_faults[i];
        let err = RecError::new(f.code, f.message.clone(), f.fields.clone());
        if let Some(n) = &mut f.remaining {
            *n -= 1;
            if *n == 0 {
                self.record_faults.remove(i);
            }
        }
        Err(err)
    }

    /// An API write the user's object permissions do not allow (seeds and the
    /// control API, which carry no API version, are never refused).
    fn check_access(
        &self,
        obj: &ObjectDef,
        perm: crate::access::Perm,
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        if ctx.version.is_none() || self.access.allows(ctx.user, obj, perm) {
            return Ok(());
        }
        let action = match perm {
            crate::access::Perm::Create => "create",
            _ => "edit",
        };
        Err(RecError::new(
            "INSUFFICIENT_ACCESS_OR_READONLY",
            format!(
                "insufficient access rights on object: you cannot {action} {}",
                obj.name
            ),
            vec![],
        ))
    }

    fn check_required(obj: &ObjectDef, vals: &[Value]) -> Result<(), RecError> {
        let missing: Vec<String> = obj
            .fields
            .iter()
            .zip(vals.iter())
            .filter(|(f, v)| f.required && v.is_null())
            .map(|(f, _)| f.name.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(RecError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            ))
        }
    }

    fn check_rules(&self, obj: &ObjectDef, vals: &[Value]) -> Result<(), RecError> {
        if obj.name == "Event" {
            crate::event::check(obj, vals)?;
        }
        if obj.name == "ContentNote" {
            crate::content::check_note(obj, vals)?;
        }
        if matches!(obj.name, "Task" | "Event") {
            let who = obj.by_name.get("whoid").map(|i| &vals[*i]);
            let what = obj.by_name.get("whatid").map(|i| &vals[*i]);
            if let (Some(Value::Ref(w)), Some(Value::Ref(_))) = (who, what)
                && Schema::get().at(w.obj()).name == "Lead"
            {
                // Salesforce refuses a Lead together with a Related To record; the
                // exact code is unconfirmed (see README).
                return Err(RecError::new(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Name ID: a Lead cannot be associated with a Related To (WhatId) record; only Contacts can be combined with WhatId",
                    vec!["WhoId".into(), "WhatId".into()],
                ));
            }
        }
        Ok(())
    }

    /// A document is linked to a record once (the code is unconfirmed).
    fn check_new_link(&self, obj: &ObjectDef, vals: &[Value]) -> Result<(), RecError> {
        let (Some(doc), Some(entity)) = (
            obj.by_name.get("contentdocumentid"),
            obj.by_name.get("linkedentityid"),
        ) else {
            return Ok(());
        };
        let (Value::Ref(d), Value::Ref(e)) = (&vals[*doc], &vals[*entity]) else {
            return Ok(());
        };
        let (Some(dc), Some(ec)) = (obj.fields[*doc].column, obj.fields[*entity].column) else {
            return Ok(());
        };
        let t = &self.tables[obj.index];
        let taken = (0..t.len()).any(|r| {
            !t.is_deleted(r)
                && t.get(dc, r) == ValueRef::Ref(*d)
                && t.get(ec, r) == ValueRef::Ref(*e)
        });
        if taken {
            return Err(RecError::new(
                "DUPLICATE_VALUE",
                format!(
                    "Document with ID: {} is already linked with the entity with ID: {}",
                    self.id18(*d),
                    self.id18(*e)
                ),
                vec!["LinkedEntityId".into()],
            ));
        }
        Ok(())
    }

    fn defaults(&self, obj: &ObjectDef, fields: &mut Vec<(usize, Value)>, ctx: &WriteCtx) {
        let given = |fields: &Vec<(usize, Value)>, name: &str| {
            obj.by_name
                .get(&name.to_ascii_lowercase())
                .is_some_and(|i| fields.iter().any(|(fi, _)| fi == i))
        };
        let add = |fields: &mut Vec<(usize, Value)>, name: &str, v: Value| {
            if let Some(i) = obj.by_name.get(&name.to_ascii_lowercase())
                && !given(fields, name)
            {
                fields.push((*i, v));
            }
        };
        if obj.field("OwnerId").is_some() {
            add(fields, "OwnerId", Value::Ref(ctx.user));
        }
        match obj.name {
            "Task" => {
                add(fields, "Status", Value::Text("Not Started".into()));
                add(fields, "Priority", Value::Text("Normal".into()));
                add(fields, "TaskSubtype", Value::Text("Task".into()));
            }
            "Event" => add(fields, "IsAllDayEvent", Value::Bool(false)),
            "Lead" => add(fields, "Status", Value::Text("Open - Not Contacted".into())),
            "ContentDocumentLink" => {
                add(fields, "ShareType", Value::Text("V".into()));
                add(fields, "Visibility", Value::Text("AllUsers".into()));
            }
            "User" => {
                add(fields, "IsActive", Value::Bool(true));
                add(fields, "UserType", Value::Text("Standard".into()));
            }
            _ => {}
        }
    }

    fn create(
        &mut self,
        obj_index: usize,
        mut fields: Vec<(usize, Value)>,
        ctx: &WriteCtx,
    ) -> Result<RecordId, RecError> {
        let schema = Schema::get();
        let obj = schema.at(obj_index);
        self.check_access(obj, crate::access::Perm::Create, ctx)?;
        Self::check_writable(obj, &fields, true, ctx)?;
        self.defaults(obj, &mut fields, ctx);
        // Audit fields given by a seed are kept aside.
        let mut audit_given: Vec<(usize, Value)> = Vec::new();
        fields.retain(|(fi, v)| {
            if is_audit(obj.fields[*fi].name) {
                audit_given.push((*fi, v.clone()));
                false
            } else {
                true
            }
        });
        self.check_values(obj, &mut fields)?;
        for (fi, v) in audit_given.iter_mut() {
            if obj.fields[*fi].ftype == FieldType::Reference {
                *v = self.check_ref(&obj.fields[*fi], v)?;
            }
        }
        let mut vals = self.merged(obj, None, &fields);
        Self::check_required(obj, &vals)?;
        self.check_rules(obj, &vals)?;
        if obj.name == "ContentDocumentLink" {
            self.check_new_link(obj, &vals)?;
        }
        self.derive(obj, &mut vals);
        self.check_injected(obj, crate::world::WriteOp::Create, None, &vals, ctx)?;
        let now = to_second(ctx.now);
        let set_audit = |vals: &mut Vec<Value>, name: &str, v: Value| {
            if let Some(i) = obj.by_name.get(&name.to_ascii_lowercase()) {
                vals[*i] = v;
            }
        };
        set_audit(&mut vals, "CreatedDate", Value::DateTime(now));
        set_audit(&mut vals, "LastModifiedDate", Value::DateTime(now));
        set_audit(&mut vals, "SystemModstamp", Value::DateTime(now));
        set_audit(&mut vals, "CreatedById", Value::Ref(ctx.user));
        set_audit(&mut vals, "LastModifiedById", Value::Ref(ctx.user));
        set_audit(&mut vals, "IsDeleted", Value::Bool(false));
        for (fi, v) in audit_given {
            if !v.is_null() {
                vals[fi] = v;
            }
        }
        let id = self.tables[obj_index].push_row();
        let row = id.row();
        let mut changed = Vec::new();
        for (fi, (f, v)) in obj.fields.iter().zip(vals).enumerate() {
            if let Some(c) = f.column {
                if !v.is_null() && f.name != "IsDeleted" {
                    changed.push(fi);
                }
                self.tables[obj_index].set(c, row, v);
            }
        }
        self.log_change(id, ChangeType::Create, &changed, &[], ctx);
        Ok(id)
    }

    fn update(
        &mut self,
        id: RecordId,
        mut fields: Vec<(usize, Value)>,
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        let schema = Schema::get();
        let obj = schema.at(id.obj());
        self.check_access(obj, crate::access::Perm::Edit, ctx)?;
        if !self.tables[id.obj()].has_row(id.row()) {
            return Err(RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                vec![],
            ));
        }
        if self.tables[id.obj()].is_deleted(id.row()) {
            return Err(RecError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                vec![],
            ));
        }
        Self::check_writable(obj, &fields, false, ctx)?;
        self.check_values(obj, &mut fields)?;
        let before = self.merged(obj, Some(id.row()), &[]);
        let mut vals = self.merged(obj, Some(id.row()), &fields);
        Self::check_required(obj, &vals)?;
        self.check_rules(obj, &vals)?;
        self.derive(obj, &mut vals);
        self.check_injected(obj, crate::world::WriteOp::Update, Some(id), &vals, ctx)?;
        let now = to_second(ctx.now);
        let audit_given: Vec<usize> = fields
            .iter()
            .filter(|(fi, _)| is_audit(obj.fields[*fi].name))
            .map(|(fi, _)| *fi)
            .collect();
        for name in ["LastModifiedDate", "SystemModstamp"] {
            if let Some(i) = obj.by_name.get(&name.to_ascii_lowercase())
                && !audit_given.contains(i)
            {
                vals[*i] = Value::DateTime(now);
            }
        }
        if let Some(i) = obj.by_name.get("lastmodifiedbyid")
            && !audit_given.contains(i)
        {
            vals[*i] = Value::Ref(ctx.user);
        }
        let mut changed = Vec::new();
        let mut nulled = Vec::new();
        for (fi, f) in obj.fields.iter().enumerate() {
            let Some(c) = f.column else { continue };
            let requested = fields.iter().any(|(x, _)| *x == fi);
            // LastModifiedDate is always part of an update (Salesforce lists it
            // in changedFields even within the same second).
            let stamped = matches!(f.name, "LastModifiedDate" | "SystemModstamp");
            if vals[fi] != before[fi] || requested || stamped {
                if vals[fi].is_null() {
                    nulled.push(fi);
                } else {
                    changed.push(fi);
                }
                self.set_cell(id.obj(), c, id.row(), vals[fi].clone());
            }
        }
        self.log_change(id, ChangeType::Update, &changed, &nulled, ctx);
        Ok(())
    }

    fn delete(&mut self, id: RecordId, ctx: &WriteCtx) -> Result<(), RecError> {
        let schema = Schema::get();
        let obj = schema.at(id.obj());
        if !self.tables[id.obj()].has_row(id.row()) {
            return Err(RecError::new(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                vec![],
            ));
        }
        if !obj.has_is_deleted {
            return Err(RecError::new(
                "INVALID_TYPE_FOR_OPERATION",
                format!("entity type {} does not support delete", obj.name),
                vec![],
            ));
        }
        if self.tables[id.obj()].is_deleted(id.row()) {
            return Err(RecError::new(
                "ENTITY_IS_DELETED",
                "entity is deleted",
                vec![],
            ));
        }
        let before = self.merged(obj, Some(id.row()), &[]);
        self.check_injected(obj, crate::world::WriteOp::Delete, Some(id), &before, ctx)?;
        let now = to_second(ctx.now);
        let row = id.row();
        for (name, v) in [
            ("IsDeleted", Value::Bool(true)),
            ("SystemModstamp", Value::DateTime(now)),
            ("LastModifiedDate", Value::DateTime(now)),
            ("LastModifiedById", Value::Ref(ctx.user)),
        ] {
            if let Some(c) = obj.col(name) {
                self.set_cell(id.obj(), c, row, v);
            }
        }
        self.set_deleted(id.obj(), row, Some(now));
        self.log_change(id, ChangeType::Delete, &[], &[], ctx);
        // Cascade to children.
        for (child, field) in obj.cascade {
            let Some(cobj) = schema.object(child) else {
                continue;
            };
            let Some(col) = cobj.col(field) else { continue };
            let kids: Vec<RecordId> = {
                let t = &self.tables[cobj.index];
                (0..t.len())
                    .filter(|r| !t.is_deleted(*r) && t.get(col, *r) == ValueRef::Ref(id))
                    .map(|r| RecordId::new(cobj.index, r as u64 + 1))
                    .collect()
            };
            for k in kids {
                self.delete(k, ctx)?;
            }
        }
        Ok(())
    }

    fn undelete(&mut self, id: RecordId, ctx: &WriteCtx) -> Result<(), RecError> {
        let obj = Schema::get().at(id.obj());
        if !self.tables[id.obj()].is_deleted(id.row()) {
            return Err(RecError::new(
                "UNDELETE_FAILED",
                "Entity is not in the recycle bin",
                vec![],
            ));
        }
        let now = to_second(ctx.now);
        for (name, v) in [
            ("IsDeleted", Value::Bool(false)),
            ("SystemModstamp", Value::DateTime(now)),
            ("LastModifiedDate", Value::DateTime(now)),
            ("LastModifiedById", Value::Ref(ctx.user)),
        ] {
            if let Some(c) = obj.col(name) {
                self.set_cell(id.obj(), c, id.row(), v);
            }
        }
        self.set_deleted(id.obj(), id.row(), None);
        self.log_change(id, ChangeType::Undelete, &[], &[], ctx);
        Ok(())
    }

    /// Counts an API request of a kind (usage and per-kind counter).
    pub fn count(&mut self, kind: &'static str) {
        self.api_used += 1;
        *self.counters.entry(kind).or_insert(0) += 1;
    }

    /// `api-usage=N/MAX`.
    pub fn limit_header(&self) -> String {
        format!("api-usage={}/{}", self.api_used, self.api_limit)
    }

    /// Stores a new locator and returns its id; evicts the user's oldest beyond 10.
    pub fn open_locator(&mut self, loc: Locator) -> String {
        let user = loc.user;
        let mut mine: Vec<(Millis, String)> = self
            .locators
            .iter()
            .filter(|(_, l)| l.user == user)
            .map(|(k, l)| (l.opened, k.clone()))
            .collect();
        if mine.len() >= MAX_LOCATORS_PER_USER {
            mine.sort();
            let excess = mine.len() + 1 - MAX_LOCATORS_PER_USER;
            for (_, k) in mine.into_iter().take(excess) {
                self.locators.remove(&k);
            }
        }
        self.locator_seq += 1;
        let id = ids::make_id("01g", &self.pod, self.locator_seq);
        self.locators.insert(id.clone(), loc);
        id
    }

    /// Users that match a username (case-insensitive).
    pub fn user_by_username(&self, username: &str) -> Option<RecordId> {
        let obj = Schema::get().object("User")?;
        let col = obj.col("Username")?;
        let t = &self.tables[obj.index];
        (0..t.len())
            .find(
                |r| matches!(t.get(col, *r), ValueRef::Text(u) if u.eq_ignore_ascii_case(username)),
            )
            .map(|r| RecordId::new(obj.index, r as u64 + 1))
    }

    /// The first user (the admin that owns seeded records by default).
    pub fn first_user(&self) -> Option<RecordId> {
        let obj = Schema::get().object("User")?;
        (!self.tables[obj.index].is_empty()).then(|| RecordId::new(obj.index, 1))
    }

    /// Formats a datetime the Salesforce way (helper for endpoints).
    pub fn fmt(ms: Millis) -> String {
        fmt_datetime(ms)
    }
}

fn field_accessor_for(obj: &ObjectDef, f: &FieldDef) -> crate::soql::Accessor {
    use crate::soql::Accessor;
    match (f.computed, f.column) {
        (Some(_), _) => Accessor::FullName {
            first: obj.col("FirstName").unwrap_or(usize::MAX),
            last: obj.col("LastName").unwrap_or(usize::MAX),
        },
        (None, Some(col)) => Accessor::Col {
            col,
            ftype: f.ftype,
        },
        (None, None) => Accessor::Id,
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl crate::cdc::RecordSource for Org {
    fn value(&self, id: RecordId, fi: usize) -> ValueRef<'_> {
        let obj = Schema::get().at(id.obj());
        match obj.fields.get(fi).and_then(|f| f.column) {
            Some(c) => self.tables[id.obj()].get(c, id.row()),
            None => ValueRef::Null,
        }
    }
    fn id18(&self, id: RecordId) -> String {
        Org::id18(self, id)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn change_log_entries_stay_48_bytes() {
        assert_eq!(std::mem::size_of::<super::Change>(), 48);
    }
}
