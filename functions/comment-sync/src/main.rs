//! comment-sync: keeps the comments block of a call's Task in step with Modjo
//! (DESIGN §3, §6).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::comments::handler::handle;
use shared::config::vars;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("comment-sync");
    let (app, aws) = shared::app::from_env(false).await?;
    let source = shared::app::queue_from_env(&aws, vars::COMMENT_EVENTS_QUEUE_URL)?;
    let dead_letters = shared::app::queue_from_env(&aws, vars::COMMENT_EVENTS_DLQ_URL)?;
    let sync = app.comment_sync(&dead_letters);
    let (app, sync, source) = (&app, &sync, &source);
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handle(app, sync, source, event).await)
    }))
    .await
}
