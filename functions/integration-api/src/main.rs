//! integration-api: admin settings, connect, status, users and mapping, sync on
//! demand, disconnect, the read APIs for the platform (DESIGN §3, §4), and the
//! settings page that drives them.

use lambda_http::{Error, Request, run, service_fn};
use shared::config::vars;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("integration-api");
    let (app, aws) = shared::app::from_env(true).await?;
    let sync_jobs = shared::app::queue_from_env(&aws, vars::SYNC_JOBS_QUEUE_URL)?;
    let (app, sync_jobs) = (&app, &sync_jobs);
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(shared::api::routes::handle(app, sync_jobs, request).await)
    }))
    .await
}
