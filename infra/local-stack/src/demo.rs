//! The seed's story, end to end, against the running local stack: settings,
//! OAuth consent, users, the first sync, a dozen calls, comments, and what
//! landed in Salesforce and in Modjo's store. Everything goes through the same
//! doors as in production: the HTTP API (with a JWT), the queues, the schedule.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use reqwest::{Client, Method};
use serde_json::{Value, json};

use crate::stack::LocalStack;

pub const TENANT: &str = "acme-demo";
pub const ORG: &str = "demo";
const ADMIN_USERNAME: &str = "admin@acme-demo.com";
const ADMIN_PASSWORD: &str = "demo1234";

/// Modjo users of the demo workspace (the reps' Modjo emails, and a new hire who
/// has no Salesforce user yet): id, email, name.
pub const MODJO_USERS: &[(&str, &str, &str)] = &[
    ("usr_sophie", "Sophie.Martin@modjo-demo.ai", "Sophie Martin"),
    ("usr_lucas", "lucas.bernard@modjo-demo.ai", "Lucas Bernard"),
    ("usr_emma", "emma.dubois@modjo-demo.ai", "Emma Dubois"),
    ("usr_james", "james.miller@modjo-demo.ai", "James Miller"),
    ("usr_olivia", "olivia.brown@modjo-demo.ai", "Olivia Brown"),
    ("usr_newhire", "new.hire@modjo-demo.ai", "Noah Petit"),
];

/// What Modjo's platform does for a workspace: it keeps the integration's copy
/// of its user directory (`PUT modjo-users`), which the settings page shows next
/// to the Salesforce users.
pub async fn publish_modjo_users(stack: &LocalStack, tenant: &str) -> Result<(), String> {
    let users: Vec<Value> = MODJO_USERS
        .iter()
        .map(|(id, email, name)| json!({"id": id, "email": email, "name": name}))
        .collect();
    let url = format!("{}/integrations/salesforce/modjo-users", stack.api_url());
    let response = Client::new()
        .put(url)
        .bearer_auth(stack.token(tenant, "usr_platform", "admin"))
        .json(&json!({ "users": users }))
        .send()
        .await
        .map_err(|e| format!("PUT modjo-users: {e}"))?;
    match response.status().as_u16() {
        200 => Ok(()),
        s => Err(format!(
            "PUT modjo-users: HTTP {s} {}",
            response.text().await.unwrap_or_default()
        )),
    }
}

/// What the demo saw, for tests and the summary.
#[derive(Debug, Default, Clone)]
pub struct DemoReport {
    pub connected: bool,
    pub synced: BTreeMap<String, u64>,
    pub calls: BTreeMap<String, String>,
    pub tasks_with_block: usize,
    /// The permissions check told a missing permission, then nothing once granted.
    pub permissions_told_then_cleared: bool,
    /// Meetings logged on the calendar's Event (enriched, not created).
    pub meetings_on_calendar_events: usize,
    pub comments_shown: usize,
    pub api_calls: u64,
    pub api_calls_by_kind: BTreeMap<String, u64>,
    /// The unmatched call whose contact was then created, and its state after the
    /// next sync re-matched it.
    pub rematched: Option<(String, String)>,
}

struct Demo<'a> {
    stack: &'a LocalStack,
    http: Client,
    token: String,
    out: String,
}

/// Plays the story and prints the report as it goes. Needs the emulator.
pub async fn run(stack: &LocalStack, repo: &std::path::Path) -> Result<DemoReport, String> {
    let emu = stack
        .emulator
        .as_ref()
        .ok_or("the demo needs the Salesforce emulator")?;
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut demo = Demo {
        stack,
        http,
        token: stack.token(TENANT, "usr_admin", "admin"),
        out: String::new(),
    };
    let mut report = DemoReport::default();
    let app = emu
        .query(
            ORG,
            "SELECT Id FROM User WHERE Username = 'admin@acme-demo.com'",
            false,
        )
        .map_err(|e| e.to_string())?;
    if app.is_empty() {
        return Err("the demo org is not loaded".into());
    }

    // 1. Settings.
    demo.section("1. Settings saved");
    let (key, secret) = stack
        .seeded_apps
        .iter()
        .find(|(org, _, _)| org == ORG)
        .map(|(_, k, s)| (k.clone(), s.clone()))
        .ok_or("the demo org has no connected app")?;
    let saved = demo
        .api(Method::PUT, "settings", Some(json!({"consumerKey": key, "consumerSecret": secret, "instanceUrl": emu.base_url(), "phoneRegion": "FR"})))
        .await?;
    demo.line(&format!(
        "consumer key {}…, instance {}, secret stored (shown back as consumerSecretSet={})",
        key.chars().take(12).collect::<String>(),
        saved["instanceUrl"].as_str().unwrap_or(""),
        saved["consumerSecretSet"]
    ));

    // 2. OAuth connect through the emulator's consent page.
    demo.section("2. OAuth connect");
    let connect = demo.api(Method::POST, "connect", None).await?;
    let authorize = connect["authorizeUrl"]
        .as_str()
        .ok_or("no authorize URL")?
        .to_string();
    demo.line(&format!(
        "authorize URL: {}…",
        authorize.chars().take(90).collect::<String>()
    ));
    let back = consent(&demo.http, &authorize, ADMIN_USERNAME, ADMIN_PASSWORD).await?;
    demo.line(&format!(
        "{ADMIN_USERNAME} logged in and clicked Allow; Salesforce redirected to {}",
        back.path()
    ));
    let landed = demo
        .http
        .get(back.as_str())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let page = landed
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    demo.line(&format!(
        "callback answered {} → {page}",
        landed.status().as_u16()
    ));
    let status = demo.api(Method::GET, "status", None).await?;
    report.connected = status["status"] == "connected";
    demo.line(&format!(
        "status: {}, org {}, connected as {}",
        status["status"].as_str().unwrap_or("?"),
        status["orgId"].as_str().unwrap_or("?"),
        status["salesforceUser"]["username"].as_str().unwrap_or("?")
    ));
    if !report.connected {
        return Err(format!("not connected: {status}"));
    }

    // 2b. The permissions check: run after connecting, and on demand.
    demo.section("2b. Permissions check (one API call each)");
    let summary = |check: &Value| -> String {
        let missing: Vec<String> = check["missing"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "\n    {} {}\n      fix: {}",
                    if m["mandatory"] == true {
                        "REQUIRED"
                    } else {
                        "recommended"
                    },
                    m["problem"].as_str().unwrap_or(""),
                    m["fix"].as_str().unwrap_or("")
                )
            })
            .collect();
        if missing.is_empty() {
            "everything the setup guide grants is in place".into()
        } else {
            format!("{} missing:{}", missing.len(), missing.concat())
        }
    };
    demo.line(&format!(
        "after connecting: {}",
        summary(&status["permissions"])
    ));
    let lead_read = |granted: bool| sf_emulator::access::AccessChange {
        user: Some(ADMIN_USERNAME.into()),
        objects: vec![sf_emulator::access::ObjectPermission {
            object: "Lead".into(),
            permission: sf_emulator::access::Perm::Read,
            granted,
        }],
        ..Default::default()
    };
    emu.set_access(ORG, &lead_read(false))
        .map_err(|e| e.to_string())?;
    let revoked = demo.api(Method::POST, "permissions/check", None).await?;
    demo.line(&format!(
        "an admin removes Read on Lead from the connected user's profile; Check again: {}",
        summary(&revoked)
    ));
    emu.set_access(ORG, &lead_read(true))
        .map_err(|e| e.to_string())?;
    let granted = demo.api(Method::POST, "permissions/check", None).await?;
    demo.line(&format!("granted back; Check again: {}", summary(&granted)));
    report.permissions_told_then_cleared = revoked["ok"] == false
        && revoked["missing"].as_array().is_some_and(|m| m.len() == 1)
        && granted["ok"] == true
        && granted["missing"].as_array().is_some_and(Vec::is_empty);

    // 3. Users.
    demo.section("3. Users auto-matched");
    let users = demo.api(Method::GET, "users", None).await?;
    demo.line(&format!(
        "{} active standard Salesforce users",
        users["users"].as_array().map_or(0, Vec::len)
    ));
    publish_modjo_users(stack, TENANT).await?;
    let directory = demo.api(Method::GET, "modjo-users", None).await?;
    let body = json!({"users": directory["users"]});
    let matched = demo
        .api(Method::POST, "users/auto-match", Some(body))
        .await?;
    for m in matched["matched"].as_array().into_iter().flatten() {
        demo.line(&format!(
            "  {} → {}",
            m["modjoUserId"].as_str().unwrap_or(""),
            m["sfUserId"].as_str().unwrap_or("")
        ));
    }
    demo.line(&format!(
        "unmatched (owned by the connected user when they host a call): {}",
        matched["unmatched"]
    ));

    // 4. First sync: the schedule fires, the fan-out queues the job, the poller runs it.
    demo.section("4. First sync");
    let started = Instant::now();
    stack.functions["scheduled-sync"]
        .invoke(crate::pollers::scheduled_event(), Duration::from_secs(60))
        .await
        .map_err(|e| format!("schedule: {e}"))?;
    let sync = wait_for(Duration::from_secs(180), || async {
        let view = demo.api(Method::GET, "sync", None).await.ok()?;
        let objects = view["objects"].as_array()?;
        (objects.len() == shared::sync::objects::ALL.len()
            && objects.iter().all(|o| o["state"] == "up_to_date")
            && view["lastSyncAt"].is_string())
        .then_some(view)
    })
    .await
    .ok_or("the first sync did not finish in time")?;
    for o in sync["objects"].as_array().into_iter().flatten() {
        let object = o["object"].as_str().unwrap_or("").to_string();
        let read = o["totalRecordsRead"].as_u64().unwrap_or(0);
        let note = o["message"]
            .as_str()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        demo.line(&format!(
            "  {object:<24} {read:>4} records, {} API calls{note}",
            o["totalApiCalls"]
        ));
        report.synced.insert(object, read);
    }
    demo.line(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));

    // 5. A dozen calls, as Modjo's call ingestion sends them.
    demo.section("5. Calls logged");
    let calls = load_calls(repo, stack)?;
    send_all(stack, &stack.resources.call_events_queue, &calls).await?;
    let ids: Vec<String> = calls
        .iter()
        .filter_map(|c| {
            serde_json::from_str::<Value>(c).ok()?["callId"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let outcomes = wait_for(Duration::from_secs(120), || async {
        let mut all = Vec::new();
        for id in &ids {
            let o = demo
                .api(Method::GET, &format!("calls/{id}"), None)
                .await
                .ok()?;
            if !matches!(
                o["state"].as_str(),
                Some("created" | "enriched" | "unmatched" | "failed")
            ) {
                return None;
            }
            all.push(o);
        }
        Some(all)
    })
    .await
    .ok_or("the calls were not all logged in time")?;
    for o in &outcomes {
        let linked: Vec<String> = o["linked"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                format!(
                    "{} {}",
                    l["object"].as_str().unwrap_or(""),
                    l["name"].as_str().unwrap_or(l["id"].as_str().unwrap_or(""))
                )
            })
            .collect();
        demo.line(&format!(
            "  {:<13} {:<9} {}{}",
            o["callId"].as_str().unwrap_or(""),
            o["state"].as_str().unwrap_or(""),
            if linked.is_empty() {
                String::new()
            } else {
                format!("→ {}", linked.join(", "))
            },
            o["reason"]
                .as_str()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        ));
        report.calls.insert(
            o["callId"].as_str().unwrap_or("").to_string(),
            o["state"].as_str().unwrap_or("").to_string(),
        );
    }

    // 6. Comments added, edited, deleted.
    demo.section("6. Comments");
    let (comments, expected) = load_comments(repo)?;
    for step in ["add", "edit", "delete"] {
        let batch: Vec<String> = comments
            .iter()
            .filter(|(s, _)| s == step)
            .map(|(_, c)| c.clone())
            .collect();
        send_all(stack, &stack.resources.comment_events_queue, &batch).await?;
        demo.line(&format!("{step}: {} event(s) sent", batch.len()));
        wait_queue_empty(stack, &stack.resources.comment_events_queue).await;
    }
    let task_of: HashMap<String, String> = outcomes
        .iter()
        .filter_map(|o| {
            Some((
                o["callId"].as_str()?.to_string(),
                o["taskId"].as_str()?.to_string(),
            ))
        })
        .collect();
    let shown = wait_for(Duration::from_secs(60), || async {
        let mut shown = 0;
        for (call, lines) in &expected {
            let task = task_of.get(call)?;
            let description = emu.record(ORG, task).ok()?["Description"]
                .as_str()?
                .to_string();
            let present: Vec<&str> = description.lines().filter(|l| l.starts_with('[')).collect();
            if present.len() != lines.len() {
                return None;
            }
            shown += present.len();
        }
        Some(shown)
    })
    .await
    .ok_or("the comments did not reach Salesforce in time")?;
    report.comments_shown = shown;
    demo.line(&format!(
        "{shown} comment(s) now shown in Salesforce (one added, edited; one deleted)"
    ));

    // 7. What is now in Salesforce.
    demo.section(
        "7. In Salesforce: each call's activity (a Task; a meeting's calendar Event) with its Modjo block",
    );
    for o in &outcomes {
        let Some(task_id) = o["taskId"].as_str() else {
            continue;
        };
        let task = emu.record(ORG, task_id).map_err(|e| e.to_string())?;
        let description = task["Description"].as_str().unwrap_or("");
        if description.contains(shared::domain::block::BEGIN) {
            report.tasks_with_block += 1;
        }
        let event = o["activity"] == "event";
        if event && o["state"] == "enriched" {
            report.meetings_on_calendar_events += 1;
        }
        demo.line(&format!(
            "— {} {task_id} \"{}\" ({}; Who {}, What {}, Owner {})",
            if event { "Event" } else { "Task" },
            task["Subject"].as_str().unwrap_or(""),
            o["state"].as_str().unwrap_or(""),
            task["WhoId"].as_str().unwrap_or("-"),
            task["WhatId"].as_str().unwrap_or("-"),
            task["OwnerId"].as_str().unwrap_or("-"),
        ));
        for line in description.lines() {
            demo.line(&format!("    | {line}"));
        }
    }

    // 8. What Modjo sees through the read API.
    demo.section("8. In Modjo: call links and the email timeline");
    for o in outcomes.iter().take(3) {
        let id = o["callId"].as_str().unwrap_or("");
        let view = demo.api(Method::GET, &format!("calls/{id}"), None).await?;
        demo.line(&format!("GET calls/{id} → {view}"));
    }
    let contact = emu
        .query(
            ORG,
            "SELECT Id FROM Contact WHERE Email = 'sarah.blanc@boulangeriedurand.fr'",
            false,
        )
        .map_err(|e| e.to_string())?;
    if let Some(id) = contact.first().and_then(|c| c["Id"].as_str()) {
        let record = demo
            .api(Method::GET, &format!("records/{id}"), None)
            .await?;
        demo.line(&format!(
            "GET records/{id} → {} {} with {} email(s) on its timeline:",
            record["fields"]["FirstName"].as_str().unwrap_or(""),
            record["fields"]["LastName"].as_str().unwrap_or(""),
            record["emailTimeline"].as_array().map_or(0, Vec::len)
        ));
        for e in record["emailTimeline"].as_array().into_iter().flatten() {
            demo.line(&format!(
                "    {} — {}",
                e["fields"]["occurredAt"].as_str().unwrap_or(""),
                e["fields"]["Subject"].as_str().unwrap_or("")
            ));
        }
    }

    // 9. The Salesforce API calls used.
    demo.section("9. Salesforce API calls used");
    let counters = emu.counters(ORG).map_err(|e| e.to_string())?;
    report.api_calls = counters.api_used;
    report.api_calls_by_kind = counters.by_kind.clone();
    for (kind, n) in &counters.by_kind {
        demo.line(&format!("  {kind:<20} {n}"));
    }
    demo.line(&format!(
        "  {:<20} {} of {} allowed per day",
        "total", counters.api_used, counters.api_limit
    ));

    // 10. A call left unmatched finds its contact once the rep creates it.
    demo.section("10. An unmatched call, matched by the next sync");
    report.rematched = rematch_later(&mut demo, emu, &calls, &outcomes).await?;

    demo.line(&format!(
        "Function logs (JSON, EMF metrics): {}",
        stack.log_dir.display()
    ));
    println!();
    Ok(report)
}

/// The first unmatched call with a phone number: its contact is created in
/// Salesforce, the schedule fires, and the sync's re-match logs the call.
async fn rematch_later(
    demo: &mut Demo<'_>,
    emu: &sf_emulator::Emulator,
    calls: &[String],
    outcomes: &[Value],
) -> Result<Option<(String, String)>, String> {
    let phone_of = |id: &str| {
        let call: Value = calls
            .iter()
            .filter_map(|c| serde_json::from_str::<Value>(c).ok())
            .find(|c| c["callId"] == id)?;
        call["participants"]
            .as_array()?
            .iter()
            .find(|p| p["role"] == "external")?["phone"]
            .as_str()
            .map(str::to_string)
    };
    let Some((id, phone)) = outcomes
        .iter()
        .filter(|o| o["state"] == "unmatched")
        .filter_map(|o| o["callId"].as_str())
        .find_map(|id| Some((id.to_string(), phone_of(id)?)))
    else {
        demo.line("no unmatched call with a phone number");
        return Ok(None);
    };
    demo.line(&format!(
        "{id} is unmatched: nobody in Salesforce has {phone}. The rep creates the contact:"
    ));
    let contact = emu
        .seed(
            ORG,
            &[sf_emulator::SeedRecord {
                object: "Contact".into(),
                reference: None,
                fields: json!({"FirstName": "Camille", "LastName": "Garnier", "Phone": phone})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }],
        )
        .map_err(|e| e.to_string())?;
    demo.line(&format!(
        "  Contact {} Camille Garnier, {phone}",
        contact.first().map_or("", String::as_str)
    ));
    demo.stack.functions["scheduled-sync"]
        .invoke(crate::pollers::scheduled_event(), Duration::from_secs(60))
        .await
        .map_err(|e| format!("schedule: {e}"))?;
    let view = wait_for(Duration::from_secs(180), || async {
        let o = demo
            .api(Method::GET, &format!("calls/{id}"), None)
            .await
            .ok()?;
        (o["state"] != "unmatched").then_some(o)
    })
    .await
    .ok_or("the next sync did not re-match the call in time")?;
    let state = view["state"].as_str().unwrap_or("").to_string();
    demo.line(&format!(
        "after the next sync: {id} {state}, Task {} on {}",
        view["taskId"].as_str().unwrap_or("-"),
        view["whoId"].as_str().unwrap_or("-"),
    ));
    for r in view["rematches"].as_array().into_iter().flatten() {
        demo.line(&format!(
            "  re-matched at {}: {}",
            r["at"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        ));
    }
    let sync = demo.api(Method::GET, "sync", None).await?;
    if let Some(r) = sync["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["object"] == "rematch")
    {
        demo.line(&format!(
            "  re-matching spent {} Salesforce API calls ({})",
            r["apiCalls"],
            r["message"].as_str().unwrap_or("")
        ));
    }
    Ok(Some((id, state)))
}

impl Demo<'_> {
    fn section(&mut self, title: &str) {
        println!("\n== {title}");
        let _ = writeln!(self.out, "\n== {title}");
    }

    fn line(&mut self, text: &str) {
        println!("{text}");
        let _ = writeln!(self.out, "{text}");
    }

    /// A request to integration-api through the local HTTP API, as the platform makes it.
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/integrations/salesforce/{path}", self.stack.api_url());
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{method} {path}: HTTP {} {value}", status.as_u16()))
        }
    }
}

/// Polls `check` until it returns something or `limit` passes.
async fn wait_for<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

async fn wait_queue_empty(stack: &LocalStack, queue: &str) {
    let _ = wait_for(Duration::from_secs(60), || async {
        (stack.queue_depth(queue).await? == 0).then_some(())
    })
    .await;
}

async fn send_all(stack: &LocalStack, queue: &str, bodies: &[String]) -> Result<(), String> {
    stack.send_messages(queue, bodies).await
}

/// `$now-3d2h`, `$now-45m`: a time relative to now.
fn relative(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let rest = text.strip_prefix("$now")?;
    let mut total = chrono::Duration::zero();
    let (sign, body) = match rest.chars().next() {
        Some('-') => (-1, &rest[1..]),
        Some('+') => (1, &rest[1..]),
        None => (1, ""),
        _ => return None,
    };
    let mut number = String::new();
    for c in body.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().ok()?;
        number.clear();
        total += match c {
            'd' => chrono::Duration::days(n),
            'h' => chrono::Duration::hours(n),
            'm' => chrono::Duration::minutes(n),
            _ => return None,
        };
    }
    Some(chrono::Utc::now() + total * sign)
}

/// `events/demo/calls.json`, placeholders resolved against this stack's demo org.
fn load_calls(repo: &std::path::Path, stack: &LocalStack) -> Result<Vec<String>, String> {
    let emu = stack.emulator.as_ref().ok_or("no emulator")?;
    let path = repo.join("events/demo/calls.json");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for call in doc["calls"].as_array().into_iter().flatten() {
        let mut call = call.clone();
        call["tenantId"] = json!(TENANT);
        // `@ref`: a seeded record's time — a calendar Event's start (or end), else
        // the CreatedDate of the dialer's Task.
        let seeded =
            |reference: &str, field: &str| -> Result<chrono::DateTime<chrono::Utc>, String> {
                let id = emu.seed_ref(ORG, reference).map_err(|e| e.to_string())?;
                let record = emu.record(ORG, &id).map_err(|e| e.to_string())?;
                let at = record[field]
                    .as_str()
                    .or(record["CreatedDate"].as_str())
                    .unwrap_or("");
                shared::salesforce::keyset::parse_datetime(at)
                    .ok_or(format!("no {field} on {reference}"))
            };
        let rfc =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let started = call["startedAt"].as_str().unwrap_or("").to_string();
        let at = if let Some(reference) = started.strip_prefix('@') {
            seeded(reference, "StartDateTime")?
        } else {
            relative(&started).ok_or(format!("startedAt {started:?}"))?
        };
        call["startedAt"] = json!(rfc(at));
        if let Some(calendar) = call.get_mut("calendarEvent").and_then(Value::as_object_mut) {
            for (key, field) in [("start", "StartDateTime"), ("end", "EndDateTime")] {
                let text = calendar
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let at = match text.strip_prefix('@') {
                    Some(reference) => seeded(reference, field)?,
                    None => relative(&text).ok_or(format!("calendarEvent.{key} {text:?}"))?,
                };
                calendar.insert(key.into(), json!(rfc(at)));
            }
        }
        out.push(call.to_string());
    }
    Ok(out)
}

/// `events/demo/comments.json`: (step, event body), and the comment lines each
/// call shows once every step is applied.
type Expected = BTreeMap<String, Vec<String>>;

fn load_comments(repo: &std::path::Path) -> Result<(Vec<(String, String)>, Expected), String> {
    let path = repo.join("events/demo/comments.json");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    let mut live: BTreeMap<(String, String), bool> = BTreeMap::new();
    for c in doc["comments"].as_array().into_iter().flatten() {
        let step = c["step"].as_str().unwrap_or("add").to_string();
        let action = if step == "delete" { "delete" } else { "upsert" };
        let updated = relative(c["updatedAt"].as_str().unwrap_or("$now")).ok_or("updatedAt")?;
        let call = c["callId"].as_str().unwrap_or("").to_string();
        let id = c["commentId"].as_str().unwrap_or("").to_string();
        live.insert((call.clone(), id.clone()), action == "upsert");
        let body = json!({
            "version": 1, "tenantId": TENANT, "callId": call, "commentId": id, "action": action,
            "authorUserId": "usr_reviewer", "authorName": c["authorName"], "text": c["text"],
            "atSecond": c["atSecond"], "createdAt": updated.to_rfc3339(), "updatedAt": updated.to_rfc3339(),
        });
        events.push((step, body.to_string()));
    }
    let mut expected: Expected = BTreeMap::new();
    for ((call, id), alive) in live {
        let lines = expected.entry(call).or_default();
        if alive {
            lines.push(id);
        }
    }
    Ok((events, expected))
}

/// What a person does on Salesforce's login and consent page: fills the form and
/// clicks Allow. Returns where Salesforce sends the browser back.
pub async fn consent(
    http: &Client,
    authorize_url: &str,
    username: &str,
    password: &str,
) -> Result<url::Url, String> {
    let page = http
        .get(authorize_url)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if page.status() != 200 {
        return Err(format!("authorize page answered {}", page.status()));
    }
    let html = page.text().await.map_err(|e| e.to_string())?;
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    form.push(("action".into(), "Allow".into()));
    let target = url::Url::parse(authorize_url)
        .and_then(|u| u.join("/services/oauth2/authorize"))
        .map_err(|e| e.to_string())?;
    let answer = http
        .post(target)
        .form(&form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let location = answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or(format!(
            "the consent page answered {} without a redirect",
            answer.status()
        ))?;
    url::Url::parse(location).map_err(|e| e.to_string())
}

/// The `<input type="hidden" name="…" value="…">` pairs of an HTML page (the
/// consent page's form), unescaped.
pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        tag.find(&key).map(|i| {
            let rest = &tag[i + key.len()..];
            html_unescape(&rest[..rest.find('"').unwrap_or(rest.len())])
        })
    };
    html.split("<input")
        .skip(1)
        .filter_map(|chunk| {
            let tag = &chunk[..chunk.find('>').unwrap_or(chunk.len())];
            if attr(tag, "type").as_deref() != Some("hidden") {
                return None;
            }
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect()
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = chrono::Utc::now();
        let t = relative("$now-3d2h").unwrap();
        let expected = now - chrono::Duration::days(3) - chrono::Duration::hours(2);
        assert!((t - expected).num_seconds().abs() <= 1);
        assert!(relative("$now+15m").unwrap() > now);
        assert!(relative("yesterday").is_none());
        assert!(relative("$now-3x").is_none());
    }
}
