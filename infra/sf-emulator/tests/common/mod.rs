//! Helpers shared by the conformance tests: start an emulator with one org, an
//! app and users, and obtain tokens through the real OAuth flow.
#![allow(dead_code, clippy::unwrap_used)]

use base64::Engine;
use serde_json::{Value, json};
use sf_emulator::{AppSpec, Emulator, Options, OrgSpec, SeedRecord, UserSpec};
use sha2::{Digest, Sha256};

pub const CALLBACK: &str = "http://127.0.0.1:9/integrations/salesforce/callback";
pub const ADMIN: &str = "admin@acme.test";
pub const REP: &str = "rep@acme.test";
pub const V: &str = "/services/data/v62.0";

pub struct Env {
    pub emu: Emulator,
    pub http: reqwest::Client,
    pub key: String,
    pub secret: String,
    pub org_id: String,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn env_with(api_limit: u64, rotate: bool) -> Env {
    let emu = Emulator::start(Options::default()).await.expect("start");
    let org = emu
        .create_org(OrgSpec {
            key: Some("acme".into()),
            name: Some("Acme".into()),
            api_daily_limit: Some(api_limit),
            ..Default::default()
        })
        .expect("org");
    for (u, first, last) in [(ADMIN, "Ada", "Admin"), (REP, "Rita", "Rep")] {
        emu.create_user(
            "acme",
            UserSpec {
                reference: Some(first.to_lowercase()),
                username: u.into(),
                email: u.into(),
                first_name: Some(first.into()),
                last_name: last.into(),
                password: Some("pw-".to_string() + first),
                ..Default::default()
            },
        )
        .expect("user");
    }
    let app = emu
        .create_app(
            "acme",
            AppSpec {
                name: Some("Modjo".into()),
                callback_url: CALLBACK.into(),
                rotate_refresh_tokens: rotate,
                auto_approve_user: Some(ADMIN.into()),
                ..Default::default()
            },
        )
        .expect("app");
    Env {
        emu,
        http: client(),
        key: app.consumer_key,
        secret: app.consumer_secret,
        org_id: org.org_id,
    }
}

pub async fn env() -> Env {
    env_with(100_000, false).await
}

pub fn pkce() -> (String, String) {
    let verifier: String = (0..64)
        .map(|i| {
            char::from(
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
                    [(i * 7 + 3) % 64],
            )
        })
        .collect();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn query_param(location: &str, name: &str) -> Option<String> {
    let u = url::Url::parse(location).ok()?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.base_url(), path)
    }

    /// GET authorize in auto-approve mode; returns the code.
    pub async fn code(&self, challenge: Option<&str>) -> String {
        let mut params = vec![
            ("response_type", "code".to_string()),
            ("client_id", self.key.clone()),
            ("redirect_uri", CALLBACK.to_string()),
            ("state", "st-1".to_string()),
            ("scope", "api refresh_token".to_string()),
        ];
        if let Some(c) = challenge {
            params.push(("code_challenge", c.to_string()));
            params.push(("code_challenge_method", "S256".to_string()));
        }
        let resp = self
            .http
            .get(self.url("/services/oauth2/authorize"))
            .query(&params)
            .send()
            .await
            .expect("authorize");
        assert_eq!(resp.status(), 302);
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        assert!(loc.starts_with(CALLBACK), "{loc}");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("st-1"));
        query_param(&loc, "code").expect("code")
    }

    pub async fn exchange(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(form)
            .send()
            .await
            .expect("token");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    /// A full authorization-code exchange with PKCE; returns the token response.
    pub async fn login(&self) -> Value {
        let (verifier, challenge) = pkce();
        let code = self.code(Some(&challenge)).await;
        let (status, body) = self
            .exchange(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &self.key),
                ("client_secret", &self.secret),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &verifier),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn token(&self) -> String {
        self.login().await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("get")
    }

    pub async fn send(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> reqwest::Response {
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    pub async fn query(&self, token: &str, soql: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(&format!("{V}/query")))
            .query(&[("q", soql)])
            .bearer_auth(token)
            .send()
            .await
            .expect("query");
        let s = resp.status().as_u16();
        (s, resp.json().await.expect("json"))
    }

    pub fn seed(&self, records: Vec<(&str, &str, Value)>) -> Vec<String> {
        let recs: Vec<SeedRecord> = records
            .into_iter()
            .map(|(t, r, f)| SeedRecord {
                object: t.into(),
                reference: if r.is_empty() { None } else { Some(r.into()) },
                fields: f.as_object().cloned().unwrap_or_default(),
            })
            .collect();
        self.emu.seed("acme", &recs).expect("seed")
    }

    pub fn contacts(&self, n: usize) -> Vec<String> {
        let recs: Vec<SeedRecord> = (0..n)
            .map(|i| SeedRecord {
                object: "Contact".into(),
                reference: None,
                fields: json!({"LastName": format!("Contact {i:05}"), "Email": format!("c{i}@example.com")})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        self.emu.seed("acme", &recs).expect("seed")
    }
}

/// The error array shape: `[{"message":…,"errorCode":…}]`.
pub fn error_code(body: &Value) -> &str {
    let arr = body.as_array().expect("error array");
    assert!(arr[0]["message"].is_string(), "{body}");
    arr[0]["errorCode"].as_str().expect("errorCode")
}

/// Asserts that the keys appear in this order in raw JSON text (serde_json's map
/// sorts keys, so order is checked on the text).
pub fn assert_key_order(raw: &str, keys: &[&str]) {
    let mut at = 0;
    for k in keys {
        let needle = format!("\"{k}\":");
        match raw[at..].find(&needle) {
            Some(i) => at += i + needle.len(),
            None => panic!("key {k} missing or out of order in {raw}"),
        }
    }
}
