//! REST API under `/services/data/vXX.X/`: authentication, API usage, faults, and
//! the resources (query, sObjects, collections, composite, search, updated,
//! deleted, limits, describe).

use crate::conditional::{self, Conditions, Outcome};
use crate::http::{Req, Resp, Shared};
use crate::oauth::{bearer, session};
use crate::org::{
    FailureKind, LOCATOR_IDLE_MS, Locator, Mutation, RecError, WriteCtx, parse_fields,
};
use crate::schema::{ObjectDef, Schema};
use crate::soql;
use crate::store::RecordId;
use crate::time::{Millis, fmt_datetime, parse_datetime, to_minute};
use crate::world::World;
use http::Method;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Default and bounds of the query page size.
pub const DEFAULT_BATCH: usize = 2000;
const MIN_BATCH: usize = 200;
/// Records per sObject Collections request.
pub const MAX_COLLECTION: usize = 200;
/// Subrequests per composite request.
pub const MAX_COMPOSITE: usize = 25;
const UPDATED_WINDOW_MS: Millis = 30 * 86_400_000;
const DELETED_KEPT_MS: Millis = 15 * 86_400_000;
const MAX_REPLICATION_IDS: usize = 600_000;

/// Who is calling, for one request.
#[derive(Debug, Clone)]
pub struct ApiCtx {
    /// Org index.
    pub org: usize,
    /// User.
    pub user: RecordId,
    /// Access token.
    pub token: String,
    /// API version (`62.0`).
    pub version: String,
    /// `client=` of Sforce-Call-Options.
    pub client: Option<String>,
    /// Page size requested by Sforce-Query-Options.
    pub batch: Option<usize>,
    /// Conditional request headers (`If-Unmodified-Since`, …).
    pub cond: Conditions,
}

/// The page size a `Sforce-Query-Options` header asks for. "The default is
/// 2,000; the minimum is 200, and the maximum is 2,000" (REST API guide,
/// Query Options Header): a value outside is brought inside (a request for 5
/// or 20 records a page is not honoured, SwiftlySalesforce#85); an unreadable
/// one is ignored. Even then "there is no guarantee that the requested batch
/// size is the actual batch size": see [`crate::org::PagePolicy`].
pub fn batch_size(req_header: Option<&str>) -> Option<usize> {
    let h = req_header?;
    h.split([',', ';']).find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        if k.trim().eq_ignore_ascii_case("batchSize") {
            v.trim()
                .parse::<usize>()
                .ok()
                .map(|n| n.clamp(MIN_BATCH, DEFAULT_BATCH))
        } else {
            None
        }
    })
}

fn call_client(h: Option<&str>) -> Option<String> {
    h?.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("client")
            .then(|| v.trim().to_string())
    })
}

fn segments(path: &str) -> Vec<String> {
    let mut segs: Vec<String> = path.split('/').map(percent_decode).collect();
    while segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    segs
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The endpoint kind used by the per-kind counters.
pub fn kind(method: &Method, segs: &[String]) -> &'static str {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method.as_str(), s.as_slice()) {
        ("GET", ["query"]) => "query",
        ("GET", ["queryAll"]) => "queryAll",
        ("GET", ["query" | "queryAll", _]) => "queryMore",
        ("GET", ["search"]) => "search",
        ("GET", ["limits"]) => "limits",
        ("GET", ["sobjects", _, "updated"]) => "updated",
        ("GET", ["sobjects", _, "deleted"]) => "deleted",
        ("GET", ["sobjects"] | ["sobjects", _] | ["sobjects", _, "describe"]) => "describe",
        ("POST", ["sobjects", _]) => "sobjectCreate",
        ("GET", ["sobjects", _, _]) => "sobjectRead",
        ("PATCH", ["sobjects", _, _]) => "sobjectUpdate",
        ("DELETE", ["sobjects", _, _]) => "sobjectDelete",
        ("POST", ["composite", "sobjects"]) => "collectionsCreate",
        ("PATCH", ["composite", "sobjects"]) => "collectionsUpdate",
        ("GET" | "POST", ["composite", "sobjects", _]) => "collectionsRetrieve",
        ("POST", ["composite"]) => "composite",
        _ => "other",
    }
}

fn invalid_session(msg: &str) -> Resp {
    Resp::error(401, "INVALID_SESSION_ID", msg)
}

/// 410 for a retired version. Salesforce answers "410: GONE" (its
/// retirement notices) with the error code `GONE` (restforce#941); the message
/// is the emulator's.
pub fn gone(version: &str) -> Resp {
    Resp::error(
        410,
        "GONE",
        &format!(
            "API version {version} is retired and no longer available. Use version {}.0 or later.",
            crate::versions::MIN_VERSION
        ),
    )
}

/// Entry point for `/services/data/<rest>`.
pub async fn handle(shared: &Arc<Shared>, req: &Req, rest: &str) -> Resp {
    let (ver_seg, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let version = match crate::versions::parse(ver_seg) {
        crate::versions::Version::Served(v) => v,
        crate::versions::Version::Retired(v) => return gone(&v),
        crate::versions::Version::Unknown => return Resp::not_found(),
    };
    let token = bearer(req);
    // Authenticate and read the latency without holding the lock while sleeping.
    let (org, latency) = {
        let mut world = shared.lock();
        let Some(sess) = token.as_deref().and_then(|t| session(&mut world, t)) else {
            return invalid_session("Session expired or invalid");
        };
        if !sess.scopes.iter().any(|s| s == "api" || s == "full") {
            return invalid_session("This session is not valid for use with the REST API");
        }
        let f = &world.orgs[sess.org].faults;
        let jitter = if f.jitter_ms > 0 {
            rand::random::<u64>() % (f.jitter_ms + 1)
        } else {
            0
        };
        (sess.org, f.latency_ms + jitter)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut world = shared.lock();
    let Some(sess) = token.as_deref().and_then(|t| session(&mut world, t)) else {
        return invalid_session("Session expired or invalid");
    };
    let ctx = ApiCtx {
        org,
        user: sess.user,
        token: token.unwrap_or_default(),
        version,
        client: call_client(req.header("sforce-call-options")),
        batch: batch_size(req.header("sforce-query-options")),
        cond: Conditions::from_headers(&req.headers),
    };
    let segs = segments(tail);
    let o = &mut world.orgs[org];
    if !o.access.api_enabled(ctx.user) {
        // The user's profile lacks API Enabled: refused before any data, not counted.
        return Resp::error(
            403,
            "API_DISABLED_FOR_ORG",
            "API is not enabled for this Organization or Partner",
        );
    }
    if o.api_used >= o.api_limit {
        let header = o.limit_header();
        return Resp::error(
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
        .header("Sforce-Limit-Info", &header);
    }
    let k = kind(&req.method, &segs);
    o.count(k);
    let header = o.limit_header();
    let scheduled = (o.faults.fail_next > 0
        && o.faults.fail_only.as_deref().is_none_or(|only| only == k))
    .then_some(o.faults.fail_kind)
    .flatten();
    if scheduled.is_some() {
        o.faults.fail_next -= 1;
    }
    let random = (o.faults.fail_percent > 0
        && !o.faults.random_kinds.is_empty()
        && rand::random::<u8>() % 100 < o.faults.fail_percent)
        .then(|| {
            let kinds = &o.faults.random_kinds;
            kinds[rand::random::<usize>() % kinds.len()]
        });
    if let Some(fk) = scheduled.or(random) {
        let collection_write = matches!(k, "collectionsCreate" | "collectionsUpdate");
        let resp = match fk {
            FailureKind::ServerUnavailable => Resp::error(
                503,
                "SERVER_UNAVAILABLE",
                "Server is temporarily unavailable. Please try again later.",
            ),
            FailureKind::RequestLimitExceeded => Resp::error(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded.",
            ),
            FailureKind::UnableToLockRow if collection_write => {
                lock_failure_for_collection(&req.body)
            }
            FailureKind::UnableToLockRow => Resp::error(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record",
            ),
        };
        return resp.header("Sforce-Limit-Info", &header);
    }
    let body = if req.body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(&req.body) {
            Ok(v) => Some(v),
            Err(e) => {
                return Resp::error(
                    400,
                    "JSON_PARSER_ERROR",
                    &format!("Unexpected character in the request body: {e}"),
                )
                .header("Sforce-Limit-Info", &header);
            }
        }
    };
    let params = req.query_params();
    let resp = dispatch(&mut world, &ctx, &req.method, &segs, &params, body.as_ref());
    resp.header("Sforce-Limit-Info", &header)
}

fn lock_failure_for_collection(body: &[u8]) -> Resp {
    let n = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("records").and_then(|r| r.as_array()).map(Vec::len))
        .unwrap_or(1);
    let err = RecError::new(
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record or 1 records",
        vec![],
    );
    let rows = (0..n)
        .map(|_| json!({ "success": false, "errors": [err.to_status_json()] }))
        .collect();
    Resp::json(200, Value::Array(rows))
}

fn method_not_allowed(method: &Method, allowed: &str) -> Resp {
    Resp::error(
        405,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
    )
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The object named `t`, when it exists for the org and the user may read it
/// (else it is unknown to them, as in Salesforce).
fn readable(world: &World, ctx: &ApiCtx, t: &str) -> Option<&'static ObjectDef> {
    Schema::get().object(t).filter(|obj| {
        world.orgs[ctx.org]
            .access
            .allows(ctx.user, obj, crate::access::Perm::Read)
    })
}

/// `INVALID_TYPE` for an object the caller cannot see.
fn unsupported_type(t: &str) -> Resp {
    Resp::error(
        400,
        "INVALID_TYPE",
        &format!("sObject type '{t}' is not supported."),
    )
}

/// Routes one (sub)request. Counting and faults happen before.
pub fn dispatch(
    world: &mut World,
    ctx: &ApiCtx,
    method: &Method,
    segs: &[String],
    params: &[(String, String)],
    body: Option<&serde_json::Value>,
) -> Resp {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        [] => {
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            resources(world, ctx)
        }
        ["query" | "queryAll"] => {
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            query(world, ctx, param(params, "q"), s[0] == "queryAll")
        }
        ["query" | "queryAll", loc] => {
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            query_more(world, ctx, loc)
        }
        ["search"] => {
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            crate::sosl::search(world, ctx, param(params, "q"))
        }
        ["limits"] => {
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            limits(world, ctx)
        }
        ["sobjects"] => {
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            if let Some(r) = describe_conditions(world, ctx) {
                return r;
            }
            let access = &world.orgs[ctx.org].access;
            Resp::json(
                200,
                crate::describe::global(&ctx.version, |obj, perm| {
                    access.allows(ctx.user, obj, perm)
                }),
            )
        }
        ["sobjects", t] => {
            let Some(obj) = readable(world, ctx, t) else {
                return Resp::not_found();
            };
            match *method {
                Method::POST => create(world, ctx, obj, body),
                Method::GET => Resp::json(
                    200,
                    json!({
                        "objectDescribe": crate::describe::summary(obj, &ctx.version),
                        "recentItems": [],
                    }),
                ),
                _ => method_not_allowed(method, "GET, POST"),
            }
        }
        ["sobjects", t, "describe"] => {
            let Some(obj) = readable(world, ctx, t) else {
                return Resp::not_found();
            };
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            if let Some(r) = describe_conditions(world, ctx) {
                return r;
            }
            Resp::json(
                200,
                crate::describe::object(obj, &ctx.version, &world.base_url),
            )
        }
        ["sobjects", t, which @ ("updated" | "deleted")] => {
            let Some(obj) = readable(world, ctx, t) else {
                return Resp::not_found();
            };
            if *method != Method::GET {
                return method_not_allowed(method, "GET");
            }
            replication(world, ctx, obj, *which == "deleted", params)
        }
        ["sobjects", t, id] => {
            let Some(obj) = readable(world, ctx, t) else {
                return Resp::not_found();
            };
            match *method {
                Method::GET => read(world, ctx, obj, id, param(params, "fields")),
                Method::PATCH => update(world, ctx, obj, id, body),
                Method::DELETE => delete(world, ctx, obj, id),
                _ => method_not_allowed(method, "GET, PATCH, DELETE"),
            }
        }
        ["composite", "sobjects"] => match *method {
            Method::POST => collection_write(world, ctx, body, true),
            Method::PATCH => collection_write(world, ctx, body, false),
            _ => method_not_allowed(method, "POST, PATCH"),
        },
        ["composite", "sobjects", t] => {
            let Some(obj) = readable(world, ctx, t) else {
                return Resp::not_found();
            };
            match *method {
                Method::GET => {
                    let ids: Vec<String> = param(params, "ids")
                        .map(|v| v.split(',').map(|x| x.trim().to_string()).collect())
                        .unwrap_or_default();
                    let fields: Vec<String> = param(params, "fields")
                        .map(|v| v.split(',').map(|x| x.trim().to_string()).collect())
                        .unwrap_or_default();
                    collection_retrieve(world, ctx, obj, &ids, &fields)
                }
                Method::POST => {
                    let list = |k: &str| -> Vec<String> {
                        body.and_then(|b| b.get(k))
                            .and_then(|v| v.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default()
                    };
                    collection_retrieve(world, ctx, obj, &list("ids"), &list("fields"))
                }
                _ => method_not_allowed(method, "GET, POST"),
            }
        }
        ["composite"] => {
            if *method != Method::POST {
                return method_not_allowed(method, "POST");
            }
            crate::composite::composite(world, ctx, body)
        }
        _ => Resp::not_found(),
    }
}

/// The resources `GET /services/data/vXX.X/` lists, in Salesforce's order
/// (REST API guide, "List Available REST Resources", v66.0). `identity` is
/// the caller's identity URL; the others are relative. Only `sobjects`,
/// `query`, `queryAll`, `search`, `limits` and `composite` are emulated: the
/// rest answer 404 NOT_FOUND.
pub const RESOURCES: &[&str] = &[
    "tooling",
    "metadata",
    "eclair",
    "folders",
    "prechatForms",
    "contact-tracing",
    "jsonxform",
    "chatter",
    "payments",
    "tabs",
    "appMenu",
    "quickActions",
    "queryAll",
    "commerce",
    "wave",
    "iot",
    "analytics",
    "search",
    "smartdatadiscovery",
    "identity",
    "composite",
    "parameterizedSearch",
    "fingerprint",
    "theme",
    "nouns",
    "domino",
    "event",
    "serviceTemplates",
    "recent",
    "connect",
    "licensing",
    "limits",
    "process",
    "dedupe",
    "async-queries",
    "query",
    "jobs",
    "localizedvalue",
    "mobile",
    "emailConnect",
    "consent",
    "tokenizer",
    "compactLayouts",
    "async",
    "sobjects",
    "actions",
    "support",
];

fn resources(world: &World, ctx: &ApiCtx) -> Resp {
    let o = &world.orgs[ctx.org];
    let v = &ctx.version;
    let j = RESOURCES.iter().map(|r| {
        let url = if *r == "identity" {
            format!("{}/id/{}/{}", world.base_url, o.id, o.id18(ctx.user))
        } else {
            format!("/services/data/v{v}/{r}")
        };
        (*r, url)
    });
    Resp::json(200, Value::from_iter(j))
}

/// `If-Modified-Since` / `If-Unmodified-Since` on describes: the emulated
/// metadata last changed when the org was created.
fn describe_conditions(world: &World, ctx: &ApiCtx) -> Option<Resp> {
    match conditional::evaluate(&ctx.cond, false, world.orgs[ctx.org].created_at, None) {
        Outcome::Proceed | Outcome::BadHeader(..) => None,
        Outcome::NotModified => Some(Resp::empty(304)),
        Outcome::Failed(h) => Some(conditional::precondition_failed(h)),
    }
}

fn soql_error(e: &soql::SoqlError) -> Resp {
    Resp::error(400, e.code, &e.message)
}

/// `{"totalSize","done","nextRecordsUrl"?,"records"}`, in that order.
fn page_json(total: usize, next: Option<String>, records: Vec<Value>) -> Value {
    let mut j = Map::with_capacity(4);
    j.insert("totalSize".into(), total.into());
    j.insert("done".into(), next.is_none().into());
    if let Some(n) = next {
        j.insert("nextRecordsUrl".into(), n.into());
    }
    j.insert("records".into(), Value::Array(records));
    Value::Object(j)
}

/// GET query / queryAll.
pub fn query(world: &mut World, ctx: &ApiCtx, q: Option<&str>, all: bool) -> Resp {
    let Some(q) = q else {
        return Resp::error(400, "MALFORMED_QUERY", "A query string has to be specified");
    };
    let parsed = match soql::parse_checked(q) {
        Ok(p) => p,
        Err(e) => return soql_error(&e),
    };
    let now = world.now();
    let plan = match soql::compile(q, &parsed, now) {
        Ok(p) => p,
        Err(e) => return soql_error(&e),
    };
    let name = Schema::get().at(plan.obj).name;
    if readable(world, ctx, name).is_none() {
        return unsupported_type(name);
    }
    let o = &mut world.orgs[ctx.org];
    let ids = soql::execute(&plan, &o.view(), all);
    match &plan.shape {
        // "SELECT COUNT() FROM …": the count is totalSize, no records.
        soql::Shape::Count => return Resp::json(200, page_json(ids.len(), None, Vec::new())),
        soql::Shape::Aggregate(_) => {
            let row = soql::plan::aggregate_row(&plan, &o.view(), &ids);
            return Resp::json(200, page_json(1, None, vec![row]));
        }
        soql::Shape::Records => {}
    }
    let batch = ctx.batch.unwrap_or(DEFAULT_BATCH);
    let cap = o.page_policy.cap(&plan, batch);
    let (end, records) = soql::plan::page(&plan, &o.view(), &ctx.version, &ids, 0, cap, all);
    let total = ids.len();
    let next = if end < total {
        let loc = o.open_locator(Locator {
            plan: Arc::new(plan),
            ids: Arc::new(ids),
            token: ctx.token.clone(),
            user: ctx.user,
            opened: now,
            last_used: now,
            batch,
            all,
        });
        Some(format!(
            "/services/data/v{}/{}/{loc}-{end}",
            ctx.version,
            if all { "queryAll" } else { "query" }
        ))
    } else {
        None
    };
    Resp::json(200, page_json(total, next, records))
}

fn invalid_locator() -> Resp {
    Resp::error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
}

/// GET query/<locator>-<offset>.
pub fn query_more(world: &mut World, ctx: &ApiCtx, loc_text: &str) -> Resp {
    let Some((loc_id, offset)) = loc_text.rsplit_once('-') else {
        return invalid_locator();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid_locator();
    };
    let now = world.now();
    let o = &mut world.orgs[ctx.org];
    let Some(loc) = o.locators.get(loc_id).cloned() else {
        return invalid_locator();
    };
    if now - loc.last_used > LOCATOR_IDLE_MS {
        o.locators.remove(loc_id);
        return invalid_locator();
    }
    // A cursor belongs to the session that opened it.
    if loc.token != ctx.token || offset > loc.ids.len() {
        return invalid_locator();
    }
    let batch = ctx.batch.unwrap_or(loc.batch);
    let cap = o.page_policy.cap(&loc.plan, batch);
    let (end, records) = soql::plan::page(
        &loc.plan,
        &o.view(),
        &ctx.version,
        &loc.ids,
        offset,
        cap,
        loc.all,
    );
    let total = loc.ids.len();
    let next = if end >= total {
        o.locators.remove(loc_id);
        None
    } else {
        if let Some(l) = o.locators.get_mut(loc_id) {
            l.last_used = now;
        }
        Some(format!(
            "/services/data/v{}/{}/{loc_id}-{end}",
            ctx.version,
            if loc.all { "queryAll" } else { "query" }
        ))
    };
    Resp::json(200, page_json(total, next, records))
}

/// A request refused before any DML (unknown field, wrong JSON type): the
/// error array without `fields`, as Salesforce answers deserialisation errors
/// (`[{"message":"No such column 'foo' on sobject of type Bar","errorCode":"INVALID_FIELD"}]`,
/// restforce's write_error_response fixture).
fn request_error(e: &RecError) -> Resp {
    Resp::error(400, e.code, &e.message)
}

fn write_ctx(world: &World, ctx: &ApiCtx) -> WriteCtx {
    WriteCtx {
        user: ctx.user,
        client: ctx.client.clone(),
        version: Some(ctx.version.clone()),
        now: world.now(),
        seed: false,
    }
}

fn not_writable(obj: &ObjectDef) -> RecError {
    RecError::new(
        "INSUFFICIENT_ACCESS_OR_READONLY",
        format!(
            "insufficient access rights on object {}: the emulator manages {} records through its control API",
            obj.name, obj.name
        ),
        vec![],
    )
}

fn create(
    world: &mut World,
    ctx: &ApiCtx,
    obj: &ObjectDef,
    body: Option<&serde_json::Value>,
) -> Resp {
    let Some(map) = body.and_then(|b| b.as_object()) else {
        return Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object with the record's fields",
        );
    };
    if !obj.api_writable {
        return Resp::json(400, json!([not_writable(obj).to_error_json()]));
    }
    if map.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
        return Resp::json(
            400,
            Value::Array(vec![
                RecError::new(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    vec!["Id".into()],
                )
                .to_error_json(),
            ]),
        );
    }
    let fields = match parse_fields(obj, map) {
        Ok(f) => f,
        Err(e) => return request_error(&e),
    };
    let wctx = write_ctx(world, ctx);
    let o = &mut world.orgs[ctx.org];
    match o.mutate(
        Mutation::Create {
            obj: obj.index,
            fields,
        },
        &wctx,
    ) {
        Ok(id) => Resp::json(
            201,
            json!({ "id": o.id18(id), "success": true, "errors": [] }),
        ),
        Err(e) => Resp::json(400, json!([e.to_error_json()])),
    }
}

/// Resolves an id in a path for an object; Err is the 404 to answer.
fn path_record(world: &World, ctx: &ApiCtx, obj: &ObjectDef, id: &str) -> Result<RecordId, Resp> {
    let o = &world.orgs[ctx.org];
    match o.parse_id(id) {
        Some(r) if r.obj() == obj.index => Ok(r),
        _ => Err(Resp::not_found()),
    }
}

fn entity_deleted() -> Resp {
    Resp::json(
        404,
        Value::Array(vec![
            RecError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]).to_error_json(),
        ]),
    )
}

fn read(world: &mut World, ctx: &ApiCtx, obj: &ObjectDef, id: &str, fields: Option<&str>) -> Resp {
    let r = match path_record(world, ctx, obj, id) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let o = &world.orgs[ctx.org];
    if !o.is_live(r) {
        return entity_deleted();
    }
    let selected = match fields {
        None => None,
        Some(list) => {
            let mut v = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match obj.by_name.get(&name.to_ascii_lowercase()) {
                    Some(i) => v.push(*i),
                    None => {
                        return Resp::error(
                            400,
                            "INVALID_FIELD",
                            &format!(
                                "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                                obj.name
                            ),
                        );
                    }
                }
            }
            Some(v)
        }
    };
    let tag = record_etag(o, r, &ctx.version);
    match conditional::evaluate(&ctx.cond, false, last_modified(o, r), tag.as_deref()) {
        Outcome::Proceed => {}
        Outcome::NotModified => return Resp::empty(304),
        Outcome::Failed(h) => return conditional::precondition_failed(h),
        Outcome::BadHeader(_, m) => return conditional::bad_header(&m),
    }
    let resp = Resp::json(200, o.record_json(r, selected.as_deref(), &ctx.version));
    match tag {
        Some(t) => resp.header("ETag", &t),
        None => resp,
    }
}

/// LastModifiedDate of a record (ms).
fn last_modified(o: &crate::org::Org, r: RecordId) -> Millis {
    match o.get(r, "LastModifiedDate") {
        crate::store::ValueRef::DateTime(t) => t,
        _ => 0,
    }
}

/// The ETag of a record: Accounts only ("This header is supported by sObject
/// Rows (Account records only)"), a hash of every field.
fn record_etag(o: &crate::org::Org, r: RecordId, version: &str) -> Option<String> {
    (Schema::get().at(r.obj()).name == "Account")
        .then(|| conditional::etag(&o.record_json(r, None, version).to_string()))
}

fn update(
    world: &mut World,
    ctx: &ApiCtx,
    obj: &ObjectDef,
    id: &str,
    body: Option<&serde_json::Value>,
) -> Resp {
    let r = match path_record(world, ctx, obj, id) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(map) = body.and_then(|b| b.as_object()) else {
        return Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object with the fields to update",
        );
    };
    if !obj.api_writable {
        return Resp::json(400, json!([not_writable(obj).to_error_json()]));
    }
    let fields = match parse_fields(obj, map) {
        Ok(f) => f,
        Err(e) => return request_error(&e),
    };
    let o = &world.orgs[ctx.org];
    if !o.is_live(r) {
        return entity_deleted();
    }
    let tag = record_etag(o, r, &ctx.version);
    match conditional::evaluate(&ctx.cond, true, last_modified(o, r), tag.as_deref()) {
        Outcome::Proceed | Outcome::NotModified => {}
        Outcome::Failed(h) => return conditional::precondition_failed(h),
        Outcome::BadHeader(_, m) => return conditional::bad_header(&m),
    }
    let wctx = write_ctx(world, ctx);
    let o = &mut world.orgs[ctx.org];
    match o.mutate(Mutation::Update { id: r, fields }, &wctx) {
        Ok(_) => {
            let resp = Resp::empty(204);
            match record_etag(o, r, &ctx.version) {
                Some(t) => resp.header("ETag", &t),
                None => resp,
            }
        }
        Err(e) if e.code == "ENTITY_IS_DELETED" => Resp::json(404, json!([e.to_error_json()])),
        Err(e) => Resp::json(400, json!([e.to_error_json()])),
    }
}

fn delete(world: &mut World, ctx: &ApiCtx, obj: &ObjectDef, id: &str) -> Resp {
    let r = match path_record(world, ctx, obj, id) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !obj.api_writable {
        return Resp::json(400, json!([not_writable(obj).to_error_json()]));
    }
    let wctx = write_ctx(world, ctx);
    let o = &mut world.orgs[ctx.org];
    let sp = o.savepoint();
    match o.mutate(Mutation::Delete { id: r }, &wctx) {
        Ok(_) => {
            o.release(sp);
            Resp::empty(204)
        }
        Err(e) => {
            o.rollback(sp);
            if e.code == "ENTITY_IS_DELETED" {
                Resp::json(404, json!([e.to_error_json()]))
            } else {
                Resp::json(400, json!([e.to_error_json()]))
            }
        }
    }
}

fn rolled_back() -> RecError {
    RecError::new(
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
        vec![],
    )
}

/// A collection record after deserialisation: object, id, field values.
type ParsedRecord<'a> = (
    &'a ObjectDef,
    Option<String>,
    Vec<(usize, crate::store::Value)>,
);

/// POST (create) or PATCH (update) composite/sobjects.
pub fn collection_write(
    world: &mut World,
    ctx: &ApiCtx,
    body: Option<&serde_json::Value>,
    create: bool,
) -> Resp {
    let schema = Schema::get();
    let Some(b) = body.and_then(|b| b.as_object()) else {
        return Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object",
        );
    };
    let all_or_none = match b.get("allOrNone") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(x)) => *x,
        Some(_) => {
            return Resp::error(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize instance of boolean from VALUE_STRING (allOrNone)",
            );
        }
    };
    let Some(records) = b.get("records").and_then(|r| r.as_array()) else {
        return Resp::error(
            400,
            "JSON_PARSER_ERROR",
            "records: a JSON array of sObjects is required",
        );
    };
    if records.len() > MAX_COLLECTION {
        return Resp::error(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    // Deserialise everything first: type and field errors fail the whole request.
    let mut parsed: Vec<ParsedRecord> = Vec::new();
    for rec in records {
        let Some(map) = rec.as_object() else {
            return Resp::error(
                400,
                "JSON_PARSER_ERROR",
                "each record must be a JSON object",
            );
        };
        let Some(t) = map
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(|t| t.as_str())
        else {
            return Resp::error(
                400,
                "INVALID_TYPE",
                "Must send a concrete entity type (attributes.type) for every record.",
            );
        };
        let Some(obj) = schema.object(t) else {
            return unsupported_type(t);
        };
        if readable(world, ctx, t).is_none() {
            return unsupported_type(t);
        }
        let mut m = map.clone();
        let id = m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("id"))
            .map(|(k, v)| (k.clone(), v.clone()));
        if let Some((k, _)) = &id {
            m.shift_remove(k);
        }
        let fields = match parse_fields(obj, &m) {
            Ok(f) => f,
            Err(e) => return request_error(&e),
        };
        let id_text = id.map(|(_, v)| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        parsed.push((obj, id_text, fields));
    }
    let wctx = write_ctx(world, ctx);
    let o = &mut world.orgs[ctx.org];
    let sp = o.savepoint();
    let mut results: Vec<Result<RecordId, RecError>> = Vec::new();
    for (obj, id_text, fields) in parsed {
        let res = if !obj.api_writable {
            Err(not_writable(obj))
        } else if create {
            match id_text {
                Some(_) => Err(RecError::new(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    vec!["Id".into()],
                )),
                None => o.mutate(
                    Mutation::Create {
                        obj: obj.index,
                        fields,
                    },
                    &wctx,
                ),
            }
        } else {
            match id_text {
                None => Err(RecError::new(
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                    vec![],
                )),
                Some(text) => match crate::ids::normalize15(&text) {
                    None => Err(RecError::new(
                        "MALFORMED_ID",
                        format!("Record ID: id value of incorrect type: {text}"),
                        vec!["Id".into()],
                    )),
                    Some(_) => match o.parse_id(&text) {
                        Some(r) if r.obj() == obj.index => {
                            o.mutate(Mutation::Update { id: r, fields }, &wctx)
                        }
                        _ => Err(RecError::new(
                            "INVALID_CROSS_REFERENCE_KEY",
                            "invalid cross reference id",
                            vec![],
                        )),
                    },
                },
            }
        };
        results.push(res);
    }
    let failed = results.iter().any(Result::is_err);
    if all_or_none && failed {
        o.rollback(sp);
        results = results
            .into_iter()
            .map(|r| match r {
                Ok(_) => Err(rolled_back()),
                Err(e) => Err(e),
            })
            .collect();
    } else {
        o.release(sp);
    }
    let rows = results
        .into_iter()
        .map(|r| match r {
            Ok(id) => json!({ "id": o.id18(id), "success": true, "errors": [] }),
            Err(e) => json!({ "success": false, "errors": [e.to_status_json()] }),
        })
        .collect();
    Resp::json(200, Value::Array(rows))
}

fn collection_retrieve(
    world: &mut World,
    ctx: &ApiCtx,
    obj: &ObjectDef,
    ids: &[String],
    fields: &[String],
) -> Resp {
    if fields.is_empty() {
        return Resp::error(
            400,
            "MISSING_ARGUMENT",
            "Missing required parameter: fields",
        );
    }
    if ids.is_empty() {
        return Resp::error(400, "MISSING_ARGUMENT", "Missing required parameter: ids");
    }
    if ids.len() > 2000 {
        return Resp::error(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot retrieve more than 2000 records in this call",
        );
    }
    let mut cols = Vec::new();
    for name in fields {
        match obj.by_name.get(&name.to_ascii_lowercase()) {
            Some(i) => cols.push(*i),
            None => {
                return Resp::error(
                    400,
                    "INVALID_FIELD",
                    &format!("No such column '{name}' on entity '{}'.", obj.name),
                );
            }
        }
    }
    let o = &world.orgs[ctx.org];
    let rows = ids
        .iter()
        .map(|id| match o.parse_id(id) {
            Some(r) if r.obj() == obj.index && o.is_live(r) => {
                o.record_json(r, Some(&cols), &ctx.version)
            }
            _ => Value::Null,
        })
        .collect();
    Resp::json(200, Value::Array(rows))
}

fn limits(world: &World, ctx: &ApiCtx) -> Resp {
    let o = &world.orgs[ctx.org];
    let rows: usize = o.tables.iter().map(|t| t.len()).sum();
    let storage_used = (rows * 2 / 1024) as u64;
    let pair = |max: u64, rem: u64| json!({ "Max": max, "Remaining": rem });
    let body = json!({
        "ConcurrentAsyncGetReportInstances": pair(200, 200),
        "DailyApiRequests": pair(o.api_limit, o.api_limit.saturating_sub(o.api_used)),
        "DailyAsyncApexExecutions": pair(250_000, 250_000),
        "DailyBulkApiBatches": pair(15_000, 15_000),
        "DailyBulkV2QueryJobs": pair(10_000, 10_000),
        "DailyStreamingApiEvents": pair(1_000_000, 1_000_000),
        "DataStorageMB": pair(1024, 1024u64.saturating_sub(storage_used)),
        "HourlyPublishedPlatformEvents": pair(250_000, 250_000),
        "MonthlyPlatformEventsUsageEntitlement": pair(0, 0),
    });
    Resp::json(200, body)
}

fn replication_error(msg: &str) -> Resp {
    Resp::error(400, "INVALID_REPLICATION_DATE", msg)
}

fn replication(
    world: &World,
    ctx: &ApiCtx,
    obj: &ObjectDef,
    deleted: bool,
    params: &[(String, String)],
) -> Resp {
    if !obj.replicable {
        return Resp::error(
            400,
            "INVALID_TYPE",
            &format!("sObject type {} is not replicable", obj.name),
        );
    }
    let now = world.now();
    let get = |k: &str| -> Result<Millis, Resp> {
        let Some(v) = param(params, k) else {
            return Err(Resp::error(
                400,
                "MISSING_ARGUMENT",
                &format!("Missing required parameter: {k}"),
            ));
        };
        parse_datetime(v).map(to_minute).ok_or_else(|| {
            replication_error(&format!(
                "{k}: '{v}' is not a valid dateTime (use e.g. 2026-01-31T12:00:00Z or +00:00)"
            ))
        })
    };
    let start = match get("start") {
        Ok(v) => v,
        Err(r) => return r,
    };
    let end = match get("end") {
        Ok(v) => v,
        Err(r) => return r,
    };
    if start >= end {
        return replication_error("start date must chronologically precede the end date");
    }
    if start < to_minute(now) - UPDATED_WINDOW_MS {
        return replication_error("startDate cannot be more than 30 days ago");
    }
    let latest = end.min(to_minute(now));
    let o = &world.orgs[ctx.org];
    let t = &o.tables[obj.index];
    if !deleted {
        let Some(col) = obj.col("SystemModstamp") else {
            return replication_error("object has no SystemModstamp");
        };
        let mut ids = Vec::new();
        for row in 0..t.len() {
            if t.is_deleted(row) {
                continue;
            }
            if let crate::store::ValueRef::DateTime(ts) = t.get(col, row)
                && ts >= start
                && ts < latest
            {
                ids.push(Value::String(
                    o.id18(RecordId::new(obj.index, row as u64 + 1)),
                ));
            }
        }
        if ids.len() > MAX_REPLICATION_IDS {
            return Resp::error(
                400,
                "EXCEEDED_ID_LIMIT",
                "More than 600,000 ids: choose start and end dates that are closer together",
            );
        }
        return Resp::json(
            200,
            Value::from_iter([
                ("ids", Value::Array(ids)),
                ("latestDateCovered", fmt_datetime(latest).into()),
            ]),
        );
    }
    let earliest = to_minute(o.created_at.max(now - DELETED_KEPT_MS));
    let mut rows: Vec<(usize, Millis)> = t
        .deleted_at
        .iter()
        .filter(|(_, at)| **at >= start && **at < latest && **at >= now - DELETED_KEPT_MS)
        .map(|(r, at)| (*r, *at))
        .collect();
    rows.sort();
    let list = rows
        .into_iter()
        .map(|(row, at)| {
            json!({
                "deletedDate": fmt_datetime(at),
                "id": o.id18(RecordId::new(obj.index, row as u64 + 1)),
            })
        })
        .collect();
    Resp::json(
        200,
        Value::from_iter([
            ("deletedRecords", Value::Array(list)),
            ("earliestDateAvailable", fmt_datetime(earliest).into()),
            ("latestDateCovered", fmt_datetime(latest).into()),
        ]),
    )
}
