//! oauth-callback: the public OAuth redirect endpoint (DESIGN §4, "Callback").

use lambda_http::{Body, Error, Request, Response, run, service_fn};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets::SecretsManagerStore;
use shared::aws::AwsClients;
use shared::config::{Config, OAuthConfig};
use shared::error::NotImplemented;

#[allow(dead_code)] // read by the callback of the connect issue
struct Deps {
    config: Config,
    oauth: OAuthConfig,
    store: DynamoStore,
    secrets: SecretsManagerStore,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("oauth-callback");
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

/// Never a fake success: the browser lands on the Modjo page with an explicit error flag.
async fn handle(deps: &Deps, _request: Request) -> Result<Response<Body>, Error> {
    let err = NotImplemented {
        function: "oauth-callback",
        what: "code exchange",
    };
    tracing::warn!("{err}");
    let mut target = deps.oauth.return_url.clone();
    target
        .query_pairs_mut()
        .append_pair("salesforce", "error")
        .append_pair("reason", "not_implemented");
    Ok(Response::builder()
        .status(302)
        .header("location", target.as_str())
        .body(Body::Empty)?)
}
