//! OAuth 2.0 web-server flow: authorize (login and consent page), token, revoke,
//! and the identity URL.
//!
//! Login form fields (stable, for tests): `username`, `password`, `action`
//! (`Allow` or `Deny`), and the hidden `client_id`, `redirect_uri`, `state`,
//! `scope`, `code_challenge`, `code_challenge_method`, `response_type`.

use crate::http::{Req, Resp, Shared};
use crate::store::RecordId;
use crate::world::{AuthCode, CODE_TTL_MS, World, random_token};
use base64::Engine;
use http::Method;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(error: &str, description: &str) -> Resp {
    Resp::html(
        400,
        format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>OAuth Error</title></head><body>\
             <h1>OAuth Error</h1><p>We can't authorize you because of an OAuth error. For more information, contact your Salesforce administrator.</p>\
             <p id=\"error\">error={}&amp;error_description={}</p></body></html>",
            html_escape(error),
            html_escape(description)
        ),
    )
}

/// Parameters carried from the authorize request to the consent form.
#[derive(Debug, Clone, Default)]
struct AuthParams {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    response_type: String,
}

impl AuthParams {
    fn from_pairs(pairs: &[(String, String)]) -> AuthParams {
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        AuthParams {
            client_id: get("client_id").unwrap_or_default(),
            redirect_uri: get("redirect_uri").unwrap_or_default(),
            state: get("state"),
            scope: get("scope").filter(|s| !s.is_empty()),
            code_challenge: get("code_challenge").filter(|s| !s.is_empty()),
            code_challenge_method: get("code_challenge_method").filter(|s| !s.is_empty()),
            response_type: get("response_type").unwrap_or_default(),
        }
    }

    fn scopes(&self) -> Vec<String> {
        match &self.scope {
            Some(s) => s.split_whitespace().map(str::to_string).collect(),
            // The connected app's selected scopes.
            None => vec!["api".into(), "refresh_token".into()],
        }
    }
}

fn redirect_with(uri: &str, pairs: &[(&str, Option<&str>)]) -> Resp {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    if let Some(v) = v {
                        q.append_pair(k, v);
                    }
                }
            }
            Resp::redirect(u.as_str())
        }
        Err(_) => error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ),
    }
}

fn login_page(p: &AuthParams, app_name: &str, error: Option<&str>) -> Resp {
    let hidden = |name: &str, value: Option<&str>| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(value.unwrap_or(""))
        )
    };
    let err = error
        .map(|e| format!("<p id=\"error\" class=\"error\">{}</p>", html_escape(e)))
        .unwrap_or_default();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Login | Salesforce (emulated)</title>\
<style>body{{font-family:sans-serif;background:#f3f3f3}}form{{background:#fff;max-width:360px;margin:60px auto;padding:24px;border-radius:6px}}\
label{{display:block;margin-top:12px}}input[type=text],input[type=password]{{width:100%;padding:8px}}.error{{color:#c23934}}\
button{{margin-top:16px;padding:8px 16px}}</style></head><body>\
<form method=\"post\" action=\"/services/oauth2/authorize\">\
<h2>Log in to allow access</h2><p><b>{app}</b> is asking to access your Salesforce data ({scopes}).</p>{err}\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\">\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\">\
{h1}{h2}{h3}{h4}{h5}{h6}{h7}\
<button type=\"submit\" name=\"action\" value=\"Allow\">Allow</button> \
<button type=\"submit\" name=\"action\" value=\"Deny\">Deny</button>\
</form></body></html>",
        app = html_escape(app_name),
        scopes = html_escape(&p.scopes().join(" ")),
        h1 = hidden("client_id", Some(&p.client_id)),
        h2 = hidden("redirect_uri", Some(&p.redirect_uri)),
        h3 = hidden("state", p.state.as_deref()),
        h4 = hidden("scope", p.scope.as_deref()),
        h5 = hidden("code_challenge", p.code_challenge.as_deref()),
        h6 = hidden("code_challenge_method", p.code_challenge_method.as_deref()),
        h7 = hidden("response_type", Some(&p.response_type)),
    );
    Resp::html(if error.is_some() { 401 } else { 200 }, page)
}

/// Validates client and redirect URI. Never redirects to an unverified URI.
fn check_client(world: &World, p: &AuthParams) -> Result<(usize, usize), Resp> {
    let Some(&(org, app)) = world.apps.get(&p.client_id) else {
        return Err(error_page("invalid_client_id", "client identifier invalid"));
    };
    if p.redirect_uri.is_empty() || p.redirect_uri != world.orgs[org].apps[app].callback_url {
        return Err(error_page(
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ));
    }
    if p.response_type != "code" {
        return Err(redirect_with(
            &p.redirect_uri,
            &[
                ("error", Some("unsupported_response_type")),
                ("error_description", Some("response type not supported")),
                ("state", p.state.as_deref()),
            ],
        ));
    }
    if let Some(m) = &p.code_challenge_method
        && m != "S256"
    {
        return Err(redirect_with(
            &p.redirect_uri,
            &[
                ("error", Some("invalid_request")),
                (
                    "error_description",
                    Some("unsupported code challenge method (only S256)"),
                ),
                ("state", p.state.as_deref()),
            ],
        ));
    }
    Ok((org, app))
}

fn grant_code(world: &mut World, org: usize, app: usize, user: RecordId, p: &AuthParams) -> Resp {
    let code = format!("aPrx{}", random_token(60));
    let expires = world.now() + CODE_TTL_MS;
    world.codes.insert(
        code.clone(),
        AuthCode {
            org,
            app,
            user,
            redirect_uri: p.redirect_uri.clone(),
            challenge: p.code_challenge.clone(),
            scopes: p.scopes(),
            expires,
            used: false,
        },
    );
    redirect_with(
        &p.redirect_uri,
        &[("code", Some(&code)), ("state", p.state.as_deref())],
    )
}

/// GET shows the login and consent page (or approves at once in auto-approve mode);
/// POST handles the form.
pub fn authorize(shared: &Arc<Shared>, req: &Req) -> Resp {
    let mut world = shared.lock();
    if req.method == Method::GET {
        let p = AuthParams::from_pairs(&req.query_params());
        let (org, app) = match check_client(&world, &p) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let a = &world.orgs[org].apps[app];
        if let Some(username) = a.auto_approve_user.clone() {
            let Some(user) = world.orgs[org].user_by_username(&username) else {
                return error_page("invalid_request", "auto-approve user does not exist");
            };
            if !world.user_active(org, user) {
                return error_page("invalid_request", "auto-approve user is inactive");
            }
            return grant_code(&mut world, org, app, user, &p);
        }
        return login_page(&p, &a.name, None);
    }
    if req.method != Method::POST {
        return Resp::text(405, "Method Not Allowed");
    }
    let form = req.form();
    let p = AuthParams::from_pairs(&form);
    let (org, app) = match check_client(&world, &p) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if field("action") == "Deny" {
        return redirect_with(
            &p.redirect_uri,
            &[
                ("error", Some("access_denied")),
                ("error_description", Some("end-user denied authorization")),
                ("state", p.state.as_deref()),
            ],
        );
    }
    let app_name = world.orgs[org].apps[app].name.clone();
    let username = field("username");
    let o = &world.orgs[org];
    let user = o.user_by_username(&username).filter(|u| {
        o.passwords
            .get(u)
            .is_some_and(|pw| *pw == field("password"))
    });
    let Some(user) = user else {
        return login_page(
            &p,
            &app_name,
            Some(
                "Please check your username and password. If you still can't log in, contact your Salesforce administrator.",
            ),
        );
    };
    if !world.user_active(org, user) {
        return login_page(
            &p,
            &app_name,
            Some("Your access is disabled. Contact your site administrator."),
        );
    }
    // Logging in here opens a user-interface session too, as on Salesforce.
    let cookie = crate::ui::open_session(&mut world, crate::world::UiSession { org, user });
    grant_code(&mut world, org, app, user, &p).header("Set-Cookie", &cookie)
}

fn pkce_ok(verifier: Option<&str>, challenge: &str) -> bool {
    let Some(v) = verifier else { return false };
    // Salesforce documents the verifier as base64url (and rejects '~' and '.').
    let charset_ok = v
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !(43..=128).contains(&v.len()) || !charset_ok {
        return false;
    }
    let digest = Sha256::digest(v.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
}

/// POST /services/oauth2/token.
pub async fn token(shared: &Arc<Shared>, req: &Req) -> Resp {
    if req.method != Method::POST {
        return Resp::text(405, "Method Not Allowed");
    }
    let form = req.form();
    let get = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    // Latency of the app's org.
    let latency = {
        let world = shared.lock();
        get("client_id")
            .and_then(|c| world.apps.get(&c).copied())
            .map(|(org, _)| world.orgs[org].faults.latency_ms)
            .unwrap_or(0)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let mut world = shared.lock();
    let grant = get("grant_type").unwrap_or_default();
    if grant != "authorization_code" && grant != "refresh_token" {
        return Resp::oauth_error(400, "unsupported_grant_type", "grant type not supported");
    }
    let Some(&(org, app)) = get("client_id").and_then(|c| world.apps.get(&c)) else {
        return Resp::oauth_error(400, "invalid_client_id", "client identifier invalid");
    };
    let a = world.orgs[org].apps[app].clone();
    let secret = get("client_secret");
    let secret_bad = match &secret {
        Some(s) => *s != a.consumer_secret,
        None => grant == "authorization_code" && a.require_secret,
    };
    if secret_bad {
        return Resp::oauth_error(400, "invalid_client", "invalid client credentials");
    }
    let now = world.now();
    if grant == "authorization_code" {
        let code_text = get("code").unwrap_or_default();
        let Some(code) = world.codes.get(&code_text).cloned() else {
            return Resp::oauth_error(400, "invalid_grant", "invalid authorization code");
        };
        if code.org != org || code.app != app {
            return Resp::oauth_error(400, "invalid_grant", "invalid authorization code");
        }
        if code.used || code.expires < now {
            return Resp::oauth_error(400, "invalid_grant", "expired authorization code");
        }
        let redirect = get("redirect_uri").unwrap_or_default();
        if redirect != code.redirect_uri || redirect != a.callback_url {
            return Resp::oauth_error(
                400,
                "redirect_uri_mismatch",
                "redirect_uri must match configuration",
            );
        }
        if let Some(ch) = &code.challenge
            && !pkce_ok(get("code_verifier").as_deref(), ch)
        {
            return Resp::oauth_error(400, "invalid_grant", "invalid code verifier");
        }
        // A code is single-use, whatever happens next.
        if let Some(c) = world.codes.get_mut(&code_text) {
            c.used = true;
        }
        if !world.user_active(org, code.user) {
            return Resp::oauth_error(400, "invalid_grant", "inactive user");
        }
        let body = world.issue_tokens(org, app, code.user, code.scopes.clone());
        return Resp::json(200, body);
    }
    // refresh_token
    let rt_text = get("refresh_token").unwrap_or_default();
    let Some(rt) = world.refresh.get(&rt_text).cloned() else {
        return Resp::oauth_error(400, "invalid_grant", "expired access/refresh token");
    };
    if rt.org != org || rt.app != app {
        return Resp::oauth_error(400, "invalid_grant", "expired access/refresh token");
    }
    if !world.user_active(org, rt.user) {
        return Resp::oauth_error(400, "invalid_grant", "inactive user");
    }
    if a.rotate_refresh_tokens {
        world.revoke_refresh(&rt_text);
        let body = world.issue_tokens(org, app, rt.user, rt.scopes.clone());
        return Resp::json(200, body);
    }
    let body = world.token_response(org, app, rt.user, rt.scopes, Some(rt_text), false);
    Resp::json(200, body)
}

/// POST (form `token=`) or GET (`?token=`) /services/oauth2/revoke.
pub fn revoke(shared: &Arc<Shared>, req: &Req) -> Resp {
    let pairs = if req.method == Method::POST {
        req.form()
    } else {
        req.query_params()
    };
    let token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut world = shared.lock();
    if token.is_empty() {
        return Resp::oauth_error(400, "unsupported_token_type", "token type not supported");
    }
    if world.access.remove(&token).is_some() {
        return Resp::empty(200);
    }
    if world.refresh.contains_key(&token) {
        world.revoke_refresh(&token);
        return Resp::empty(200);
    }
    Resp::oauth_error(400, "invalid_token", "invalid token")
}

/// Looks up a live session; touches it. Expired sessions are removed.
pub fn session(world: &mut World, token: &str) -> Option<crate::world::AccessToken> {
    let now = world.now();
    let t = world.access.get(token)?.clone();
    let timeout = world.orgs.get(t.org)?.session_timeout_ms;
    if now - t.last_used > timeout || !world.user_active(t.org, t.user) {
        world.access.remove(token);
        return None;
    }
    if let Some(x) = world.access.get_mut(token) {
        x.last_used = now;
    }
    Some(t)
}

/// Bearer token of a request.
pub fn bearer(req: &Req) -> Option<String> {
    let h = req.header("authorization")?;
    let mut parts = h.splitn(2, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?.trim();
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.to_string())
}

/// GET /id/<orgId>/<userId>.
pub fn identity(shared: &Arc<Shared>, req: &Req) -> Resp {
    if req.method != Method::GET {
        return Resp::text(405, "Method Not Allowed");
    }
    let parts: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
    let (org_text, user_text) = match parts.as_slice() {
        ["", "id", o, u] => (*o, *u),
        _ => return Resp::not_found(),
    };
    let token = bearer(req).or_else(|| req.param("oauth_token"));
    let mut world = shared.lock();
    let Some(sess) = token.and_then(|t| session(&mut world, &t)) else {
        return Resp::text(403, "Bad_OAuth_Token");
    };
    let base = world.base_url.clone();
    let o = &world.orgs[sess.org];
    let same_org = crate::ids::normalize15(org_text).as_deref() == Some(&o.id[..15]);
    let user = o.parse_id(user_text);
    if !same_org || user != Some(sess.user) {
        return Resp::text(403, "Bad_Id");
    }
    let u = sess.user;
    let username = o.text(u, "Username").unwrap_or("").to_string();
    let first = o.text(u, "FirstName").map(str::to_string);
    let last = o.text(u, "LastName").unwrap_or("").to_string();
    let display = match &first {
        Some(f) => format!("{f} {last}"),
        None => last.clone(),
    };
    let user_type = o.text(u, "UserType").unwrap_or("Standard");
    let active = o.get(u, "IsActive") == crate::store::ValueRef::Bool(true);
    let uid = o.id18(u);
    let urls = {
        let b = &base;
        let oid = &o.id;
        json!({
            "enterprise": format!("{b}/services/Soap/c/{{version}}/{}", &oid[..15]),
            "metadata": format!("{b}/services/Soap/m/{{version}}/{}", &oid[..15]),
            "partner": format!("{b}/services/Soap/u/{{version}}/{}", &oid[..15]),
            "rest": format!("{b}/services/data/v{{version}}/"),
            "sobjects": format!("{b}/services/data/v{{version}}/sobjects/"),
            "search": format!("{b}/services/data/v{{version}}/search/"),
            "query": format!("{b}/services/data/v{{version}}/query/"),
            "recent": format!("{b}/services/data/v{{version}}/recent/"),
            "tooling_soap": format!("{b}/services/Soap/T/{{version}}/{}", &oid[..15]),
            "tooling_rest": format!("{b}/services/data/v{{version}}/tooling/"),
            "profile": format!("{b}/{uid}"),
            "feeds": format!("{b}/services/data/v{{version}}/chatter/feeds"),
            "groups": format!("{b}/services/data/v{{version}}/chatter/groups"),
            "users": format!("{b}/services/data/v{{version}}/chatter/users"),
            "feed_items": format!("{b}/services/data/v{{version}}/chatter/feed-items"),
            "feed_elements": format!("{b}/services/data/v{{version}}/chatter/feed-elements"),
            "custom_domain": b.as_str(),
        })
    };
    let body = json!({
        "id": format!("{base}/id/{}/{uid}", o.id),
        "asserted_user": true,
        "user_id": uid.as_str(),
        "organization_id": o.id.as_str(),
        "username": username.as_str(),
        "nick_name": username.split('@').next().unwrap_or(""),
        "display_name": display,
        "email": o.text(u, "Email"),
        "email_verified": true,
        "first_name": first,
        "last_name": last,
        "timezone": o.text(u, "TimeZoneSidKey"),
        "photos": {
            "picture": format!("{base}/profilephoto/005/F"),
            "thumbnail": format!("{base}/profilephoto/005/T"),
        },
        "addr_street": null,
        "addr_city": null,
        "addr_state": null,
        "addr_country": null,
        "addr_zip": null,
        "mobile_phone": o.text(u, "MobilePhone"),
        "mobile_phone_verified": false,
        "is_lightning_login_user": false,
        "status": { "created_date": null, "body": null },
        "urls": urls,
        "active": active,
        "user_type": identity_user_type(user_type),
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 3_600_000,
        "last_modified_date": match o.get(u, "LastModifiedDate") {
            // The identity service writes `2022-02-15T23:21:10Z`
            // (SwiftlySalesforce's recorded MockIdentity).
            crate::store::ValueRef::DateTime(t) => {
                Some(crate::time::fmt_datetime(t).replace(".000+0000", "Z"))
            }
            _ => None,
        },
        "is_app_installed": true,
    });
    Resp::json(200, body)
}

/// Identity service spelling of a UserType (`Standard` → `STANDARD`,
/// `PowerPartner` → `POWER_PARTNER`).
fn identity_user_type(t: &str) -> String {
    let mut out = String::new();
    for (i, c) in t.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_ok(
            Some(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(
            Some(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_ok(
            None,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_ok(Some("short"), "x"));
    }

    #[test]
    fn user_types() {
        assert_eq!(identity_user_type("Standard"), "STANDARD");
        assert_eq!(identity_user_type("PowerPartner"), "POWER_PARTNER");
    }
}
