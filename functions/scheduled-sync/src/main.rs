//! scheduled-sync: the 15-minute fan-out (EventBridge) and each tenant's sync job
//! (sync-jobs queue) (DESIGN §5).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets::SecretsManagerStore;
use shared::adapters::sqs::SqsQueue;
use shared::aws::AwsClients;
use shared::config::{self, Config, vars};
use shared::error::NotImplemented;

#[allow(dead_code)] // read by the sync of the scheduled-sync issue
struct Deps {
    config: Config,
    store: DynamoStore,
    secrets: SecretsManagerStore,
    jobs: SqsQueue,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("scheduled-sync");
    let config = Config::from_env()?;
    let jobs_url = config::queue_url_from_env(vars::SYNC_JOBS_QUEUE_URL)?;
    let aws = AwsClients::from_env().await;
    let deps = Deps {
        store: DynamoStore::new(aws.dynamodb.clone(), &config.table_name),
        secrets: SecretsManagerStore::new(aws.secrets.clone(), &config.secret_prefix),
        jobs: SqsQueue::new(aws.sqs.clone(), jobs_url),
        config,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(deps, event).await
    }))
    .await
}

async fn handle(_deps: &Deps, _event: LambdaEvent<Value>) -> Result<Value, Error> {
    Err(NotImplemented {
        function: "scheduled-sync",
        what: "fan-out and tenant sync",
    }
    .into())
}
