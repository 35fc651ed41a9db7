//! scheduled-sync: the 15-minute fan-out (EventBridge) and each tenant's sync job
//! (sync-jobs queue) (DESIGN §5).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;
use shared::config::vars;
use shared::sync::handler::{SyncOptions, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("scheduled-sync");
    let (app, aws) = shared::app::from_env(false).await?;
    let jobs = shared::app::queue_from_env(&aws, vars::SYNC_JOBS_QUEUE_URL)?;
    let calls = shared::app::queue_from_env(&aws, vars::CALL_EVENTS_QUEUE_URL)?;
    let dead_letters = shared::app::queue_from_env(&aws, vars::SYNC_JOBS_DLQ_URL)?;
    let syncer = app
        .syncer(&jobs)
        .with_call_replay(&calls)
        .with_dead_letters(&dead_letters);
    let (app, syncer) = (&app, &syncer);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(app, syncer, event, SyncOptions::default())
            .await
            .map_err(Error::from)
    }))
    .await
}
