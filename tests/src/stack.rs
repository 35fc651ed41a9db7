//! The product's functions wired on moto and the emulator, driven with events
//! shaped exactly as API Gateway (HTTP API, payload v2) and SQS deliver them.

use std::collections::HashMap;
use std::time::Duration;

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets::SecretsManagerStore;
use shared::adapters::sqs::SqsQueue;
use shared::app::App;
use shared::config::{BudgetThresholds, Config, OAuthConfig};
use url::Url;

use crate::faulty::FaultyStore;
use crate::moto::AwsEnv;
use crate::sf::{SfWorld, WorldOptions};

pub const CALLBACK_URL: &str = "https://app.modjo.test/integrations/salesforce/callback";
pub const RETURN_URL: &str = "https://app.modjo.test/settings/integrations/salesforce";

pub type TestApp = App<DynamoStore, SecretsManagerStore>;

/// moto + emulator + the app, as the Lambda functions build it.
pub struct Stack {
    pub aws: AwsEnv,
    pub sf: SfWorld,
    pub app: TestApp,
    pub call_queue: SqsQueue,
    /// Where integration-api sends the syncs an admin asks for.
    pub sync_queue: SqsQueue,
}

impl Stack {
    pub async fn start(options: WorldOptions) -> Self {
        Self::with_state_ttl(options, Duration::from_secs(600)).await
    }

    pub async fn with_state_ttl(options: WorldOptions, state_ttl: Duration) -> Self {
        let aws = AwsEnv::new().await;
        let sf = SfWorld::start(options).await;
        let app = build_app(&aws, &sf, state_ttl, CALLBACK_URL);
        let call_queue = aws.queue(&aws.resources.call_events_queue);
        let sync_queue = aws.queue(&aws.resources.sync_jobs_queue);
        Self {
            aws,
            sf,
            app,
            call_queue,
            sync_queue,
        }
    }

    /// An app whose configured callback URL differs from the connected app's.
    pub fn app_with_callback(&self, callback: &str) -> TestApp {
        build_app(&self.aws, &self.sf, Duration::from_secs(600), callback)
    }

    pub async fn api(&self, request: Request) -> Response<Body> {
        shared::api::routes::handle(&self.app, &self.sync_queue, request).await
    }

    pub async fn callback(&self, request: Request) -> Response<Body> {
        shared::api::callback::handle(&self.app, &self.call_queue, request).await
    }
}

pub fn build_app(aws: &AwsEnv, sf: &SfWorld, state_ttl: Duration, callback: &str) -> TestApp {
    build_app_with(aws, sf, aws.store(), state_ttl, callback)
}

/// The app on any store (e.g. one that fails on purpose).
pub fn build_app_with<S: shared::app::Store>(
    aws: &AwsEnv,
    sf: &SfWorld,
    store: S,
    state_ttl: Duration,
    callback: &str,
) -> App<S, SecretsManagerStore> {
    let config = Config {
        stage: "test".into(),
        table_name: aws.resources.table.clone(),
        secret_prefix: aws.resources.secret_prefix.clone(),
        salesforce: sf.config(),
        budget: BudgetThresholds::default(),
        metrics_namespace: "Modjo/Test".into(),
    };
    let oauth = OAuthConfig {
        callback_url: Url::parse(callback).expect("callback URL"),
        return_url: Url::parse(RETURN_URL).expect("return URL"),
        state_signing_secret_id: aws.resources.signing_key_id.clone(),
        state_ttl,
    };
    App::new(config, store, aws.secrets(), Some(oauth)).expect("app")
}

/// An app over a [`FaultyStore`] in front of the stack's table: the store, to
/// arm its faults and hooks, and the app that goes through it.
pub fn faulty_app(
    aws: &AwsEnv,
    sf: &SfWorld,
) -> (FaultyStore, App<FaultyStore, SecretsManagerStore>) {
    let faulty = FaultyStore::new(aws.store());
    let app = build_app_with(
        aws,
        sf,
        faulty.clone(),
        Duration::from_secs(600),
        CALLBACK_URL,
    );
    (faulty, app)
}

/// A scheduled sync job of `tenant` (as the fan-out sends it) delivered by the
/// sync-jobs queue, in an invocation that must end within `budget`.
pub fn sync_job_event(
    tenant: &shared::domain::TenantId,
    budget: Duration,
) -> lambda_runtime::LambdaEvent<Value> {
    let body = shared::sync::SyncJob::new(tenant.clone(), "schedule").to_body();
    lambda_event(sqs_event("sync-jobs", &[body]), budget)
}

/// A Lambda invocation of `payload` that must end within `budget`.
pub fn lambda_event<T>(payload: T, budget: Duration) -> lambda_runtime::LambdaEvent<T> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = format!("req-{}", rand_id());
    context.deadline = (chrono::Utc::now() + chrono::Duration::from_std(budget).expect("budget"))
        .timestamp_millis() as u64;
    context.invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:test".into();
    lambda_runtime::LambdaEvent::new(payload, context)
}

/// An SQS batch as Lambda delivers it, one record per body.
pub fn sqs_event(queue: &str, bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("msg-{i}-{}", rand_id()),
                "receiptHandle": format!("rh-{i}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795860000000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795860000000"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:eu-west-1:123456789012:{queue}"),
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Claims as API Gateway's JWT authorizer places them in the request context.
#[derive(Debug, Clone)]
pub struct Claims {
    pub tenant: String,
    pub sub: String,
    pub role: String,
}

impl Claims {
    pub fn admin(tenant: &str) -> Option<Self> {
        Some(Self {
            tenant: tenant.into(),
            sub: "usr_admin".into(),
            role: "admin".into(),
        })
    }

    pub fn member(tenant: &str) -> Option<Self> {
        Some(Self {
            tenant: tenant.into(),
            sub: "usr_member".into(),
            role: "member".into(),
        })
    }
}

/// An HTTP API (payload v2) event for an admin/read route.
pub fn api_event(method: &str, path: &str, body: Option<Value>, claims: Option<Claims>) -> Request {
    api_event_with(method, path, body.map(|b| b.to_string()), claims, &[])
}

/// As [`api_event`], with a raw body and extra request headers.
pub fn api_event_with(
    method: &str,
    path: &str,
    body: Option<String>,
    claims: Option<Claims>,
    headers: &[(&str, &str)],
) -> Request {
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let query: HashMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "a1b2c3d4e5",
        "domainName": "api.modjo.test",
        "domainPrefix": "api",
        "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "test"},
        "requestId": format!("req-{}", rand_id()),
        "routeKey": "ANY /integrations/salesforce/{proxy+}",
        "stage": "$default",
        "time": "28/Nov/2026:10:00:00 +0000",
        "timeEpoch": 1795860000000u64
    });
    if let Some(c) = claims {
        context["authorizer"] = json!({"jwt": {"claims": {
            "iss": "https://auth.modjo.test/", "aud": "salesforce-integration",
            "sub": c.sub, "tenant_id": c.tenant, "role": c.role
        }, "scopes": null}});
    }
    let mut header_map = json!({"content-type": "application/json", "host": "api.modjo.test"});
    for (name, value) in headers {
        header_map[*name] = json!(value);
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": "ANY /integrations/salesforce/{proxy+}",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": context,
        "pathParameters": {"proxy": raw_path.trim_start_matches("/integrations/salesforce/")},
        "isBase64Encoded": false
    });
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if let Some(b) = body {
        event["body"] = Value::String(b);
    }
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway v2 event")
}

/// The public callback as API Gateway delivers it (no authorizer).
pub fn callback_event(location: &Url) -> Request {
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    let event = json!({
        "version": "2.0",
        "routeKey": "GET /integrations/salesforce/callback",
        "rawPath": "/integrations/salesforce/callback",
        "rawQueryString": location.query().unwrap_or(""),
        "headers": {"host": "app.modjo.test", "accept": "text/html"},
        "queryStringParameters": query,
        "requestContext": {
            "accountId": "123456789012", "apiId": "a1b2c3d4e5", "domainName": "app.modjo.test", "domainPrefix": "app",
            "http": {"method": "GET", "path": "/integrations/salesforce/callback", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0"},
            "requestId": format!("req-{}", rand_id()), "routeKey": "GET /integrations/salesforce/callback",
            "stage": "$default", "time": "28/Nov/2026:10:01:00 +0000", "timeEpoch": 1795860060000u64
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid callback event")
}

fn rand_id() -> String {
    crate::unique("r")
}

pub fn status(response: &Response<Body>) -> u16 {
    response.status().as_u16()
}

pub fn body_json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

pub fn location(response: &Response<Body>) -> Url {
    let raw = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location header");
    Url::parse(raw).expect("absolute Location")
}

/// What a person does on the emulator's login and consent page: fills in the
/// form and clicks `action` ("Allow" or "Deny"). Returns where Salesforce sends
/// the browser (the callback URL with `code`/`error` and `state`).
pub async fn consent(
    authorize_url: &str,
    username: &str,
    password: &str,
    action: &str,
) -> Result<Url, (u16, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client");
    let page = http
        .get(authorize_url)
        .send()
        .await
        .expect("authorize page");
    let status = page.status().as_u16();
    let html = page.text().await.unwrap_or_default();
    if status != 200 {
        return Err((status, html));
    }
    let mut form: Vec<(String, String)> = local_stack::demo::hidden_inputs(&html);
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    form.push(("action".into(), action.into()));
    let base = Url::parse(authorize_url).expect("authorize URL");
    let post_to = base
        .join("/services/oauth2/authorize")
        .expect("form action");
    let answer = http
        .post(post_to)
        .form(&form)
        .send()
        .await
        .expect("form post");
    let status = answer.status().as_u16();
    match answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
    {
        Some(l) if status == 302 => Ok(Url::parse(l).expect("redirect URL")),
        _ => Err((status, answer.text().await.unwrap_or_default())),
    }
}
