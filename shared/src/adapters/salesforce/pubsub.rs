//! The Pub/Sub API client (gRPC `eventbus.v1.PubSub`, tonic): topics, schemas
//! and subscriptions, authenticated with the tenant's access token.

use std::future::Future;
use std::time::Duration;

pub use pubsub_proto::ReplayPreset;
use pubsub_proto::{
    FetchRequest, FetchResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use crate::domain::hosts::PubSubEndpoint;

/// The longest a topic or schema call may take before the API is treated as
/// unavailable (and the sync polls instead).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the Pub/Sub API needs to know who is calling.
#[derive(Debug, Clone)]
pub struct PubSubAuth {
    pub access_token: SecretString,
    /// The org's instance URL.
    pub instance_url: String,
    /// The org id.
    pub tenant_id: String,
}

/// A gRPC failure, classified the way the subscriber acts on it.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// The access token is expired or invalid: refresh it and subscribe again.
    #[error("Pub/Sub API authentication failed: {0}")]
    Unauthenticated(String),
    /// The topic does not exist for this org (Change Data Capture not enabled for
    /// the object).
    #[error("Pub/Sub topic not found: {0}")]
    TopicNotFound(String),
    /// The connected user may not read the topic (a missing permission, not an
    /// expired token: renewing the token would not help).
    #[error("Pub/Sub API permission denied: {0}")]
    PermissionDenied(String),
    /// The replay id is no longer retained (older than 72 hours) or invalid.
    #[error("replay id refused: {0}")]
    ReplayIdInvalid(String),
    /// The Pub/Sub API could not be reached or failed transiently.
    #[error("Pub/Sub API unavailable: {0}")]
    Unavailable(String),
    #[error("Pub/Sub API error: {0}")]
    Other(String),
}

impl PubSubError {
    pub fn from_status(status: &Status) -> Self {
        let code = status
            .metadata()
            .get("error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let message = format!("{} ({code})", status.message());
        match status.code() {
            Code::Unauthenticated => PubSubError::Unauthenticated(message),
            Code::PermissionDenied => PubSubError::PermissionDenied(message),
            Code::NotFound => PubSubError::TopicNotFound(message),
            Code::InvalidArgument
                if code.contains("replayid") || status.message().contains("Replay ID") =>
            {
                PubSubError::ReplayIdInvalid(message)
            }
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Internal
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown => PubSubError::Unavailable(message),
            _ => PubSubError::Other(message),
        }
    }
}

/// `call`, bounded by [`CALL_TIMEOUT`].
async fn bounded<T>(call: impl Future<Output = Result<T, PubSubError>>) -> Result<T, PubSubError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(PubSubError::Unavailable("no answer in 30 s".into())))
}

pub struct PubSubClient {
    grpc: tonic::client::Grpc<Channel>,
    auth: PubSubAuth,
}

impl PubSubClient {
    pub async fn connect(endpoint: &PubSubEndpoint, auth: PubSubAuth) -> Result<Self, PubSubError> {
        let mut builder = Endpoint::from_shared(endpoint.as_str().to_string())
            .map_err(|e| PubSubError::Other(e.to_string()))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(30));
        if endpoint.is_https() {
            builder = builder
                .tls_config(ClientTlsConfig::new().with_webpki_roots())
                .map_err(|e| PubSubError::Other(e.to_string()))?;
        }
        let channel = builder
            .connect()
            .await
            .map_err(|e| PubSubError::Unavailable(e.to_string()))?;
        Ok(Self {
            grpc: tonic::client::Grpc::new(channel),
            auth,
        })
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, PubSubError> {
        let mut r = Request::new(message);
        let value = |v: &str| {
            MetadataValue::try_from(v)
                .map_err(|_| PubSubError::Other("invalid metadata value".into()))
        };
        let md = r.metadata_mut();
        md.insert(
            "accesstoken",
            value(self.auth.access_token.expose_secret())?,
        );
        md.insert("instanceurl", value(&self.auth.instance_url)?);
        md.insert("tenantid", value(&self.auth.tenant_id)?);
        Ok(r)
    }

    pub async fn get_topic(&mut self, topic: &str) -> Result<TopicInfo, PubSubError> {
        let request = TopicRequest {
            topic_name: topic.to_string(),
        };
        bounded(self.unary(pubsub_proto::GET_TOPIC, request)).await
    }

    pub async fn get_schema(&mut self, schema_id: &str) -> Result<SchemaInfo, PubSubError> {
        let request = SchemaRequest {
            schema_id: schema_id.to_string(),
        };
        bounded(self.unary(pubsub_proto::GET_SCHEMA, request)).await
    }

    async fn unary<Q, R>(&mut self, path: &'static str, message: Q) -> Result<R, PubSubError>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| PubSubError::Unavailable(e.to_string()))?;
        let request = self.request(message)?;
        let path = http::uri::PathAndQuery::from_static(path);
        self.grpc
            .unary(request, path, tonic_prost::ProstCodec::default())
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| PubSubError::from_status(&s))
    }

    /// Opens a subscription and sends `first`; further flow-control requests
    /// ([`more`]) go through the returned sender. Not bounded here: a server may
    /// hold its response headers until its first answer (an event, or a
    /// keepalive within 270 s), so the caller decides how long to wait.
    pub async fn subscribe(&mut self, first: FetchRequest) -> Result<Subscription, PubSubError> {
        self.grpc
            .ready()
            .await
            .map_err(|e| PubSubError::Unavailable(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<FetchRequest>();
        tx.send(first)
            .map_err(|_| PubSubError::Other("request channel closed".into()))?;
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let request = self.request(requests)?;
        let path = http::uri::PathAndQuery::from_static(pubsub_proto::SUBSCRIBE);
        let response = self
            .grpc
            .streaming(request, path, tonic_prost::ProstCodec::default())
            .await
            .map_err(|s| PubSubError::from_status(&s))?;
        Ok((tx, response.into_inner()))
    }
}

/// The request side (flow control) and the response stream of a subscription.
pub type Subscription = (
    tokio::sync::mpsc::UnboundedSender<FetchRequest>,
    Streaming<FetchResponse>,
);

/// The first `FetchRequest` of a subscription: where to start, and how many
/// events to send.
pub fn fetch(
    topic: &str,
    preset: ReplayPreset,
    replay_id: Vec<u8>,
    num_requested: i32,
) -> FetchRequest {
    FetchRequest {
        topic_name: topic.to_string(),
        replay_preset: preset as i32,
        replay_id,
        num_requested,
        auth_refresh: String::new(),
    }
}

/// A follow-up `FetchRequest` asking for `num_requested` more events. The server
/// reads only `num_requested` after the first request (the position is the
/// stream's); the topic is repeated as Salesforce's examples do.
pub fn more(topic: &str, num_requested: i32) -> FetchRequest {
    FetchRequest {
        topic_name: topic.to_string(),
        num_requested,
        ..FetchRequest::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let with_code = |code: Code, msg: &str, ec: &str| {
            let mut s = Status::new(code, msg);
            s.metadata_mut().insert("error-code", ec.parse().unwrap());
            PubSubError::from_status(&s)
        };
        assert!(matches!(
            with_code(
                Code::Unauthenticated,
                "auth",
                "sfdc.platform.eventbus.grpc.service.auth.error"
            ),
            PubSubError::Unauthenticated(_)
        ));
        assert!(matches!(
            with_code(Code::NotFound, "topic", "x"),
            PubSubError::TopicNotFound(_)
        ));
        assert!(matches!(
            with_code(Code::PermissionDenied, "no access", "x"),
            PubSubError::PermissionDenied(_)
        ));
        assert!(matches!(
            with_code(
                Code::InvalidArgument,
                "The Replay ID validation failed.",
                "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
            ),
            PubSubError::ReplayIdInvalid(_)
        ));
        assert!(matches!(
            with_code(Code::Unavailable, "down", ""),
            PubSubError::Unavailable(_)
        ));
    }
}
