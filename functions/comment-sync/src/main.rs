//! comment-sync: keeps the comments block of a call's Task in step with Modjo (DESIGN §3, §6).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets::SecretsManagerStore;
use shared::aws::AwsClients;
use shared::config::Config;
use shared::error::NotImplemented;

#[allow(dead_code)] // read by the handler of its issue
struct Deps {
    config: Config,
    store: DynamoStore,
    secrets: SecretsManagerStore,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("comment-sync");
    let config = Config::from_env()?;
    let aws = AwsClients::from_env().await;
    let deps = Deps {
        store: DynamoStore::new(aws.dynamodb.clone(), &config.table_name),
        secrets: SecretsManagerStore::new(aws.secrets.clone(), &config.secret_prefix),
        config,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        handle(deps, event).await
    }))
    .await
}

/// Fails the whole batch: the messages stay on the queue and end in its DLQ,
/// where they are kept until this is built. Nothing is acknowledged falsely.
async fn handle(_deps: &Deps, _event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    Err(NotImplemented {
        function: "comment-sync",
        what: "comment propagation",
    }
    .into())
}
