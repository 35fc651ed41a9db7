//! A Salesforce org on the emulator, and a tenant connected to it on moto.

use std::sync::Arc;

use chrono::Utc;
use secrecy::SecretString;
use serde_json::{Map, Value};
use sf_emulator::{
    AppSpec, ConnectedApp, Emulator, Options, OrgSpec, SeedRecord, UserInfo, UserSpec,
};
use shared::adapters::salesforce::SalesforceClient;
use shared::config::{DEFAULT_API_VERSION, SalesforceConfig};
use shared::domain::hosts::{HostPolicy, PubSubEndpoint};
use shared::domain::{Connection, ConnectionStatus, TenantId};
use shared::ports::{ConnectionStore, SecretStore, TenantCredentials};
use url::Url;

use crate::moto::AwsEnv;
use crate::proxy::Proxy;
use crate::unique;

pub const ORG: &str = "acme";

/// The emulator with one org, an admin user and a connected app.
pub struct SfWorld {
    /// Shared, so a proxy hook can act on it mid-conversation.
    pub emu: Arc<Emulator>,
    /// In front of the emulator when asked for: the org's announced address, so
    /// everything the product sends passes through it.
    pub proxy: Option<Proxy>,
    pub org_id: String,
    pub admin: UserInfo,
    pub app: ConnectedApp,
}

#[derive(Debug, Clone, Default)]
pub struct WorldOptions {
    pub rotate_refresh_tokens: bool,
    pub api_daily_limit: Option<u64>,
    pub callback_url: Option<String>,
    /// Serve the Pub/Sub API, with Change Data Capture enabled for these objects
    /// (possibly none); the product is then configured to use it.
    pub cdc: Option<Vec<String>>,
    /// Put a recording [`Proxy`] in front of the emulator.
    pub proxy: bool,
}

impl WorldOptions {
    /// Change Data Capture on Opportunity and OpportunityContactRole, as the seed
    /// has every customer enable it.
    pub fn with_cdc() -> Self {
        Self {
            cdc: Some(vec!["Opportunity".into(), "OpportunityContactRole".into()]),
            ..Self::default()
        }
    }
}

impl SfWorld {
    pub async fn start(options: WorldOptions) -> Self {
        let bound = if options.proxy {
            Some(Proxy::bind().await)
        } else {
            None
        };
        let emu = Emulator::start(Options {
            pubsub: options.cdc.is_some(),
            pubsub_keepalive: std::time::Duration::from_millis(200),
            public_url: bound.as_ref().map(|b| b.base_url.clone()),
            ..Options::default()
        })
        .await
        .expect("emulator starts");
        let proxy = bound.map(|b| Proxy::start(b, emu.addr()));
        let org = emu
            .create_org(OrgSpec {
                key: Some(ORG.into()),
                name: Some("Acme Corp".into()),
                api_daily_limit: options.api_daily_limit.or(Some(100_000)),
                cdc: options.cdc.clone().unwrap_or_default(),
                ..Default::default()
            })
            .expect("org");
        let admin = emu
            .create_user(
                ORG,
                UserSpec {
                    reference: Some("admin".into()),
                    username: "admin@acme.test".into(),
                    email: "admin@acme.test".into(),
                    first_name: Some("Ada".into()),
                    last_name: "Admin".into(),
                    password: Some("password".into()),
                    ..Default::default()
                },
            )
            .expect("admin user");
        let app = emu
            .create_app(
                ORG,
                AppSpec {
                    name: Some("Modjo".into()),
                    callback_url: options
                        .callback_url
                        .unwrap_or_else(|| crate::stack::CALLBACK_URL.to_string()),
                    rotate_refresh_tokens: options.rotate_refresh_tokens,
                    ..Default::default()
                },
            )
            .expect("connected app");
        Self {
            emu: Arc::new(emu),
            proxy,
            org_id: org.org_id,
            admin,
            app,
        }
    }

    /// Moves the org's clock back, so that what is seeded next is already
    /// `by` old when the product reads it (settled data, outside the sync's
    /// look-back window).
    pub fn backdate(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).expect("duration");
        self.emu.set_time_ms(self.emu.now_ms() - ms);
    }

    pub fn base_url(&self) -> &str {
        self.emu.base_url()
    }

    /// Salesforce settings that allow exactly this emulator's origins (its Pub/Sub
    /// API too when it serves one).
    pub fn config(&self) -> SalesforceConfig {
        let mut extra_allowed_origins = vec![Url::parse(self.base_url()).expect("emulator URL")];
        let pubsub_endpoint = self.emu.pubsub_url().map(|url| {
            extra_allowed_origins.push(Url::parse(&url).expect("Pub/Sub URL"));
            PubSubEndpoint::parse(&url, &HostPolicy::new(&extra_allowed_origins))
                .expect("allowed Pub/Sub endpoint")
        });
        SalesforceConfig {
            api_version: DEFAULT_API_VERSION.into(),
            client_name: "modjo".into(),
            extra_allowed_origins,
            pubsub_endpoint,
        }
    }

    pub fn client(&self) -> SalesforceClient {
        SalesforceClient::new(&self.config()).expect("client")
    }

    /// Seeds records: `(object, fields)` pairs.
    pub fn seed(&self, records: Vec<(&str, Value)>) -> Vec<String> {
        let records: Vec<SeedRecord> = records
            .into_iter()
            .map(|(object, fields)| SeedRecord {
                object: object.into(),
                reference: None,
                fields: fields.as_object().cloned().unwrap_or_default(),
            })
            .collect();
        self.emu.seed(ORG, &records).expect("seed")
    }

    /// A refresh token for the admin, as the OAuth flow would have produced.
    pub fn mint_refresh_token(&self) -> (String, Option<String>) {
        let tokens = self
            .emu
            .mint_tokens(ORG, &self.app.consumer_key, &self.admin.username)
            .expect("mint tokens");
        let refresh = tokens["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_string();
        let access = tokens["access_token"].as_str().map(str::to_string);
        (refresh, access)
    }

    /// Stores credentials and a `connected` connection for a new tenant, as a
    /// finished OAuth flow does. No access token is stored: the first request refreshes.
    pub async fn connect_tenant(&self, aws: &AwsEnv) -> TenantId {
        self.connect_tenant_as(aws, &unique("acme")).await
    }

    /// As [`Self::connect_tenant`], with a chosen tenant id (the sample events' `acme`).
    pub async fn connect_tenant_as(&self, aws: &AwsEnv, id: &str) -> TenantId {
        let tenant = TenantId::parse(id).expect("tenant id");
        let (refresh, _) = self.mint_refresh_token();
        aws.secrets()
            .put_credentials(&tenant, &self.credentials(Some(refresh)))
            .await
            .expect("store credentials");
        let mut connection = Connection::new(tenant.clone(), Utc::now());
        connection.status = ConnectionStatus::Connected;
        connection.instance_url = Some(self.base_url().to_string());
        connection.org_id = Some(self.org_id.clone());
        aws.store()
            .save_connection(&connection)
            .await
            .expect("save connection");
        tenant
    }

    pub fn credentials(&self, refresh_token: Option<String>) -> TenantCredentials {
        TenantCredentials {
            consumer_key: self.app.consumer_key.clone(),
            consumer_secret: SecretString::from(self.app.consumer_secret.clone()),
            instance_url: self.base_url().to_string(),
            login_url: self.base_url().to_string(),
            refresh_token: refresh_token.map(SecretString::from),
            access_token: None,
        }
    }

    /// Exact API calls the emulator counted, by kind.
    pub fn calls(&self, kind: &str) -> u64 {
        self.emu
            .counters(ORG)
            .expect("counters")
            .by_kind
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> u64 {
        self.emu.counters(ORG).expect("counters").api_used
    }
}

/// `{"k": v}` as a field map.
pub fn fields(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A person editing the org over REST with their own session, as a salesperson
/// does in Salesforce (no `Sforce-Call-Options`). Cheap to clone into a hook.
#[derive(Clone)]
pub struct OrgUser {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl SfWorld {
    /// The admin, signed in to the org.
    pub fn user(&self) -> OrgUser {
        let (_, access) = self.mint_refresh_token();
        OrgUser {
            http: reqwest::Client::new(),
            base: format!("{}/services/data/v{DEFAULT_API_VERSION}", self.base_url()),
            token: access.expect("access token"),
        }
    }
}

impl OrgUser {
    async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("REST request");
        let status = response.status();
        let body = response.text().await.expect("REST body");
        assert!(status.is_success(), "REST answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    pub async fn create(&self, object: &str, fields: Value) -> String {
        let url = format!("{}/sobjects/{object}", self.base);
        let created = self.send(self.http.post(url).json(&fields)).await;
        created["id"].as_str().expect("created id").to_string()
    }

    /// `POST sobjects/<object>`: the new id, or Salesforce's refusal (its body).
    pub async fn try_create(&self, object: &str, fields: Value) -> Result<String, Value> {
        let url = format!("{}/sobjects/{object}", self.base);
        let response = self
            .http
            .post(url)
            .json(&fields)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("REST request");
        let ok = response.status().is_success();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match ok {
            true => Ok(body["id"].as_str().expect("created id").to_string()),
            false => Err(body),
        }
    }

    pub async fn update(&self, object: &str, id: &str, fields: Value) {
        let url = format!("{}/sobjects/{object}/{id}", self.base);
        self.send(self.http.patch(url).json(&fields)).await;
    }

    pub async fn delete(&self, object: &str, id: &str) {
        let url = format!("{}/sobjects/{object}/{id}", self.base);
        self.send(self.http.delete(url)).await;
    }

    /// One sObject Collections update: one transaction, the same values for all.
    pub async fn update_all(&self, object: &str, ids: &[String], fields: Value) {
        let records: Vec<(String, Value)> =
            ids.iter().map(|id| (id.clone(), fields.clone())).collect();
        self.update_each(object, &records).await;
    }

    /// One sObject Collections update (at most 200): each record its own values.
    pub async fn update_each(&self, object: &str, records: &[(String, Value)]) {
        let records: Vec<Value> = records
            .iter()
            .map(|(id, fields)| {
                let mut record = fields.as_object().cloned().unwrap_or_default();
                record.insert("attributes".into(), serde_json::json!({"type": object}));
                record.insert("id".into(), Value::String(id.clone()));
                Value::Object(record)
            })
            .collect();
        let url = format!("{}/composite/sobjects", self.base);
        let results = self
            .send(
                self.http
                    .patch(url)
                    .json(&serde_json::json!({"allOrNone": true, "records": records})),
            )
            .await;
        assert!(
            results
                .as_array()
                .is_some_and(|r| r.iter().all(|x| x["success"] == true)),
            "{results}"
        );
    }
}
