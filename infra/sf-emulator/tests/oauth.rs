//! OAuth web-server flow conformance: login form, codes, PKCE, errors, refresh,
//! rotation, the 5-token cap, revoke and identity.

// Test code: unwrap on fixtures is the assertion (clippy.toml allows it in #[test] fns; helpers too).
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use common::*;
use hmac_check::verify_signature;
use serde_json::Value;

mod hmac_check {
    use sha2::{Digest, Sha256};

    /// HMAC-SHA256 written out (RFC 2104), to check the emulator independently.
    pub fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut k = if key.len() > 64 {
            Sha256::digest(key).to_vec()
        } else {
            key.to_vec()
        };
        k.resize(64, 0);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::digest([ipad.as_slice(), msg].concat());
        Sha256::digest([opad.as_slice(), inner.as_slice()].concat()).to_vec()
    }

    pub fn verify_signature(secret: &str, id: &str, issued_at: &str, signature: &str) -> bool {
        use base64::Engine;
        let mac = hmac(secret.as_bytes(), format!("{id}{issued_at}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac) == signature
    }
}

#[tokio::test]
async fn token_response_shape_and_signature() {
    let env = env().await;
    let body = env.login().await;
    let obj = body.as_object().unwrap();
    for k in [
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(obj.contains_key(k), "missing {k}: {body}");
    }
    assert!(!obj.contains_key("expires_in"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["instance_url"], env.emu.base_url());
    assert_eq!(body["scope"], "api refresh_token");
    let issued = body["issued_at"].as_str().expect("issued_at is a string");
    let ms: i64 = issued.parse().unwrap();
    assert!(ms > 1_600_000_000_000, "milliseconds: {ms}");
    let id = body["id"].as_str().unwrap();
    assert!(
        id.starts_with(&format!("{}/id/{}/005", env.emu.base_url(), env.org_id)),
        "{id}"
    );
    assert!(verify_signature(
        &env.secret,
        id,
        issued,
        body["signature"].as_str().unwrap()
    ));
    assert!(!verify_signature(
        "wrong",
        id,
        issued,
        body["signature"].as_str().unwrap()
    ));
}

#[tokio::test]
async fn login_form_allow_and_deny() {
    let env = env().await;
    env.emu
        .update_app(
            &env.key,
            sf_emulator::AppSpec {
                callback_url: CALLBACK.into(),
                ..Default::default()
            },
        )
        .unwrap();
    let (verifier, challenge) = pkce();
    let page = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", env.key.as_str()),
            ("redirect_uri", CALLBACK),
            ("state", "xyz"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for field in [
        "name=\"username\"",
        "name=\"password\"",
        "value=\"Allow\"",
        "value=\"Deny\"",
        "name=\"client_id\"",
        "name=\"redirect_uri\"",
        "name=\"state\"",
        "name=\"code_challenge\"",
    ] {
        assert!(html.contains(field), "{field}");
    }
    let form = |user: &str, pw: &str, action: &str| {
        vec![
            ("response_type".to_string(), "code".to_string()),
            ("client_id".into(), env.key.clone()),
            ("redirect_uri".into(), CALLBACK.into()),
            ("state".into(), "xyz".into()),
            ("scope".into(), "api refresh_token".into()),
            ("code_challenge".into(), challenge.clone()),
            ("code_challenge_method".into(), "S256".into()),
            ("username".into(), user.into()),
            ("password".into(), pw.into()),
            ("action".into(), action.into()),
        ]
    };
    // Wrong password: the form again, with an error, no redirect.
    let r = env
        .http
        .post(env.url("/services/oauth2/authorize"))
        .form(&form(REP, "nope", "Allow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("check your username and password")
    );
    // Deny.
    let r = env
        .http
        .post(env.url("/services/oauth2/authorize"))
        .form(&form(REP, "pw-Rita", "Deny"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(CALLBACK));
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(
        query_param(&loc, "error_description").as_deref(),
        Some("end-user denied authorization")
    );
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    assert!(
        loc.contains("error_description=end-user+denied+authorization"),
        "{loc}"
    );
    // Allow as the rep.
    let r = env
        .http
        .post(env.url("/services/oauth2/authorize"))
        .form(&form(REP, "pw-Rita", "Allow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let code = query_param(&loc, "code").unwrap();
    let (s, body) = env
        .exchange(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &env.key),
            ("client_secret", &env.secret),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(s, 200, "{body}");
    let ident = env
        .get(
            body["access_token"].as_str().unwrap(),
            &body["id"].as_str().unwrap().replace(env.emu.base_url(), ""),
        )
        .await;
    assert_eq!(ident.status(), 200);
    let ident: Value = ident.json().await.unwrap();
    assert_eq!(ident["username"], REP);
}

#[tokio::test]
async fn authorize_errors_never_redirect_to_unverified_uri() {
    let env = env().await;
    let r = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", "https://evil.test/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("invalid_client_id"));
    let r = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", env.key.as_str()),
            ("redirect_uri", "https://evil.test/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    assert!(r.text().await.unwrap().contains("redirect_uri_mismatch"));
}

#[tokio::test]
async fn token_endpoint_errors() {
    let env = env().await;
    let (verifier, challenge) = pkce();
    let code = env.code(Some(&challenge)).await;
    let base = |code: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".into(), code.into()),
            ("client_id".into(), env.key.clone()),
            ("client_secret".into(), env.secret.clone()),
            ("redirect_uri".into(), CALLBACK.into()),
            ("code_verifier".into(), verifier.clone()),
        ]
    };
    let post = |form: Vec<(String, String)>| {
        let env = &env;
        async move {
            let r = env
                .http
                .post(env.url("/services/oauth2/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let with = |code: &str, k: &str, v: &str| {
        let mut f = base(code);
        for p in f.iter_mut() {
            if p.0 == k {
                p.1 = v.into();
            }
        }
        f
    };
    let cases = [
        (
            with(&code, "grant_type", "password"),
            "unsupported_grant_type",
            "grant type not supported",
        ),
        (
            with(&code, "client_id", "unknown"),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            with(&code, "client_secret", "wrong"),
            "invalid_client",
            "invalid client credentials",
        ),
        (
            with(&code, "code", "aPrxBOGUS"),
            "invalid_grant",
            "invalid authorization code",
        ),
        (
            with(&code, "redirect_uri", "http://127.0.0.1:9/other"),
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        ),
        (
            with(
                &code,
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier-1234",
            ),
            "invalid_grant",
            "invalid code verifier",
        ),
        (
            with(&code, "code_verifier", ""),
            "invalid_grant",
            "invalid code verifier",
        ),
    ];
    for (form, error, description) in cases {
        let (s, body) = post(form).await;
        assert_eq!(s, 400, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"error": error, "error_description": description})
        );
    }
    // The code still works (errors before the code check do not burn it)…
    let (s, body) = post(base(&code)).await;
    assert_eq!(s, 200, "{body}");
    // …but only once.
    let (s, body) = post(base(&code)).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "expired authorization code");
    // Codes are short-lived.
    let code2 = env.code(Some(&challenge)).await;
    env.emu.advance(std::time::Duration::from_secs(16 * 60));
    let (s, body) = post(base(&code2)).await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    // A wrong verifier burns the code too? No: only a successful exchange uses it.
}

#[tokio::test]
async fn refresh_without_rotation_and_inactive_user() {
    let env = env().await;
    let first = env.login().await;
    let rt = first["refresh_token"].as_str().unwrap().to_string();
    // client_secret is optional on refresh.
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("expires_in").is_none());
    let (s, _) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &env.key),
            ("client_secret", "bad"),
        ])
        .await;
    assert_eq!(s, 400);
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "5AepBOGUS"),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(
        (s, body["error_description"].as_str()),
        (400, Some("expired access/refresh token"))
    );
    env.emu.set_user_active("acme", ADMIN, false).unwrap();
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "inactive user"})
    );
}

#[tokio::test]
async fn refresh_token_rotation() {
    let env = env_with(100_000, true).await;
    let first = env.login().await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", &env.key),
            ("client_secret", &env.secret),
        ])
        .await;
    assert_eq!(s, 200);
    let rt2 = body["refresh_token"]
        .as_str()
        .expect("rotated token")
        .to_string();
    assert_ne!(rt1, rt2);
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt1),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!((s, body["error"].as_str()), (400, Some("invalid_grant")));
    let (s, _) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt2),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn at_most_five_refresh_tokens_per_user_and_app() {
    let env = env().await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(
            env.login().await["refresh_token"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens[0]),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the oldest is revoked"
    );
    for t in &tokens[1..] {
        let (s, _) = env
            .exchange(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t),
                ("client_id", &env.key),
            ])
            .await;
        assert_eq!(s, 200);
    }
}

#[tokio::test]
async fn revoke_and_identity() {
    let env = env().await;
    let body = env.login().await;
    let at = body["access_token"].as_str().unwrap().to_string();
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    let id_path = body["id"].as_str().unwrap().replace(env.emu.base_url(), "");
    let ident: Value = env.get(&at, &id_path).await.json().await.unwrap();
    assert_eq!(ident["username"], ADMIN);
    assert_eq!(ident["email"], ADMIN);
    assert_eq!(ident["display_name"], "Ada Admin");
    assert_eq!(ident["active"], true);
    assert_eq!(ident["user_type"], "STANDARD");
    assert_eq!(ident["organization_id"], env.org_id);
    assert!(ident["user_id"].as_str().unwrap().starts_with("005"));
    assert_eq!(
        ident["urls"]["rest"],
        format!("{}/services/data/v{{version}}/", env.emu.base_url())
    );
    // Another user's identity URL is refused.
    let other = format!(
        "/id/{}/{}",
        env.org_id,
        env.emu.seed_ref("acme", "rita").unwrap()
    );
    assert_eq!(env.get(&at, &other).await.status(), 403);
    assert_eq!(env.get("bogus", &id_path).await.status(), 403);
    // Revoking the refresh token kills its access token.
    let r = env
        .http
        .post(env.url("/services/oauth2/revoke"))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = env.get(&at, &format!("{V}/limits")).await;
    assert_eq!(r.status(), 401);
    let r = env
        .http
        .post(env.url("/services/oauth2/revoke"))
        .form(&[("token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    // Revoking an access token.
    let at2 = env.token().await;
    let r = env
        .http
        .post(env.url("/services/oauth2/revoke"))
        .form(&[("token", at2.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(env.get(&at2, &format!("{V}/limits")).await.status(), 401);
}

#[tokio::test]
async fn session_faults() {
    let env = env().await;
    let body = env.login().await;
    let at = body["access_token"].as_str().unwrap().to_string();
    let rt = body["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(env.get(&at, &format!("{V}/limits")).await.status(), 200);
    env.emu
        .inject("acme", sf_emulator::Fault::ExpireSessions)
        .unwrap();
    let r = env.get(&at, &format!("{V}/limits")).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    // Refresh still works after expiry.
    let (s, fresh) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(s, 200);
    let at2 = fresh["access_token"].as_str().unwrap().to_string();
    assert_eq!(env.get(&at2, &format!("{V}/limits")).await.status(), 200);
    // Idle sessions expire with the emulated clock.
    env.emu.advance(std::time::Duration::from_secs(3 * 3600));
    assert_eq!(env.get(&at2, &format!("{V}/limits")).await.status(), 401);
    // Revoked refresh tokens.
    env.emu
        .inject("acme", sf_emulator::Fault::RevokeRefreshTokens)
        .unwrap();
    let (s, body) = env
        .exchange(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &env.key),
        ])
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
    let _ = base64::engine::general_purpose::STANDARD.encode("x");
}

#[tokio::test]
async fn scope_without_api_is_not_valid_for_rest() {
    let env = env().await;
    let r = env
        .http
        .get(env.url("/services/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", env.key.as_str()),
            ("redirect_uri", CALLBACK),
            ("scope", "id"),
        ])
        .send()
        .await
        .unwrap();
    let code = query_param(r.headers()["location"].to_str().unwrap(), "code").unwrap();
    let (s, body) = env
        .exchange(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &env.key),
            ("client_secret", &env.secret),
            ("redirect_uri", CALLBACK),
        ])
        .await;
    assert_eq!(s, 200);
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh_token scope, no refresh token"
    );
    let r = env
        .get(
            body["access_token"].as_str().unwrap(),
            &format!("{V}/limits"),
        )
        .await;
    assert_eq!(r.status(), 401);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        b[0]["message"],
        "This session is not valid for use with the REST API"
    );
}
