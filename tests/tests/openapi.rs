//! docs/openapi.yaml against integration-api: the real handler is driven
//! through every route and every documented status (on moto and the emulator),
//! and infra/scripts/check_openapi.py checks that the document's operations are
//! exactly the routes the function serves, that every answer is documented and
//! validates against its schema, and that every documented status was produced.

use std::path::PathBuf;
use std::process::Command;

use e2e::scenario::{self, call, log, rfc};
use e2e::stack::{Claims, Stack, api_event_with, callback_event, consent, location};
use e2e::{repo_root, unique};
use lambda_http::Body;
use serde_json::{Value, json};
use shared::api::routes::{Access, ROUTES, find};
use shared::ports::CallStore;

/// Every exchange with the handler, as the checker reads them.
struct Recorder {
    exchanges: Vec<Value>,
}

impl Recorder {
    /// One request to the handler as API Gateway delivers it; the status and body.
    async fn call(
        &mut self,
        stack: &Stack,
        method: &str,
        path: &str,
        body: Option<Value>,
        claims: Option<Claims>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.send(
            stack,
            method,
            path,
            body.map(|b| b.to_string()),
            claims,
            headers,
        )
        .await
    }

    async fn send(
        &mut self,
        stack: &Stack,
        method: &str,
        path: &str,
        body: Option<String>,
        claims: Option<Claims>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = stack
            .api(api_event_with(method, path, body, claims, headers))
            .await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = match response.body() {
            Body::Text(t) if content_type.starts_with("application/json") => {
                serde_json::from_str(t).unwrap_or(Value::String(t.clone()))
            }
            Body::Text(t) => Value::String(t.clone()),
            Body::Binary(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            _ => Value::Null,
        };
        let raw_path = path.split('?').next().unwrap();
        let segments: Vec<String> = raw_path
            .trim_start_matches("/integrations/salesforce")
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let template = find(method, &segments)
            .map(|(route, _)| format!("/integrations/salesforce/{}", route.path))
            .unwrap_or_else(|| raw_path.to_string());
        self.exchanges.push(json!({
            "method": method, "template": template, "path": path, "status": status,
            "contentType": content_type, "body": body,
        }));
        (status, body)
    }
}

fn admin(t: &str) -> Option<Claims> {
    Claims::admin(t)
}

fn member(t: &str) -> Option<Claims> {
    Claims::member(t)
}

const P: &str = "/integrations/salesforce";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_route_status_and_body() {
    let w = scenario::world().await;
    let stack = &w.stack;
    let mut r = Recorder {
        exchanges: Vec::new(),
    };

    // The page and its files: public, revalidated with ETags.
    for path in [
        format!("{P}/console"),
        format!("{P}/console/app.js"),
        format!("{P}/console/i18n.js"),
        format!("{P}/console/app.css"),
        format!("{P}/console/icon.svg"),
    ] {
        let response = stack
            .api(api_event_with("GET", &path, None, None, &[]))
            .await;
        assert_eq!(response.status(), 200, "{path}");
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        r.call(stack, "GET", &path, None, None, &[]).await;
        let (status, _) = r
            .call(stack, "GET", &path, None, None, &[("if-none-match", &etag)])
            .await;
        assert_eq!(status, 304, "{path}");
    }
    let page = stack
        .api(api_event_with(
            "GET",
            &format!("{P}/console"),
            None,
            None,
            &[],
        ))
        .await;
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let (status, _) = r
        .call(
            stack,
            "GET",
            &format!("{P}/console/passwd"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);

    // Every other route needs the authorizer's claims; admin routes the admin role.
    let fresh = unique("fresh");
    for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let path = format!("{P}/{}", route.path.replace('{', "x").replace('}', ""));
        let (status, _) = r.call(stack, route.method, &path, None, None, &[]).await;
        assert_eq!(status, 401, "{} {path}", route.method);
        if route.access == Access::Admin {
            let (status, _) = r
                .call(stack, route.method, &path, None, member(&fresh), &[])
                .await;
            assert_eq!(status, 403, "{} {path}", route.method);
        }
    }

    // A workspace with nothing set up yet.
    let nothing = [
        ("GET", "settings", None, 404),
        ("GET", "status", None, 404),
        ("POST", "permissions/check", None, 404),
        ("GET", "users", None, 404),
        ("POST", "users/auto-match", Some(json!({"users": []})), 404),
        (
            "PUT",
            "mappings/usr_1",
            Some(json!({"sfUserId": "005000000000001AAA"})),
            404,
        ),
        ("DELETE", "mappings/usr_1", None, 404),
        ("DELETE", "connection", None, 404),
        (
            "POST",
            "erasures",
            Some(json!({"email": "jane@acme.com"})),
            404,
        ),
        ("GET", "sync", None, 404),
        ("POST", "sync", None, 404),
        ("POST", "connect", None, 409),
        ("GET", "calls/nope", None, 404),
        (
            "PUT",
            "calls/nope/link",
            Some(json!({"whoId": "003000000000001AAA"})),
            404,
        ),
        ("GET", "attention", None, 200),
        ("GET", "records/003000000000001AAA", None, 404),
        ("GET", "modjo-users", None, 200),
        ("GET", "mappings", None, 200),
        ("GET", "calls", None, 200),
    ];
    for (method, path, body, expected) in nothing {
        let (status, answer) = r
            .call(
                stack,
                method,
                &format!("{P}/{path}"),
                body,
                admin(&fresh),
                &[],
            )
            .await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }

    // Settings: refused values, a body over 256 KiB, then saved.
    let settings = |instance: &str| {
        json!({
            "consumerKey": stack.sf.app.consumer_key,
            "consumerSecret": stack.sf.app.consumer_secret,
            "instanceUrl": instance,
        })
    };
    let (status, answer) = r
        .call(
            stack,
            "PUT",
            &format!("{P}/settings"),
            Some(settings("https://169.254.169.254/latest")),
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("instanceUrl"))
    );
    let huge = format!("{{\"consumerKey\":\"{}\"}}", "k".repeat(300 * 1024));
    let (status, _) = r
        .send(
            stack,
            "PUT",
            &format!("{P}/settings"),
            Some(huge),
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 413);
    let typed = format!("{}/lightning/page/home", stack.sf.base_url());
    let (status, saved) = r
        .call(
            stack,
            "PUT",
            &format!("{P}/settings"),
            Some(settings(&typed)),
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["notices"][0]["reason"], "origin_only", "{saved}");
    for (method, path, body, expected) in [
        ("GET", "settings", None, 200),
        ("GET", "status", None, 200),
        ("GET", "users", None, 409),
        ("POST", "users/auto-match", Some(json!({"users": []})), 409),
        (
            "PUT",
            "mappings/usr_1",
            Some(json!({"sfUserId": "005000000000001AAA"})),
            409,
        ),
        ("POST", "sync", None, 409),
        ("POST", "permissions/check", None, 409),
    ] {
        let (status, answer) = r
            .call(
                stack,
                method,
                &format!("{P}/{path}"),
                body,
                admin(&fresh),
                &[],
            )
            .await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }

    // Link the account through the emulator's consent page.
    let (status, connect) = r
        .call(
            stack,
            "POST",
            &format!("{P}/connect"),
            None,
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let back = consent(
        connect["authorizeUrl"].as_str().unwrap(),
        "admin@acme.test",
        "password",
        "Allow",
    )
    .await
    .expect("consent");
    let done = stack.callback(callback_event(&back)).await;
    assert!(location(&done).as_str().contains("salesforce=connected"));
    let (status, _) = r
        .call(
            stack,
            "POST",
            &format!("{P}/connect"),
            None,
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 409, "already connected");
    let (status, permissions) = r
        .call(
            stack,
            "POST",
            &format!("{P}/permissions/check"),
            None,
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{permissions}");
    let (_, shown) = r
        .call(
            stack,
            "GET",
            &format!("{P}/status"),
            None,
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(
        shown["permissions"], permissions,
        "the status shows the last check"
    );

    // Users.
    let (status, users) = r
        .call(
            stack,
            "GET",
            &format!("{P}/users"),
            None,
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let sf_admin = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["Username"] == "admin@acme.test")
        .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let directory = json!({"users": [
        {"id": "usr_ada", "email": "ADMIN@acme.test", "name": "Ada"},
        {"id": "usr_new", "email": "new@modjo.test"}
    ]});
    for (method, path, body, expected) in [
        ("PUT", "modjo-users", Some(directory.clone()), 200),
        (
            "PUT",
            "modjo-users",
            Some(json!({"users": [{"id": "u".repeat(129), "email": "x@y.z"}]})),
            400,
        ),
        ("GET", "modjo-users", None, 200),
        ("POST", "users/auto-match", Some(directory.clone()), 200),
        (
            "POST",
            "users/auto-match",
            Some(json!({"users": [{"id": "u".repeat(129), "email": "x@y.z"}]})),
            400,
        ),
        (
            "PUT",
            "mappings/usr_new",
            Some(json!({"sfUserId": sf_admin})),
            200,
        ),
        (
            "PUT",
            "mappings/usr_new",
            Some(json!({"sfUserId": "not-a-user"})),
            400,
        ),
        ("GET", "mappings", None, 200),
        ("DELETE", "mappings/usr_new", None, 200),
        ("POST", "sync", None, 202),
        ("POST", "sync", None, 429),
    ] {
        let (status, answer) = r
            .call(
                stack,
                method,
                &format!("{P}/{path}"),
                body,
                admin(&fresh),
                &[],
            )
            .await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }

    // The synced workspace: sync status, a record, calls (one with its Task).
    scenario::sync(stack, &w.tenant).await;
    let t = w.tenant.as_str();
    let bodies = [
        call(
            &w.tenant,
            "oa_created",
            "outbound",
            json!([
            {"role": "external", "email": "jane@acme.com"},
            {"role": "internal", "userId": "usr_12"}]),
        ),
        call(
            &w.tenant,
            "oa_unmatched",
            "outbound",
            json!([
            {"role": "external", "email": "nobody@nowhere.test"}]),
        ),
    ];
    log(&w, &bodies).await;
    let created = stack
        .aws
        .store()
        .get_outcome(&w.tenant, "oa_created")
        .await
        .unwrap()
        .unwrap();
    assert!(
        created.task_id.is_some(),
        "{created:?} at {}",
        rfc(chrono::Utc::now())
    );
    let contact = w.ids["jane"].clone();
    for (method, path, expected) in [
        ("GET", "sync".to_string(), 200),
        ("GET", "calls".to_string(), 200),
        ("GET", "calls?state=unmatched&limit=1".to_string(), 200),
        ("GET", "calls?limit=1".to_string(), 200),
        ("GET", "calls?state=done".to_string(), 400),
        ("GET", "calls?limit=0".to_string(), 400),
        ("GET", "calls?cursor=forged".to_string(), 400),
        ("GET", "calls/oa_created".to_string(), 200),
        ("GET", format!("records/{contact}"), 200),
        ("GET", "attention".to_string(), 200),
        ("GET", "attention?limit=0".to_string(), 400),
    ] {
        let (status, answer) = r
            .call(stack, method, &format!("{P}/{path}"), None, member(t), &[])
            .await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    let (_, one) = r
        .call(
            stack,
            "GET",
            &format!("{P}/calls/oa_created"),
            None,
            member(t),
            &[],
        )
        .await;
    assert_eq!(
        one["taskUrl"],
        format!(
            "{}/lightning/r/Task/{}/view",
            stack.sf.base_url(),
            created.task_id.unwrap()
        )
    );

    // A manual link: the host or an admin; a bad id or body is refused.
    let link = format!("{P}/calls/oa_created/link");
    let account = json!({"whatId": w.ids["acme"]});
    for (body, claims, expected) in [
        (json!({"whoId": "nope"}), admin(t), 400),
        (
            json!({"whoId": w.ids["lead"], "whatId": w.ids["acme"]}),
            admin(t),
            400,
        ),
        (json!({"colour": "red"}), admin(t), 400),
        (account.clone(), member(t), 403),
        (
            json!({"whoId": contact, "whatId": w.ids["acme"]}),
            admin(t),
            200,
        ),
    ] {
        let (status, answer) = r
            .call(stack, "PUT", &link, Some(body.clone()), claims, &[])
            .await;
        assert_eq!(status, expected, "PUT {link} {body}: {answer}");
    }
    let (status, _) = r
        .call(
            stack,
            "PUT",
            &format!("{P}/calls/oa_never_seen/link"),
            Some(account.clone()),
            admin(t),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    // A call still waiting to be logged cannot be linked yet.
    let logged = stack
        .aws
        .store()
        .get_outcome(&w.tenant, "oa_created")
        .await
        .unwrap()
        .unwrap();
    let parked = shared::domain::CallOutcome {
        message: logged.message.map(|m| m.replace("oa_created", "oa_parked")),
        ..shared::domain::CallOutcome::new(
            "oa_parked",
            shared::domain::CallState::Waiting,
            chrono::Utc::now(),
        )
    };
    stack
        .aws
        .store()
        .save_outcome(&w.tenant, &parked)
        .await
        .unwrap();
    let (status, _) = r
        .call(
            stack,
            "PUT",
            &format!("{P}/calls/oa_parked/link"),
            Some(account),
            admin(t),
            &[],
        )
        .await;
    assert_eq!(status, 409);

    // Erase a person; then purge the workspace.
    for (body, expected) in [
        (json!({}), 400),
        (json!({"email": "jane@acme.com", "colour": "red"}), 400),
        (json!({"email": "jane@acme.com"}), 200),
    ] {
        let (status, answer) = r
            .call(
                stack,
                "POST",
                &format!("{P}/erasures"),
                Some(body.clone()),
                admin(t),
                &[],
            )
            .await;
        assert_eq!(status, expected, "POST erasures {body}: {answer}");
    }
    let (status, purged) = r
        .call(
            stack,
            "DELETE",
            &format!("{P}/connection?purge=true"),
            None,
            admin(t),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{purged}");

    // Disconnect.
    let (status, _) = r
        .call(
            stack,
            "DELETE",
            &format!("{P}/connection"),
            None,
            admin(&fresh),
            &[],
        )
        .await;
    assert_eq!(status, 200);

    // The checker.
    let observed = json!({
        "routes": ROUTES.iter().map(|r| json!({"method": r.method, "path": format!("{P}/{}", r.path)})).collect::<Vec<_>>(),
        "exchanges": r.exchanges,
    });
    let file = std::env::temp_dir().join(format!("{}.json", unique("openapi-observed")));
    std::fs::write(&file, serde_json::to_vec_pretty(&observed).unwrap()).unwrap();
    let document = repo_root().join("docs/openapi.yaml");
    let (ok, text) = check(&document, &file);
    assert!(ok, "{text}\n(exchanges in {})", file.display());

    // The checker fails where the document and the function part: a property
    // the function sends that the document does not know, a route it lacks.
    let original = std::fs::read_to_string(&document).unwrap();
    let broken = original
        .replacen("        taskUrl:\n", "        taskLink:\n", 1)
        .replacen(
            "  /integrations/salesforce/connection:\n",
            "  /integrations/salesforce/connexion:\n",
            1,
        );
    assert_ne!(
        broken, original,
        "the text to break is no longer in the document"
    );
    let broken_path = std::env::temp_dir().join(format!("{}.yaml", unique("openapi-broken")));
    std::fs::write(&broken_path, broken).unwrap();
    let (ok, text) = check(&broken_path, &file);
    assert!(!ok, "a broken document passed:\n{text}");
    assert!(
        text.contains("GET /integrations/salesforce/calls/oa_created -> 200: (body): Additional properties are not allowed ('taskUrl' was unexpected)"),
        "{text}"
    );
    assert!(
        text.contains(
            "DELETE /integrations/salesforce/connection: served by integration-api but not in"
        ),
        "{text}"
    );
    let _ = std::fs::remove_file(&broken_path);
    let _ = std::fs::remove_file(&file);
}

/// Runs the checker: whether it passed, and what it printed.
fn check(document: &std::path::Path, observed: &std::path::Path) -> (bool, String) {
    let out = Command::new(venv_python())
        .arg(repo_root().join("infra/scripts/check_openapi.py"))
        .arg(document)
        .arg(observed)
        .output()
        .expect("running check_openapi.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn venv_python() -> PathBuf {
    let root = repo_root();
    let status = Command::new(root.join("infra/scripts/bootstrap.sh"))
        .status()
        .expect("running infra/scripts/bootstrap.sh");
    assert!(status.success(), "infra/scripts/bootstrap.sh failed");
    root.join(".venv/bin/python")
}
