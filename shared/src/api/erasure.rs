//! The erasure routes: `POST erasures` (erase a person from Modjo's store) and
//! `DELETE connection?purge=true` (disconnect and remove every item of the tenant).

use std::time::Duration;

use lambda_http::{Body, Request, Response};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{ApiError, json_body, json_response};
use crate::app::App;
use crate::connect::{ConnectError, ConnectStore};
use crate::domain::Actor;
use crate::domain::{AuditEntry, ConnectionStatus};
use crate::erase::person::tenant_key;
use crate::erase::purge::Purger;
use crate::erase::service::{EraseError, Eraser};
use crate::erase::{EraseInput, ErasureStore, IdentifierError};
use crate::ports::{
    CallStore, ConnectionStore, LeaseStore, RecordStore, SalesforceSessions, SecretStore,
    StoreError,
};

/// Time allowed for the one Salesforce request of an erasure.
const CHECK_BUDGET: Duration = Duration::from_secs(10);

impl From<EraseError> for ApiError {
    fn from(e: EraseError) -> Self {
        match e {
            EraseError::Invalid(i) => invalid(&i),
            EraseError::NotFound => ApiError::new(404, "not_found", e.to_string()),
            EraseError::TooMany(_) => ApiError {
                reason: Some("ambiguous"),
                ..ApiError::new(400, "invalid_request", e.to_string())
            },
            EraseError::Store(StoreError::Rejected(m)) if m == "invalid page token" => ApiError {
                field: Some("cursor"),
                reason: Some("format"),
                ..ApiError::new(400, "invalid_request", "invalid cursor")
            },
            EraseError::Store(s) => ApiError::from(ConnectError::Store(s)),
        }
    }
}

fn invalid(e: &IdentifierError) -> ApiError {
    ApiError {
        field: Some(e.field()),
        reason: Some("format"),
        ..ApiError::new(400, "invalid_request", e.to_string())
    }
}

/// `POST erasures`.
pub async fn erase<
    S: ErasureStore + RecordStore + CallStore + ConnectionStore + LeaseStore,
    K: SecretStore,
>(
    app: &App<S, K>,
    actor: &Actor,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let input: EraseInput = json_body(request)?;
    // The audit trail's keyed hash: a per-tenant key derived from the stack's
    // state-signing secret, which never leaves Secrets Manager and this function.
    let keys = app
        .signing_keys()
        .await
        .map_err(|e| ApiError::from(ConnectError::Store(e)))?;
    let key = tenant_key(
        keys.current.expose_secret().as_bytes(),
        actor.tenant.as_str(),
    );
    let session = app
        .sessions()
        .open(&actor.tenant, tokio::time::Instant::now() + CHECK_BUDGET);
    let eraser = Eraser::new(&app.store, &session, key, app.config.budget);
    let report = Box::pin(eraser.erase(&actor.tenant, &actor.user_id, &input)).await?;
    Ok(json_response(200, &report))
}

/// `DELETE connection`, with `?purge=true` the tenant's items too.
pub async fn disconnect<S: ConnectStore + ErasureStore + LeaseStore, K: SecretStore>(
    app: &App<S, K>,
    actor: &Actor,
    purge: bool,
) -> Result<Response<Body>, ApiError> {
    if !purge {
        app.connect().disconnect(actor).await?;
        return Ok(json_response(200, &json!({ "status": "disconnected" })));
    }
    let connection = app
        .store
        .get_connection(&actor.tenant)
        .await
        .map_err(|e| ApiError::from(ConnectError::Store(e)))?;
    // A purge already under way has disconnected (or removed the connection).
    if connection.is_some_and(|c| c.status != ConnectionStatus::Disconnected) {
        app.connect().disconnect(actor).await?;
    }
    let progress = Purger::new(&app.store)
        .purge(&actor.tenant)
        .await
        .map_err(|e| ApiError::from(ConnectError::Store(e)))?;
    if progress.done {
        let entry = AuditEntry::now(&actor.user_id, "tenant_purged", None);
        app.store
            .append_audit(&actor.tenant, &entry)
            .await
            .map_err(|e| ApiError::from(ConnectError::Store(e)))?;
    }
    Ok(json_response(
        200,
        &json!({ "status": "disconnected", "purge": progress }),
    ))
}
