//! integration-api: admin settings, connect, status, users and mapping,
//! disconnect, and the read APIs for the platform (DESIGN §3, §4).

use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init("integration-api");
    let (app, _aws) = shared::app::from_env(true).await?;
    let app = &app;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(shared::api::routes::handle(app, request).await)
    }))
    .await
}
