//! The HTTP control API under `/__emulator/` (for the demo and manual use; tests
//! can use the same operations in-process through [`crate::Emulator`]).

use crate::http::{Req, Resp, Shared};
use crate::time::{fmt_datetime, parse_datetime};
use crate::world::{AppSpec, ControlError, Fault, OrgSpec, SeedFile, SeedRecord, UserSpec, World};
use http::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;

fn ok<T: serde::Serialize>(status: u16, v: &T) -> Resp {
    match serde_json::to_value(v) {
        Ok(j) => Resp::json(status, j),
        Err(e) => Resp::json(500, json!({ "error": e.to_string() })),
    }
}

fn control_error(e: &ControlError) -> Resp {
    let status = match e {
        ControlError::UnknownOrg(_)
        | ControlError::UnknownUser(_)
        | ControlError::UnknownRecord(_)
        | ControlError::UnknownType(_) => 404,
        ControlError::Duplicate(_) => 409,
        _ => 400,
    };
    Resp::json(status, json!({ "error": e.to_string() }))
}

fn body<T: DeserializeOwned>(req: &Req) -> Result<T, Resp> {
    let bytes: &[u8] = if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    };
    serde_json::from_slice(bytes)
        .map_err(|e| Resp::json(400, json!({ "error": format!("bad JSON body: {e}") })))
}

#[derive(Deserialize)]
struct ClockBody {
    /// Set the time (RFC 3339).
    set: Option<String>,
    /// Move the time.
    advance_seconds: Option<i64>,
    /// Freeze or let run.
    freeze: Option<bool>,
}

#[derive(Deserialize)]
struct RecordsBody {
    records: Vec<SeedRecord>,
}

#[derive(Deserialize)]
struct ActiveBody {
    active: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CdcBody {
    enable: Vec<String>,
    disable: Vec<String>,
    retention_seconds: Option<i64>,
}

#[derive(Deserialize)]
struct IdsBody {
    ids: Vec<String>,
}

#[derive(Deserialize)]
struct GapBody {
    change_type: String,
    #[serde(default)]
    ids: Vec<String>,
    object: Option<String>,
}

#[derive(Deserialize)]
struct SessionBody {
    consumer_key: String,
    username: String,
}

fn clock_json(world: &World) -> Resp {
    let now = world.now();
    Resp::json(
        200,
        json!({
            "now": fmt_datetime(now),
            "now_ms": now,
            "frozen": world.clock.is_frozen(),
        }),
    )
}

fn org_json(world: &World, org: usize) -> Value {
    let o = &world.orgs[org];
    let apps = o
        .apps
        .iter()
        .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
        .collect();
    let users = world
        .records(org, "User", false)
        .unwrap_or_default()
        .iter()
        .map(|u| {
            json!({
                "id": u["Id"],
                "username": u["Username"],
                "email": u["Email"],
                "name": u["Name"],
                "active": u["IsActive"],
                "user_type": u["UserType"],
            })
        })
        .collect();
    json!({
        "org_id": o.id.as_str(),
        "key": world.keys[org].as_str(),
        "name": o.name.as_str(),
        "instance_url": world.base_url.as_str(),
        "api_used": o.api_used,
        "api_limit": o.api_limit,
        "apps": Value::Array(apps),
        "users": Value::Array(users),
    })
}

/// Routes `/__emulator/...`.
pub fn handle(shared: &Arc<Shared>, req: &Req) -> Resp {
    let path = req.path.trim_end_matches('/');
    let segs: Vec<String> = path
        .split('/')
        .skip(2)
        .map(|s| {
            url::form_urlencoded::parse(s.replace('+', "%2B").as_bytes())
                .next()
                .map(|(k, _)| k.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = &req.method;
    let mut world = shared.lock();
    match (m.as_str(), s.as_slice()) {
        ("GET", ["health"]) => Resp::json(200, json!({ "ok": true })),
        ("GET", ["clock"]) => clock_json(&world),
        ("POST", ["clock"]) => {
            let b: ClockBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Some(f) = b.freeze {
                if f {
                    world.clock.freeze();
                } else {
                    world.clock.unfreeze();
                }
            }
            if let Some(t) = b.set {
                match parse_datetime(&t) {
                    Some(ms) => world.clock.set(ms),
                    None => {
                        return Resp::json(400, json!({ "error": format!("bad datetime: {t}") }));
                    }
                }
            }
            if let Some(a) = b.advance_seconds {
                world.clock.advance(a * 1000);
            }
            clock_json(&world)
        }
        ("POST", ["reset"]) => match world.reset() {
            Ok(infos) => ok(200, &infos),
            Err(e) => control_error(&e),
        },
        ("POST", ["seed"]) => {
            let seed: SeedFile = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match world.apply_seed(&seed) {
                Ok(infos) => ok(201, &infos),
                Err(e) => control_error(&e),
            }
        }
        ("GET", ["orgs"]) => {
            let list = (0..world.orgs.len()).map(|i| org_json(&world, i)).collect();
            Resp::json(200, Value::Array(list))
        }
        ("POST", ["orgs"]) => {
            let spec: OrgSpec = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match world.create_org(&spec) {
                Ok(info) => ok(201, &info),
                Err(e) => control_error(&e),
            }
        }
        (_, ["orgs", org, rest @ ..]) => {
            let org = match world.org_index(org) {
                Ok(i) => i,
                Err(e) => return control_error(&e),
            };
            org_route(&mut world, org, m, rest, req)
        }
        _ => Resp::json(404, json!({ "error": "unknown control route" })),
    }
}

fn org_route(world: &mut World, org: usize, m: &Method, rest: &[&str], req: &Req) -> Resp {
    let result: Result<Resp, ControlError> = match (m.as_str(), rest) {
        ("GET", []) => Ok(Resp::json(200, org_json(world, org))),
        ("POST", ["apps"]) => {
            let spec: AppSpec = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.create_app(org, &spec).map(|a| ok(201, &a))
        }
        ("PATCH", ["apps", key]) => {
            let spec: AppSpec = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.update_app(key, &spec).map(|a| ok(200, &a))
        }
        ("POST", ["users"]) => {
            let spec: UserSpec = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.create_user(org, &spec).map(|u| ok(201, &u))
        }
        ("PATCH", ["users", user]) => {
            let b: ActiveBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world
                .set_user_active(org, user, b.active)
                .map(|_| Resp::empty(204))
        }
        ("POST", ["records"]) => {
            let b: RecordsBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.seed_records(org, &b.records).map(|ids| {
                let refs = world.orgs[org].seed_refs.clone();
                ok(201, &serde_json::json!({ "ids": ids, "refs": refs }))
            })
        }
        ("GET", ["records", object]) => {
            let include_deleted = req
                .param("include_deleted")
                .is_some_and(|v| v == "true" || v == "1");
            world
                .records(org, object, include_deleted)
                .map(|r| ok(200, &r))
        }
        ("GET", ["record", id]) => world.record(org, id).map(|r| ok(200, &r)),
        ("POST", ["access"]) => {
            let b: crate::access::AccessChange = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.set_access(org, &b).map(|_| Resp::empty(204))
        }
        ("GET", ["counters"]) => world.counters(org).map(|c| ok(200, &c)),
        ("DELETE", ["counters"]) => world.reset_counters(org).map(|_| Resp::empty(204)),
        ("GET", ["changes"]) => world.changes(org).map(|c| ok(200, &c)),
        ("POST", ["faults"]) => {
            let f: Fault = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.inject(org, &f).map(|_| Resp::empty(204))
        }
        ("POST", ["undelete"]) => {
            let b: IdsBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world.undelete(org, &b.ids).map(|_| Resp::empty(204))
        }
        ("GET", ["cdc"]) => world.cdc_state(org).map(|v| ok(200, &v)),
        ("POST", ["cdc"]) => {
            let b: CdcBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut res = Ok(());
            for (names, on) in [(&b.enable, true), (&b.disable, false)] {
                for n in names {
                    if res.is_ok() {
                        res = world.set_cdc(org, n, on);
                    }
                }
            }
            if let (Ok(()), Some(secs)) = (&res, b.retention_seconds) {
                res = world.set_cdc_retention(org, secs.saturating_mul(1000));
            }
            res.and_then(|_| world.cdc_state(org)).map(|v| ok(200, &v))
        }
        ("GET", ["cdc", "events"]) => world.cdc_events(org).map(|v| ok(200, &v)),
        ("POST", ["cdc", "gaps"]) => {
            let b: GapBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match crate::cdc::EventType::parse(&b.change_type) {
                None => Err(ControlError::BadInput(format!(
                    "unknown change_type {}",
                    b.change_type
                ))),
                Some(t) => world
                    .inject_gap(org, t, &b.ids, b.object.as_deref())
                    .map(|_| Resp::empty(204)),
            }
        }
        ("POST", ["sessions"]) => {
            let b: SessionBody = match body(req) {
                Ok(b) => b,
                Err(r) => return r,
            };
            world
                .mint_tokens(org, &b.consumer_key, &b.username)
                .map(|t| ok(200, &t))
        }
        _ => return Resp::json(404, json!({ "error": "unknown control route" })),
    };
    match result {
        Ok(r) => r,
        Err(e) => control_error(&e),
    }
}
