//! The user interface's record pages, as far as links from other products need
//! them: `GET /lightning/r/<Object>/<id>/view` shows a record to a logged-in
//! user of its org, as Lightning Experience does.
//!
//! As Salesforce: without a UI session the browser is sent to the login page
//! (`/?startURL=…`), which sends it back after a login. A login on the OAuth
//! consent page opens a UI session too (the `sid` cookie), so a person who has
//! just linked an app sees records without logging in again. A record of
//! another org, or none, is an error page; a deleted one says so.

use std::sync::Arc;

use http::Method;

use crate::http::{Req, Resp, Shared};
use crate::world::{UiSession, World, random_token};

/// Name of the UI session cookie.
pub const SESSION_COOKIE: &str = "sid";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: u16, title: &str, body: &str) -> Resp {
    Resp::html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} | Salesforce (emulated)</title>\
<style>body{{font-family:sans-serif;background:#f3f3f3;margin:0}}main{{background:#fff;max-width:760px;margin:40px auto;padding:24px;border-radius:6px}}\
th{{text-align:left;padding:4px 12px 4px 0;color:#555;vertical-align:top}}td{{white-space:pre-wrap}}.error{{color:#c23934}}\
label{{display:block;margin-top:12px}}input[type=text],input[type=password]{{width:100%;padding:8px}}button{{margin-top:16px;padding:8px 16px}}</style>\
</head><body><main>{body}</main></body></html>",
            escape(title)
        ),
    )
}

/// The session named by the request's `sid` cookie.
fn session(world: &World, req: &Req) -> Option<UiSession> {
    let cookies = req.header("cookie")?;
    let sid = cookies.split(';').find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == SESSION_COOKIE).then_some(value)
    })?;
    world.ui_sessions.get(sid).cloned()
}

/// Opens a UI session for `session` and returns the `Set-Cookie` value.
pub fn open_session(world: &mut World, session: UiSession) -> String {
    let sid = random_token(48);
    world.ui_sessions.insert(sid.clone(), session);
    format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax")
}

/// Only a path of this host: never an open redirect.
fn safe_start(start: Option<String>) -> String {
    start
        .filter(|s| s.starts_with('/') && !s.starts_with("//") && !s.contains('\\'))
        .unwrap_or_else(|| "/".to_string())
}

fn login_form(start: &str, error: Option<&str>) -> Resp {
    let err = error
        .map(|e| format!("<p id=\"error\" class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        if error.is_some() { 401 } else { 200 },
        "Login",
        &format!(
            "<form method=\"post\" action=\"/\"><h1>Log in to Salesforce</h1>{err}\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\">\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\
<input type=\"hidden\" name=\"startURL\" value=\"{}\"><button type=\"submit\">Log In</button></form>",
            escape(start)
        ),
    )
}

/// `/`: the login page (GET), and the login (POST).
pub fn login(shared: &Arc<Shared>, req: &Req) -> Resp {
    if req.method == Method::GET {
        return login_form(&safe_start(req.param("startURL")), None);
    }
    if req.method != Method::POST {
        return Resp::text(405, "Method Not Allowed");
    }
    let form = req.form();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let start = safe_start(field("startURL"));
    let mut world = shared.lock();
    let username = field("username").unwrap_or_default();
    let password = field("password").unwrap_or_default();
    let found = world.orgs.iter().enumerate().find_map(|(org, o)| {
        let user = o.user_by_username(&username)?;
        (o.passwords.get(&user) == Some(&password)).then_some((org, user))
    });
    match found {
        Some((org, user)) if world.user_active(org, user) => {
            let cookie = open_session(&mut world, UiSession { org, user });
            Resp::redirect(&start).header("Set-Cookie", &cookie)
        }
        Some(_) => login_form(
            &start,
            Some("Your access is disabled. Contact your site administrator."),
        ),
        None => login_form(
            &start,
            Some(
                "Please check your username and password. If you still can't log in, contact your Salesforce administrator.",
            ),
        ),
    }
}

/// `GET /lightning/r/<Object>/<id>/view`.
pub fn record_page(shared: &Arc<Shared>, req: &Req) -> Resp {
    let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let ["lightning", "r", object, id, "view"] = parts.as_slice() else {
        return page(404, "Page not found", "<h1>Page not found</h1>");
    };
    let world = shared.lock();
    let Some(s) = session(&world, req) else {
        let start = format!("/lightning/r/{object}/{id}/view");
        let target = format!(
            "/?startURL={}",
            url::form_urlencoded::byte_serialize(start.as_bytes()).collect::<String>()
        );
        return Resp::redirect(&target);
    };
    let Some(org) = world.orgs.get(s.org) else {
        return page(404, "Page not found", "<h1>Page not found</h1>");
    };
    let missing = || {
        page(
            404,
            "Record not found",
            "<h1>Looks like there's a problem.</h1><p class=\"error\">Record not found or insufficient access.</p>",
        )
    };
    let Some(r) = org.parse_id(id) else {
        return missing();
    };
    let record = org.record_json(r, None, crate::API_VERSION);
    let actual = record["attributes"]["type"].as_str().unwrap_or_default();
    if !actual.eq_ignore_ascii_case(object) {
        return missing();
    }
    if !org.is_live(r) {
        return page(
            404,
            "Record deleted",
            "<h1>Record deleted</h1><p class=\"error\">This record was deleted.</p>",
        );
    }
    let title = ["Subject", "Name"]
        .iter()
        .find_map(|f| record[*f].as_str())
        .unwrap_or(id)
        .to_string();
    let mut rows = String::new();
    if let Some(fields) = record.as_object() {
        for (name, value) in fields {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::Object(_) => continue,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            rows.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td data-field=\"{}\">{}</td></tr>",
                escape(name),
                escape(name),
                escape(&text)
            ));
        }
    }
    page(
        200,
        &format!("{actual}: {title}"),
        &format!(
            "<p>{}</p><h1 id=\"record-title\">{}</h1><table>{rows}</table>",
            escape(actual),
            escape(&title)
        ),
    )
}
