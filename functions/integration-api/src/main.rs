//! integration-api: admin settings, connect, status, users and mapping,
//! disconnect, and the read APIs for the platform (DESIGN §3, §4).

use lambda_http::{Body, Error, Request, RequestExt, Response, run, service_fn};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets::SecretsManagerStore;
use shared::aws::AwsClients;
use shared::config::{Config, OAuthConfig};
use shared::error::NotImplemented;

/// What the routes will run on. Wired now so that configuration and AWS access
/// fail at init, not at the first request.
#[allow(dead_code)] // read by the routes of the connect issue
struct Deps {
    config: Config,
    oauth: OAuthConfig,
    store: DynamoStore,
    secrets: SecretsManagerStore,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("integration-api");
    let config = Config::from_env()?;
    let oauth = OAuthConfig::from_env()?;
    let aws = AwsClients::from_env().await;
    let deps = Deps {
        store: DynamoStore::new(aws.dynamodb.clone(), &config.table_name),
        secrets: SecretsManagerStore::new(aws.secrets.clone(), &config.secret_prefix),
        config,
        oauth,
    };
    let deps = &deps;
    run(service_fn(move |request: Request| async move {
        handle(deps, request).await
    }))
    .await
}

async fn handle(_deps: &Deps, request: Request) -> Result<Response<Body>, Error> {
    let err = NotImplemented {
        function: "integration-api",
        what: "admin and read routes",
    };
    tracing::warn!(method = %request.method(), path = %request.raw_http_path(), "{err}");
    Ok(Response::builder()
        .status(501)
        .header("content-type", "application/json")
        .body(Body::from(
            serde_json::json!({ "error": "not_implemented", "message": err.to_string() })
                .to_string(),
        ))?)
}
