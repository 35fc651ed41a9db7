//! call-logger: logs each recorded call as a Salesforce call activity (DESIGN §6).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::calls::handler::handle;
use shared::config::vars;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("call-logger");
    let (app, aws) = shared::app::from_env(false).await?;
    let source = shared::app::queue_from_env(&aws, vars::CALL_EVENTS_QUEUE_URL)?;
    let dead_letters = shared::app::queue_from_env(&aws, vars::CALL_EVENTS_DLQ_URL)?;
    let logger = app.call_logger(&source, &dead_letters);
    let (app, logger, source) = (&app, &logger, &source);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle(app, logger, source, event).await)
    }))
    .await
}
