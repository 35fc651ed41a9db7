//! oauth-callback: `GET /integrations/salesforce/callback`, public. The signed,
//! single-use `state` authenticates the request; the answer is always a 302 to
//! the configured Modjo page (never to a URL taken from the request).

use lambda_http::{Body, Request, RequestExt, Response};

use crate::app::App;
use crate::connect::{CallbackParams, CallbackResult, ConnectStore};
use crate::ports::{JobQueue, LeaseStore, SecretStore};

pub async fn handle<S: ConnectStore + LeaseStore, K: SecretStore, Q: JobQueue>(
    app: &App<S, K>,
    call_queue: &Q,
    request: Request,
) -> Response<Body> {
    let Some(oauth) = app.oauth.as_ref() else {
        tracing::error!("oauth-callback started without OAuth configuration");
        let mut r = Response::new(Body::Empty);
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        return r;
    };
    let result = if request.method() != http::Method::GET {
        CallbackResult::InvalidState
    } else {
        let query = request.query_string_parameters();
        let param = |name: &str| query.first(name).map(str::to_string);
        let params = CallbackParams {
            code: param("code"),
            state: param("state"),
            error: param("error"),
            error_description: param("error_description"),
        };
        let (result, tenant) = app.connect().complete_callback(&params, call_queue).await;
        tracing::info!(
            tenant_id = tenant.as_ref().map(|t| t.as_str()).unwrap_or("-"),
            result = result.as_str(),
            "OAuth callback"
        );
        result
    };
    let mut target = oauth.return_url.clone();
    {
        let mut pairs = target.query_pairs_mut();
        if result == CallbackResult::Connected {
            pairs.append_pair("salesforce", "connected");
        } else {
            pairs.append_pair("salesforce", "error");
            pairs.append_pair("reason", result.as_str());
        }
    }
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = http::StatusCode::FOUND;
    if let Ok(location) = http::HeaderValue::from_str(target.as_str()) {
        response.headers_mut().insert("location", location);
    }
    response
        .headers_mut()
        .insert("cache-control", http::HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        "referrer-policy",
        http::HeaderValue::from_static("no-referrer"),
    );
    response
}
