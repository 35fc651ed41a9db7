//! Everything the server holds: orgs, the clock, OAuth codes and tokens, and the
//! control operations shared by the Rust API and the HTTP control API.

use crate::org::{
    ChangeEntry, ConnectedApp, FailureKind, Mutation, Org, RecError, WriteCtx, parse_fields,
};
use crate::schema::{FieldType, Schema};
use crate::store::{RecordId, Value, ValueRef};
use crate::time::{Clock, Millis, date_to_days, fmt_date, fmt_datetime, to_second};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};

/// Errors of the control operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// Unknown org.
    #[error("unknown org: {0}")]
    UnknownOrg(String),
    /// Unknown user.
    #[error("unknown user: {0}")]
    UnknownUser(String),
    /// Unknown object type.
    #[error("unknown object type: {0}")]
    UnknownType(String),
    /// Unknown record.
    #[error("unknown record: {0}")]
    UnknownRecord(String),
    /// A seed reference (`@name`) that was not defined earlier.
    #[error("unknown seed reference: {0}")]
    UnknownRef(String),
    /// Duplicate username or consumer key.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// A record was refused by validation.
    #[error("record refused: {code}: {message} (record: {record})")]
    Refused {
        /// Salesforce status code.
        code: String,
        /// Message.
        message: String,
        /// Seed ref or type of the refused record.
        record: String,
    },
    /// Malformed input.
    #[error("bad input: {0}")]
    BadInput(String),
}

impl ControlError {
    fn refused(e: RecError, record: &str) -> ControlError {
        ControlError::Refused {
            code: e.code.to_string(),
            message: e.message,
            record: record.to_string(),
        }
    }
}

/// Options of a new org.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OrgSpec {
    /// Key used to address the org in seeds and the control API (default: the name).
    pub key: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Daily API allocation (default 15,000: Developer Edition).
    pub api_daily_limit: Option<u64>,
    /// Session idle timeout in seconds (default 7,200).
    pub session_timeout_seconds: Option<i64>,
    /// Records younger than this are not found by SOSL (default 0).
    pub search_index_lag_seconds: Option<i64>,
    /// Keep the change log (default true).
    pub change_log: Option<bool>,
    /// Objects selected for Change Data Capture (default none), e.g.
    /// `["Opportunity", "OpportunityContactRole"]`.
    pub cdc: Vec<String>,
    /// Page size caps of query results (default: full pages).
    pub query_pages: Option<crate::org::PagePolicy>,
}

/// What was created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrgInfo {
    /// Organization id (18 characters).
    pub org_id: String,
    /// Key.
    pub key: String,
    /// Name.
    pub name: String,
    /// Instance URL (the server's base URL).
    pub instance_url: String,
}

/// A connected app to create.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AppSpec {
    /// Name.
    pub name: Option<String>,
    /// Consumer key (generated when absent).
    pub consumer_key: Option<String>,
    /// Consumer secret (generated when absent).
    pub consumer_secret: Option<String>,
    /// Callback URL.
    pub callback_url: String,
    /// Refresh token rotation.
    pub rotate_refresh_tokens: bool,
    /// GET authorize approves at once as this username.
    pub auto_approve_user: Option<String>,
    /// The web-server flow requires the secret (default true).
    pub require_secret: Option<bool>,
}

/// A user to create.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct UserSpec {
    /// Seed reference name (`@name` in seed records).
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// Username (unique).
    pub username: String,
    /// E-mail.
    pub email: String,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: String,
    /// Password for the login form (default `password`).
    pub password: Option<String>,
    /// Active (default true).
    pub active: Option<bool>,
    /// UserType (default Standard).
    pub user_type: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Mobile phone.
    pub mobile_phone: Option<String>,
    /// Department.
    pub department: Option<String>,
}

/// A user that was created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    /// User id (18 characters).
    pub id: String,
    /// Username.
    pub username: String,
}

/// A record to seed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SeedRecord {
    /// Object name.
    #[serde(rename = "type")]
    pub object: String,
    /// Local name other records use as `"@name"`.
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// Field values (`"@name"` references, `"$now-3d"` relative times).
    #[serde(default)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// One org of a seed file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SeedOrg {
    /// Org options.
    #[serde(flatten)]
    pub spec: OrgSpec,
    /// Connected apps.
    pub apps: Vec<AppSpec>,
    /// Users (the first is the default owner of seeded records).
    pub users: Vec<UserSpec>,
    /// Records, in dependency order.
    pub records: Vec<SeedRecord>,
}

/// The `--seed FILE` format.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct SeedFile {
    /// Orgs.
    pub orgs: Vec<SeedOrg>,
}

/// API usage of an org.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// Requests counted against the allocation.
    pub api_used: u64,
    /// Daily allocation.
    pub api_limit: u64,
    /// Requests by endpoint kind (`query`, `queryMore`, `sobjectCreate`, …).
    pub by_kind: BTreeMap<String, u64>,
}

/// Memory held by an org (heap bytes, spare capacity included).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Footprint {
    /// Records (users included, deleted ones too).
    pub records: usize,
    /// Bytes of the record columns.
    pub records_bytes: usize,
    /// Change log entries.
    pub change_log_entries: usize,
    /// Bytes of the change log.
    pub change_log_bytes: usize,
}

/// A fault to inject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
#[allow(
    clippy::large_enum_variant,
    reason = "a few faults per test, built by hand: boxing RecordFault would cost every caller a Box::new for nothing"
)]
pub enum Fault {
    /// Every access token of the org dies; refresh still works.
    ExpireSessions,
    /// Every refresh token of the org dies (and their access tokens).
    RevokeRefreshTokens,
    /// The next `count` API requests fail.
    FailNext {
        /// How many.
        count: u64,
        /// How.
        kind: FailureKind,
    },
    /// The next `count` API requests of one kind, as the counters name them
    /// (`query`, `search`, `collectionsCreate`, …), fail; the others pass.
    FailNextOf {
        /// The kind of request.
        api: String,
        /// How many.
        count: u64,
        /// How.
        kind: FailureKind,
    },
    /// Latency added to every request of the org.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Weather: every request of the org waits a random time between `min_ms` and
    /// `max_ms`, and `fail_percent` of them fail with one of `kinds` (drawn at
    /// random), as a busy org's API behaves.
    Weather {
        /// Shortest added latency.
        min_ms: u64,
        /// Longest added latency.
        max_ms: u64,
        /// Share of requests that fail (0..=100).
        fail_percent: u8,
        /// Transient failures to draw from.
        kinds: Vec<FailureKind>,
    },
    /// Sets the API usage counter.
    SetApiUsage {
        /// Requests used.
        used: u64,
    },
    /// Sets the daily allocation.
    SetApiLimit {
        /// Allocation.
        limit: u64,
    },
    /// Makes matching record writes fail with a permanent per-record error,
    /// as a validation rule, trigger or sharing rule of the org would.
    RecordError(RecordFault),
    /// Shortens query pages (Salesforce: "There is no guarantee that the
    /// requested batch size is the actual batch size").
    QueryPages(crate::org::PagePolicy),
    /// Removes the injected failures, latency, record errors and page caps.
    Clear,
}

/// Which writes a [`RecordFault`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    /// Creates, updates and deletes.
    #[default]
    Any,
    /// Inserts (REST create, collections POST, composite).
    Create,
    /// Updates (PATCH, collections PATCH, composite).
    Update,
    /// Deletes.
    Delete,
}

/// A permanent per-record failure: every write of `object` (by `operation`)
/// that matches fails with `status_code`. Match on `record_id` (updates and
/// deletes), or on one field of the record as it would be after the write
/// (`field` with `equals` a JSON value, or `contains` a substring), or
/// neither (every write of the object). `times` limits how often it fires
/// (default: every time). Applies to REST, collections and composite writes,
/// never to seeds or the control API.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordFault {
    /// Object, e.g. `Task`.
    pub object: String,
    /// Which writes.
    pub operation: WriteOp,
    /// Only this record (15 or 18 characters).
    pub record_id: Option<String>,
    /// Field whose value is tested.
    pub field: Option<String>,
    /// The field's value equals this JSON value (ids compare on 15 characters).
    pub equals: Option<serde_json::Value>,
    /// The field's text contains this.
    pub contains: Option<String>,
    /// Salesforce status code, e.g. `FIELD_CUSTOM_VALIDATION_EXCEPTION`.
    pub status_code: String,
    /// Message (default: Salesforce's usual wording for the code).
    pub message: Option<String>,
    /// `fields` of the error (default: `[field]` for
    /// `INVALID_CROSS_REFERENCE_KEY`, else none).
    pub fields: Option<Vec<String>>,
    /// Fire this many times only.
    pub times: Option<u64>,
}

/// An OAuth access token (a session).
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// Org index.
    pub org: usize,
    /// User.
    pub user: RecordId,
    /// App index in the org.
    pub app: usize,
    /// Refresh token it came from.
    pub refresh: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Last use (ms), for the idle timeout.
    pub last_used: Millis,
}

/// An OAuth refresh token.
#[derive(Debug, Clone)]
pub struct RefreshToken {
    /// Org index.
    pub org: usize,
    /// User.
    pub user: RecordId,
    /// App index.
    pub app: usize,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Approval order (the 6th approval revokes the lowest).
    pub seq: u64,
}

/// An authorization code.
#[derive(Debug, Clone)]
pub struct AuthCode {
    /// Org index.
    pub org: usize,
    /// App index.
    pub app: usize,
    /// User.
    pub user: RecordId,
    /// redirect_uri given to authorize.
    pub redirect_uri: String,
    /// PKCE challenge.
    pub challenge: Option<String>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry (ms).
    pub expires: Millis,
    /// Already exchanged.
    pub used: bool,
}

/// Lifetime of an authorization code.
pub const CODE_TTL_MS: Millis = 15 * 60 * 1000;
/// Refresh tokens kept per user and app.
pub const MAX_REFRESH_PER_USER_APP: usize = 5;

/// The whole emulated world.
#[derive(Debug)]
pub struct World {
    /// Base URL (instance URL of every org).
    pub base_url: String,
    /// Clock.
    pub clock: Clock,
    /// Orgs.
    pub orgs: Vec<Org>,
    /// Org keys.
    pub keys: Vec<String>,
    /// consumer key → (org, app).
    pub apps: HashMap<String, (usize, usize)>,
    /// Access tokens.
    pub access: HashMap<String, AccessToken>,
    /// Refresh tokens.
    pub refresh: HashMap<String, RefreshToken>,
    /// Authorization codes.
    pub codes: HashMap<String, AuthCode>,
    /// User interface sessions (the `sid` cookie of a browser that logged in).
    pub ui_sessions: HashMap<String, UiSession>,
    refresh_seq: u64,
    /// Seed applied at start (re-applied by reset).
    pub initial_seed: Option<SeedFile>,
    /// Default daily allocation of new orgs.
    pub default_api_limit: u64,
}

/// A browser logged in to an org's user interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiSession {
    /// Org index.
    pub org: usize,
    /// The user.
    pub user: RecordId,
}

/// Random alphanumeric string.
pub fn random_token(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// base64(HMAC-SHA256(key = secret, msg = id + issued_at)).
pub fn sign(secret: &str, id: &str, issued_at: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Parses `$now`, `$now-3d`, `$now+90m`, `$today`, `$today+14d` (units d, h, m, s).
fn relative_time(text: &str, now: Millis) -> Option<(Millis, bool)> {
    let (base, rest, is_date) = if let Some(r) = text.strip_prefix("$now") {
        (now, r, false)
    } else if let Some(r) = text.strip_prefix("$today") {
        (now.div_euclid(86_400_000) * 86_400_000, r, true)
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some((base, is_date));
    }
    let (sign, mut body) = match rest.as_bytes().first()? {
        b'+' => (1i64, &rest[1..]),
        b'-' => (-1i64, &rest[1..]),
        _ => return None,
    };
    if body.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    while !body.is_empty() {
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits >= body.len() {
            return None;
        }
        let n: i64 = body[..digits].parse().ok()?;
        let unit = match &body[digits..digits + 1] {
            "d" => 86_400_000,
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            _ => return None,
        };
        total += n * unit;
        body = &body[digits + 1..];
    }
    Some((base + sign * total, is_date))
}

impl World {
    /// An empty world served at `base_url`.
    pub fn new(base_url: String, default_api_limit: u64) -> World {
        World {
            base_url,
            clock: Clock::default(),
            orgs: Vec::new(),
            keys: Vec::new(),
            apps: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            codes: HashMap::new(),
            ui_sessions: HashMap::new(),
            refresh_seq: 0,
            initial_seed: None,
            default_api_limit,
        }
    }

    /// Current emulated time.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// Finds an org by 15/18-character id or key.
    pub fn org_index(&self, key: &str) -> Result<usize, ControlError> {
        let id15 = crate::ids::normalize15(key);
        self.orgs
            .iter()
            .position(|o| {
                Some(&o.id[..15]) == id15.as_deref() || self.keys[o.index] == key || o.name == key
            })
            .ok_or_else(|| ControlError::UnknownOrg(key.to_string()))
    }

    /// Creates an org.
    pub fn create_org(&mut self, spec: &OrgSpec) -> Result<OrgInfo, ControlError> {
        let index = self.orgs.len();
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| format!("Emulated Org {}", index + 1));
        let key = spec.key.clone().unwrap_or_else(|| name.clone());
        if self.keys.contains(&key) {
            return Err(ControlError::Duplicate(format!("org key {key}")));
        }
        let mut org = Org::new(
            index,
            name.clone(),
            spec.api_daily_limit.unwrap_or(self.default_api_limit),
            self.now(),
        );
        if let Some(s) = spec.session_timeout_seconds {
            org.session_timeout_ms = s * 1000;
        }
        if let Some(s) = spec.search_index_lag_seconds {
            org.search_lag_ms = s * 1000;
        }
        if let Some(c) = spec.change_log {
            org.change_log_enabled = c;
        }
        if let Some(p) = &spec.query_pages {
            p.validate().map_err(ControlError::BadInput)?;
            org.page_policy = p.clone();
        }
        for name in &spec.cdc {
            let obj = crate::cdc::cdc_object(name).ok_or_else(|| {
                ControlError::BadInput(format!("Change Data Capture is not available for {name}"))
            })?;
            org.cdc.set_enabled(obj, true);
        }
        let info = OrgInfo {
            org_id: org.id.clone(),
            key: key.clone(),
            name,
            instance_url: self.base_url.clone(),
        };
        self.orgs.push(org);
        self.keys.push(key);
        Ok(info)
    }

    /// Creates a connected app.
    pub fn create_app(&mut self, org: usize, spec: &AppSpec) -> Result<ConnectedApp, ControlError> {
        let key = spec
            .consumer_key
            .clone()
            .unwrap_or_else(|| format!("3MVG9{}", random_token(80)));
        if self.apps.contains_key(&key) {
            return Err(ControlError::Duplicate(format!("consumer key {key}")));
        }
        if spec.callback_url.is_empty() {
            return Err(ControlError::BadInput("callback_url is required".into()));
        }
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let app = ConnectedApp {
            name: spec.name.clone().unwrap_or_else(|| "Connected App".into()),
            consumer_key: key.clone(),
            consumer_secret: spec
                .consumer_secret
                .clone()
                .unwrap_or_else(|| random_token(64).to_uppercase()),
            callback_url: spec.callback_url.clone(),
            rotate_refresh_tokens: spec.rotate_refresh_tokens,
            auto_approve_user: spec.auto_approve_user.clone(),
            require_secret: spec.require_secret.unwrap_or(true),
        };
        o.apps.push(app.clone());
        self.apps.insert(key, (org, o.apps.len() - 1));
        Ok(app)
    }

    /// Updates an app's flags (auto-approve, rotation, callback).
    pub fn update_app(
        &mut self,
        consumer_key: &str,
        spec: &AppSpec,
    ) -> Result<ConnectedApp, ControlError> {
        let (org, app) = *self.apps.get(consumer_key).ok_or_else(|| {
            ControlError::BadInput(format!("unknown consumer key {consumer_key}"))
        })?;
        let a = &mut self.orgs[org].apps[app];
        if !spec.callback_url.is_empty() {
            a.callback_url = spec.callback_url.clone();
        }
        a.rotate_refresh_tokens = spec.rotate_refresh_tokens;
        a.auto_approve_user = spec.auto_approve_user.clone();
        if let Some(r) = spec.require_secret {
            a.require_secret = r;
        }
        Ok(a.clone())
    }

    /// Creates a user.
    pub fn create_user(&mut self, org: usize, spec: &UserSpec) -> Result<UserInfo, ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        if o.user_by_username(&spec.username).is_some() {
            return Err(ControlError::Duplicate(format!(
                "username {}",
                spec.username
            )));
        }
        let schema = Schema::get();
        let obj = schema
            .object("User")
            .ok_or_else(|| ControlError::UnknownType("User".into()))?;
        let mut map = serde_json::Map::new();
        map.insert("Username".into(), spec.username.clone().into());
        map.insert("Email".into(), spec.email.clone().into());
        map.insert("LastName".into(), spec.last_name.clone().into());
        let alias: String = spec
            .first_name
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(1)
            .chain(spec.last_name.chars().take(4))
            .collect::<String>()
            .to_lowercase();
        map.insert("Alias".into(), alias.into());
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                map.insert(k.into(), v.clone().into());
            }
        };
        opt("FirstName", &spec.first_name);
        opt("Title", &spec.title);
        opt("Phone", &spec.phone);
        opt("MobilePhone", &spec.mobile_phone);
        opt("Department", &spec.department);
        map.insert("IsActive".into(), spec.active.unwrap_or(true).into());
        map.insert(
            "UserType".into(),
            spec.user_type
                .clone()
                .unwrap_or_else(|| "Standard".into())
                .into(),
        );
        map.insert("TimeZoneSidKey".into(), "Europe/Paris".into());
        let fields =
            parse_fields(obj, &map).map_err(|e| ControlError::refused(e, &spec.username))?;
        let acting = o
            .first_user()
            .unwrap_or_else(|| RecordId::new(obj.index, o.tables[obj.index].len() as u64 + 1));
        let ctx = WriteCtx {
            user: acting,
            client: None,
            version: None,
            now,
            seed: true,
        };
        let id = o
            .mutate(
                Mutation::Create {
                    obj: obj.index,
                    fields,
                },
                &ctx,
            )
            .map_err(|e| ControlError::refused(e, &spec.username))?;
        o.passwords.insert(
            id,
            spec.password.clone().unwrap_or_else(|| "password".into()),
        );
        if let Some(r) = &spec.reference {
            o.seed_refs.insert(r.clone(), o.id18(id));
        }
        Ok(UserInfo {
            id: o.id18(id),
            username: spec.username.clone(),
        })
    }

    /// Activates or deactivates a user (by id or username).
    /// See [`crate::access::Access`].
    pub fn set_access(
        &mut self,
        org: usize,
        change: &crate::access::AccessChange,
    ) -> Result<(), ControlError> {
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let user = match change.user.as_deref() {
            Some(u) => Some(
                o.parse_id(u)
                    .or_else(|| o.user_by_username(u))
                    .ok_or_else(|| ControlError::UnknownUser(u.to_string()))?,
            ),
            None => None,
        };
        if user.is_none() && (!change.objects.is_empty() || change.api_enabled.is_some()) {
            return Err(ControlError::UnknownUser(
                "object permissions and API Enabled need a user".into(),
            ));
        }
        for p in &change.objects {
            if Schema::get().object(&p.object).is_none() {
                return Err(ControlError::UnknownType(p.object.clone()));
            }
        }
        if let Some(user) = user {
            for p in &change.objects {
                o.access.set(user, &p.object, p.permission, p.granted);
            }
            if let Some(enabled) = change.api_enabled {
                o.access.set_api_enabled(user, enabled);
            }
        }
        if let Some(enabled) = change.notes_enabled {
            o.access.notes_disabled = !enabled;
        }
        Ok(())
    }

    pub fn set_user_active(
        &mut self,
        org: usize,
        user: &str,
        active: bool,
    ) -> Result<(), ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let id = o
            .parse_id(user)
            .or_else(|| o.user_by_username(user))
            .ok_or_else(|| ControlError::UnknownUser(user.to_string()))?;
        let obj = Schema::get().at(id.obj());
        let fi = obj
            .by_name
            .get("isactive")
            .copied()
            .ok_or_else(|| ControlError::UnknownUser(user.to_string()))?;
        let ctx = WriteCtx {
            user: o.first_user().unwrap_or(id),
            client: None,
            version: None,
            now,
            seed: true,
        };
        o.mutate(
            Mutation::Update {
                id,
                fields: vec![(fi, Value::Bool(active))],
            },
            &ctx,
        )
        .map_err(|e| ControlError::refused(e, user))?;
        Ok(())
    }

    fn resolve_seed_value(
        v: &serde_json::Value,
        refs: &HashMap<String, String>,
        now: Millis,
        ftype: Option<FieldType>,
    ) -> Result<serde_json::Value, ControlError> {
        if let serde_json::Value::String(s) = v {
            if let Some(name) = s.strip_prefix('@') {
                return refs
                    .get(name)
                    .map(|id| serde_json::Value::String(id.clone()))
                    .ok_or_else(|| ControlError::UnknownRef(s.clone()));
            }
            if s.starts_with('$')
                && let Some((ms, _)) = relative_time(s, now)
            {
                let text = match ftype {
                    Some(FieldType::Date) => fmt_date(date_to_days(
                        chrono::DateTime::from_timestamp_millis(ms)
                            .map(|d| d.date_naive())
                            .unwrap_or_default(),
                    )),
                    _ => fmt_datetime(to_second(ms)),
                };
                return Ok(serde_json::Value::String(text));
            }
        }
        Ok(v.clone())
    }

    /// Seeds records into an org. `@name` references resolve to records seeded
    /// earlier (and users created with a `ref`).
    pub fn seed_records(
        &mut self,
        org: usize,
        records: &[SeedRecord],
    ) -> Result<Vec<String>, ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let refs = &mut std::mem::take(&mut o.seed_refs);
        o.begin_batch(now);
        let result = Self::seed_into(o, records, refs, now);
        o.end_batch();
        o.seed_refs = std::mem::take(refs);
        result
    }

    fn seed_into(
        o: &mut Org,
        records: &[SeedRecord],
        refs: &mut HashMap<String, String>,
        now: Millis,
    ) -> Result<Vec<String>, ControlError> {
        let schema = Schema::get();
        let mut created = Vec::with_capacity(records.len());
        for rec in records {
            let obj = schema
                .object(&rec.object)
                .ok_or_else(|| ControlError::UnknownType(rec.object.clone()))?;
            let label = rec.reference.clone().unwrap_or_else(|| rec.object.clone());
            let mut map = serde_json::Map::new();
            let mut deleted = false;
            for (k, v) in &rec.fields {
                if k.eq_ignore_ascii_case("IsDeleted") {
                    deleted = v.as_bool().unwrap_or(false);
                    continue;
                }
                let ftype = obj.field(k).map(|f| f.ftype);
                map.insert(k.clone(), Self::resolve_seed_value(v, refs, now, ftype)?);
            }
            let fields = parse_fields(obj, &map).map_err(|e| ControlError::refused(e, &label))?;
            let user = o.first_user().ok_or_else(|| {
                ControlError::BadInput("create a user before seeding records".into())
            })?;
            // Records are stamped at their LastModifiedDate (or CreatedDate) when given.
            let stamp = ["LastModifiedDate", "CreatedDate"]
                .iter()
                .filter_map(|n| obj.by_name.get(&n.to_ascii_lowercase()))
                .find_map(|fi| {
                    fields.iter().find_map(|(x, v)| match v {
                        Value::DateTime(t) if x == fi => Some(*t),
                        _ => None,
                    })
                })
                .map_or(to_second(now), to_second);
            let mut fields = fields;
            if obj.field("SystemModstamp").is_some()
                && !fields
                    .iter()
                    .any(|(fi, _)| obj.fields[*fi].name == "SystemModstamp")
                && let Some(fi) = obj.by_name.get("systemmodstamp")
            {
                fields.push((*fi, Value::DateTime(stamp)));
            }
            let ctx = WriteCtx {
                user,
                client: None,
                version: None,
                now: stamp,
                seed: true,
            };
            let id = o
                .mutate(
                    Mutation::Create {
                        obj: obj.index,
                        fields,
                    },
                    &ctx,
                )
                .map_err(|e| ControlError::refused(e, &label))?;
            if deleted {
                o.mutate(Mutation::Delete { id }, &ctx)
                    .map_err(|e| ControlError::refused(e, &label))?;
            }
            let id18 = o.id18(id);
            if let Some(r) = &rec.reference {
                refs.insert(r.clone(), id18.clone());
            }
            created.push(id18);
        }
        Ok(created)
    }

    /// Applies a seed file; returns the orgs created.
    pub fn apply_seed(&mut self, seed: &SeedFile) -> Result<Vec<OrgInfo>, ControlError> {
        let mut infos = Vec::new();
        for so in &seed.orgs {
            let info = self.create_org(&so.spec)?;
            let org = self.orgs.len() - 1;
            for u in &so.users {
                self.create_user(org, u)?;
            }
            for a in &so.apps {
                self.create_app(org, a)?;
            }
            self.seed_records(org, &so.records)?;
            self.orgs[org].shrink_to_fit();
            infos.push(info);
        }
        Ok(infos)
    }

    /// Records of a type (optionally with deleted ones), as JSON with every field.
    pub fn records(
        &self,
        org: usize,
        object: &str,
        include_deleted: bool,
    ) -> Result<Vec<serde_json::Value>, ControlError> {
        let o = self
            .orgs
            .get(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let obj = Schema::get()
            .object(object)
            .ok_or_else(|| ControlError::UnknownType(object.to_string()))?;
        let t = &o.tables[obj.index];
        Ok((0..t.len())
            .filter(|r| include_deleted || !t.is_deleted(*r))
            .map(|r| {
                o.record_json(
                    RecordId::new(obj.index, r as u64 + 1),
                    None,
                    crate::API_VERSION,
                )
            })
            .collect())
    }

    /// One record (deleted or not).
    /// Edits a record as a user saving it in Salesforce's UI would: its fields
    /// change, `LastModifiedDate` and `SystemModstamp` move to now (no API call is
    /// counted, no latency applies).
    /// Merges `losers` into `master` as a user would in Salesforce (the org's
    /// first user acting).
    pub fn merge_records(
        &mut self,
        org: usize,
        master: &str,
        losers: &[String],
    ) -> Result<(), ControlError> {
        let (o, ctx) = self.acting(org)?;
        let parse = |id: &str| {
            o.parse_id(id)
                .ok_or_else(|| ControlError::UnknownRecord(id.to_string()))
        };
        let m = parse(master)?;
        let l = losers
            .iter()
            .map(|id| parse(id))
            .collect::<Result<Vec<_>, _>>()?;
        o.merge(m, &l, &ctx).map_err(|e| ControlError::Refused {
            code: e.code.to_string(),
            message: e.message.clone(),
            record: master.to_string(),
        })
    }

    /// Converts a lead as a user would in Salesforce; the ids of the account,
    /// contact and opportunity created.
    pub fn convert_lead(
        &mut self,
        org: usize,
        lead: &str,
        opportunity: bool,
    ) -> Result<(String, String, Option<String>), ControlError> {
        let (o, ctx) = self.acting(org)?;
        let l = o
            .parse_id(lead)
            .ok_or_else(|| ControlError::UnknownRecord(lead.to_string()))?;
        let c = o
            .convert_lead(l, opportunity, &ctx)
            .map_err(|e| ControlError::Refused {
                code: e.code.to_string(),
                message: e.message.clone(),
                record: lead.to_string(),
            })?;
        Ok((
            o.id18(c.account),
            o.id18(c.contact),
            c.opportunity.map(|x| o.id18(x)),
        ))
    }

    /// The org, and a write by its first user now.
    fn acting(&mut self, org: usize) -> Result<(&mut Org, WriteCtx), ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let user = o
            .first_user()
            .ok_or_else(|| ControlError::UnknownUser("the org has no user".into()))?;
        let ctx = WriteCtx {
            user,
            client: None,
            version: None,
            now,
            seed: false,
        };
        Ok((o, ctx))
    }

    pub fn edit_record(
        &mut self,
        org: usize,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let r = o
            .parse_id(id)
            .ok_or_else(|| ControlError::UnknownRecord(id.to_string()))?;
        let obj = Schema::get().objects[r.obj()].clone();
        let refused = |e: crate::org::RecError| ControlError::Refused {
            code: e.code.to_string(),
            message: e.message.clone(),
            record: id.to_string(),
        };
        let fields = crate::org::parse_fields(&obj, fields).map_err(refused)?;
        let user = o
            .first_user()
            .ok_or_else(|| ControlError::UnknownUser("the org has no user".into()))?;
        let ctx = WriteCtx {
            user,
            client: None,
            version: None,
            now,
            seed: false,
        };
        o.mutate(Mutation::Update { id: r, fields }, &ctx)
            .map(|_| ())
            .map_err(refused)
    }

    pub fn record(&self, org: usize, id: &str) -> Result<serde_json::Value, ControlError> {
        let o = self
            .orgs
            .get(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let r = o
            .parse_id(id)
            .ok_or_else(|| ControlError::UnknownRecord(id.to_string()))?;
        Ok(o.record_json(r, None, crate::API_VERSION))
    }

    /// API usage.
    pub fn counters(&self, org: usize) -> Result<Counters, ControlError> {
        let o = self
            .orgs
            .get(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        Ok(Counters {
            api_used: o.api_used,
            api_limit: o.api_limit,
            by_kind: o
                .counters
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
        })
    }

    /// Zeroes the per-kind counters and the usage.
    pub fn reset_counters(&mut self, org: usize) -> Result<(), ControlError> {
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        o.counters.clear();
        o.api_used = 0;
        Ok(())
    }

    /// The change log.
    pub fn changes(&self, org: usize) -> Result<Vec<ChangeEntry>, ControlError> {
        Ok(self
            .orgs
            .get(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?
            .change_entries())
    }

    /// Releases the spare capacity of an org's columns and change log (after a
    /// bulk load made of many seed calls).
    pub fn shrink_to_fit(&mut self, org: usize) -> Result<(), ControlError> {
        self.orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?
            .shrink_to_fit();
        Ok(())
    }

    /// Heap bytes held by an org's records and change log.
    pub fn footprint(&self, org: usize) -> Result<Footprint, ControlError> {
        let o = self
            .orgs
            .get(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let (records_bytes, change_log_bytes) = o.footprint();
        Ok(Footprint {
            records: o.tables.iter().map(|t| t.len()).sum(),
            records_bytes,
            change_log_entries: o.change_log_len(),
            change_log_bytes,
        })
    }

    /// Injects a fault.
    pub fn inject(&mut self, org: usize, fault: &Fault) -> Result<(), ControlError> {
        if org >= self.orgs.len() {
            return Err(ControlError::UnknownOrg(org.to_string()));
        }
        match fault {
            Fault::ExpireSessions => self.access.retain(|_, t| t.org != org),
            Fault::RevokeRefreshTokens => {
                self.refresh.retain(|_, t| t.org != org);
                self.access
                    .retain(|_, t| t.org != org || t.refresh.is_none());
            }
            Fault::FailNext { count, kind } => {
                let o = &mut self.orgs[org];
                o.faults.fail_next = *count;
                o.faults.fail_kind = Some(*kind);
                o.faults.fail_only = None;
            }
            Fault::FailNextOf { api, count, kind } => {
                let o = &mut self.orgs[org];
                o.faults.fail_next = *count;
                o.faults.fail_kind = Some(*kind);
                o.faults.fail_only = Some(api.clone());
            }
            Fault::Latency { ms } => self.orgs[org].faults.latency_ms = *ms,
            Fault::Weather {
                min_ms,
                max_ms,
                fail_percent,
                kinds,
            } => {
                let f = &mut self.orgs[org].faults;
                f.latency_ms = *min_ms;
                f.jitter_ms = max_ms.saturating_sub(*min_ms);
                f.fail_percent = (*fail_percent).min(100);
                f.random_kinds = kinds.clone();
            }
            Fault::SetApiUsage { used } => self.orgs[org].api_used = *used,
            Fault::SetApiLimit { limit } => self.orgs[org].api_limit = *limit,
            Fault::RecordError(spec) => {
                let fault = crate::org::InjectedError::compile(&self.orgs[org], spec)
                    .map_err(ControlError::BadInput)?;
                self.orgs[org].record_faults.push(fault);
            }
            Fault::QueryPages(policy) => {
                policy.validate().map_err(ControlError::BadInput)?;
                self.orgs[org].page_policy = policy.clone();
            }
            Fault::Clear => {
                let o = &mut self.orgs[org];
                o.faults = Default::default();
                o.record_faults.clear();
                o.page_policy = Default::default();
            }
        }
        Ok(())
    }

    /// Selects (or deselects) an object for Change Data Capture.
    pub fn set_cdc(&mut self, org: usize, object: &str, enabled: bool) -> Result<(), ControlError> {
        let obj = crate::cdc::cdc_object(object).ok_or_else(|| {
            ControlError::BadInput(format!("Change Data Capture is not available for {object}"))
        })?;
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        o.cdc_sync();
        o.cdc.set_enabled(obj, enabled);
        Ok(())
    }

    /// Sets the event retention window of an org (default 72 hours).
    pub fn set_cdc_retention(&mut self, org: usize, ms: Millis) -> Result<(), ControlError> {
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        o.cdc.retention_ms = ms;
        Ok(())
    }

    /// Publishes gap events: `GAP_CREATE|UPDATE|DELETE|UNDELETE` for record
    /// ids (one event per object, ids grouped), or `GAP_OVERFLOW` for
    /// `object` (no record ids). The objects must have CDC enabled.
    pub fn inject_gap(
        &mut self,
        org: usize,
        change_type: crate::cdc::EventType,
        ids: &[String],
        object: Option<&str>,
    ) -> Result<(), ControlError> {
        use crate::cdc::EventType;
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        o.cdc_sync();
        o.cdc.prune(now);
        let user = o.first_user().map(|u| o.id18(u)).unwrap_or_default();
        let check = |o: &Org, obj: usize| -> Result<(), ControlError> {
            if crate::cdc::schema_for_obj(obj).is_none() || !o.cdc.is_enabled(obj) {
                return Err(ControlError::BadInput(format!(
                    "Change Data Capture is not enabled for {}",
                    Schema::get().at(obj).name
                )));
            }
            Ok(())
        };
        match change_type {
            EventType::GapOverflow => {
                let name = object
                    .ok_or_else(|| ControlError::BadInput("GAP_OVERFLOW needs an object".into()))?;
                let obj = Schema::get()
                    .object(name)
                    .map(|d| d.index)
                    .ok_or_else(|| ControlError::UnknownType(name.to_string()))?;
                check(o, obj)?;
                o.cdc.publish_gap(change_type, obj, Vec::new(), user, now);
            }
            t if t.is_gap_record() => {
                if ids.is_empty() {
                    return Err(ControlError::BadInput(
                        "a gap event needs record ids".into(),
                    ));
                }
                let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
                for text in ids {
                    let r = o
                        .parse_id(text)
                        .ok_or_else(|| ControlError::UnknownRecord(text.clone()))?;
                    check(o, r.obj())?;
                    let id18 = o.id18(r);
                    match groups.iter_mut().find(|(obj, _)| *obj == r.obj()) {
                        Some((_, v)) => v.push(id18),
                        None => groups.push((r.obj(), vec![id18])),
                    }
                }
                for (obj, v) in groups {
                    o.cdc.publish_gap(change_type, obj, v, user.clone(), now);
                }
            }
            other => {
                return Err(ControlError::BadInput(format!(
                    "{} is not a gap event type",
                    other.symbol()
                )));
            }
        }
        Ok(())
    }

    /// Restores deleted records from the recycle bin (one transaction; the
    /// REST API has no undelete).
    pub fn undelete(&mut self, org: usize, ids: &[String]) -> Result<(), ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        let mut parsed = Vec::new();
        for text in ids {
            parsed.push(
                o.parse_id(text)
                    .ok_or_else(|| ControlError::UnknownRecord(text.clone()))?,
            );
        }
        o.begin_batch(now);
        let mut result = Ok(());
        for (r, text) in parsed.into_iter().zip(ids) {
            let ctx = WriteCtx {
                user: o.first_user().unwrap_or(r),
                client: None,
                version: None,
                now,
                seed: true,
            };
            if let Err(e) = o.mutate(Mutation::Undelete { id: r }, &ctx) {
                result = Err(ControlError::refused(e, text));
                break;
            }
        }
        o.end_batch();
        result
    }

    /// The events kept on an org's bus (headers), oldest first.
    pub fn cdc_events(&mut self, org: usize) -> Result<Vec<crate::cdc::EventInfo>, ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        o.cdc_sync();
        o.cdc.prune(now);
        Ok(o.cdc.all_events().map(|e| e.info()).collect())
    }

    /// CDC settings and bus position of an org, as JSON.
    pub fn cdc_state(&mut self, org: usize) -> Result<serde_json::Value, ControlError> {
        let now = self.now();
        let o = self
            .orgs
            .get_mut(org)
            .ok_or_else(|| ControlError::UnknownOrg(org.to_string()))?;
        o.cdc.prune(now);
        let tip = o.cdc.tip();
        let bytes = crate::cdc::replay_bytes(tip);
        Ok(serde_json::json!({
            "objects": o.cdc.enabled_names(),
            "retention_seconds": o.cdc.retention_ms / 1000,
            "events": o.cdc.len(),
            "latest_replay_id": {
                "value": tip,
                "base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
                "hex": bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            },
            "topics": crate::cdc::schemas().iter().map(|s| s.topic.clone()).collect::<Vec<_>>(),
        }))
    }

    /// Forgets every org, token and code, then re-applies the initial seed.
    pub fn reset(&mut self) -> Result<Vec<OrgInfo>, ControlError> {
        self.orgs.clear();
        self.keys.clear();
        self.apps.clear();
        self.access.clear();
        self.refresh.clear();
        self.codes.clear();
        match self.initial_seed.clone() {
            Some(seed) => self.apply_seed(&seed),
            None => Ok(Vec::new()),
        }
    }

    /// Issues an access token (and a refresh token when the scopes ask for one):
    /// the end of a successful authorization-code exchange.
    pub fn issue_tokens(
        &mut self,
        org: usize,
        app: usize,
        user: RecordId,
        scopes: Vec<String>,
    ) -> serde_json::Value {
        let wants_refresh = scopes
            .iter()
            .any(|s| s == "refresh_token" || s == "offline_access");
        let refresh = if wants_refresh {
            Some(self.new_refresh_token(org, app, user, scopes.clone()))
        } else {
            None
        };
        self.token_response(org, app, user, scopes, refresh.clone(), refresh.is_some())
    }

    fn new_refresh_token(
        &mut self,
        org: usize,
        app: usize,
        user: RecordId,
        scopes: Vec<String>,
    ) -> String {
        // At most 5 per user and app: the oldest goes silently.
        let mut mine: Vec<(u64, String)> = self
            .refresh
            .iter()
            .filter(|(_, t)| t.org == org && t.app == app && t.user == user)
            .map(|(k, t)| (t.seq, k.clone()))
            .collect();
        if mine.len() >= MAX_REFRESH_PER_USER_APP {
            mine.sort();
            let excess = mine.len() + 1 - MAX_REFRESH_PER_USER_APP;
            for (_, k) in mine.into_iter().take(excess) {
                self.revoke_refresh(&k);
            }
        }
        self.refresh_seq += 1;
        let token = format!("5Aep861{}", random_token(80));
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                org,
                user,
                app,
                scopes,
                seq: self.refresh_seq,
            },
        );
        token
    }

    /// Revokes a refresh token and its access tokens.
    pub fn revoke_refresh(&mut self, token: &str) {
        self.refresh.remove(token);
        self.access
            .retain(|_, a| a.refresh.as_deref() != Some(token));
    }

    /// Builds the token endpoint's JSON and records the new access token.
    pub fn token_response(
        &mut self,
        org: usize,
        app: usize,
        user: RecordId,
        scopes: Vec<String>,
        refresh: Option<String>,
        include_refresh: bool,
    ) -> serde_json::Value {
        let now = self.now();
        let o = &self.orgs[org];
        let access = format!("{}!AQ{}", &o.id[..15], random_token(94));
        let id_url = format!("{}/id/{}/{}", self.base_url, o.id, o.id18(user));
        let issued_at = now.to_string();
        let signature = sign(&o.apps[app].consumer_secret, &id_url, &issued_at);
        let mut body = serde_json::Map::new();
        body.insert("access_token".into(), access.as_str().into());
        if include_refresh && let Some(r) = &refresh {
            body.insert("refresh_token".into(), r.as_str().into());
        }
        body.insert("signature".into(), signature.into());
        body.insert("scope".into(), scopes.join(" ").into());
        body.insert("instance_url".into(), self.base_url.as_str().into());
        body.insert("id".into(), id_url.into());
        body.insert("token_type".into(), "Bearer".into());
        body.insert("issued_at".into(), issued_at.into());
        self.access.insert(
            access,
            AccessToken {
                org,
                user,
                app,
                refresh,
                scopes,
                last_used: now,
            },
        );
        serde_json::Value::Object(body)
    }

    /// A session without the browser dance (for product tests that do not test OAuth).
    pub fn mint_tokens(
        &mut self,
        org: usize,
        consumer_key: &str,
        username: &str,
    ) -> Result<serde_json::Value, ControlError> {
        let (o, app) = *self.apps.get(consumer_key).ok_or_else(|| {
            ControlError::BadInput(format!("unknown consumer key {consumer_key}"))
        })?;
        if o != org {
            return Err(ControlError::BadInput("app belongs to another org".into()));
        }
        let user = self.orgs[org]
            .user_by_username(username)
            .ok_or_else(|| ControlError::UnknownUser(username.to_string()))?;
        Ok(self.issue_tokens(org, app, user, vec!["refresh_token".into(), "api".into()]))
    }

    /// True when the user is active.
    pub fn user_active(&self, org: usize, user: RecordId) -> bool {
        self.orgs[org].get(user, "IsActive") == ValueRef::Bool(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = 1_700_000_000_000;
        assert_eq!(relative_time("$now", now), Some((now, false)));
        assert_eq!(
            relative_time("$now-3d2h", now),
            Some((now - 3 * 86_400_000 - 2 * 3_600_000, false))
        );
        assert_eq!(relative_time("$today+1d", now).map(|x| x.1), Some(true));
        assert_eq!(relative_time("$now-", now), None);
        assert_eq!(relative_time("$nowx", now), None);
    }

    #[test]
    fn signature_is_hmac_sha256_base64() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = sign("Jefe", "what do ya want ", "for nothing?");
        let expected = base64::engine::general_purpose::STANDARD.encode([
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
            0x64, 0xec, 0x38, 0x43,
        ]);
        assert_eq!(s, expected);
    }
}
