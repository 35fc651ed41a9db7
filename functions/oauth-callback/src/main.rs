//! oauth-callback: the public OAuth redirect endpoint (DESIGN §4, "Callback").

use lambda_http::{Error, Request, run, service_fn};
use shared::config::vars;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("oauth-callback");
    let (app, aws) = shared::app::from_env(true).await?;
    // A reconnect replays the calls parked while the tenant needed to reconnect.
    let call_queue = shared::app::queue_from_env(&aws, vars::CALL_EVENTS_QUEUE_URL)?;
    let (app, call_queue) = (&app, &call_queue);
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(shared::api::callback::handle(app, call_queue, request).await)
    }))
    .await
}
