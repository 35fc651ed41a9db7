//! The Pub/Sub API client (gRPC `eventbus.v1.PubSub`, tonic): topics, schemas
//! and subscriptions, authenticated with the tenant's access token.

use std::future::Future;
use std::time::Duration;

use pubsub_proto::{
    FetchRequest, FetchResponse, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest,
};
use secrecy::ExposeSecret;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use crate::domain::hosts::PubSubEndpoint;
use crate::ports::{PubSubApi, PubSubEvents};
use crate::salesforce::pubsub::{PubSubAuth, PubSubError};

/// The longest a topic or schema call may take before the API is treated as
/// unavailable (and the sync polls instead).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How a gRPC status is acted on.
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
}

impl PubSubApi for PubSubClient {
    type Subscription = Subscription;

    async fn get_topic(&mut self, topic: &str) -> Result<TopicInfo, PubSubError> {
        let request = TopicRequest {
            topic_name: topic.to_string(),
        };
        bounded(self.unary(pubsub_proto::GET_TOPIC, request)).await
    }

    async fn get_schema(&mut self, schema_id: &str) -> Result<SchemaInfo, PubSubError> {
        let request = SchemaRequest {
            schema_id: schema_id.to_string(),
        };
        bounded(self.unary(pubsub_proto::GET_SCHEMA, request)).await
    }

    /// Opens a subscription and sends `first`; further flow-control requests
    /// go through [`PubSubEvents::request`]. Not bounded here: a server may
    /// hold its response headers until its first answer (an event, or a
    /// keepalive within 270 s), so the caller decides how long to wait.
    async fn subscribe(&mut self, first: FetchRequest) -> Result<Subscription, PubSubError> {
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
        Ok(Subscription {
            requests: tx,
            answers: response.into_inner(),
        })
    }
}

/// An open subscription: the request side (flow control) and the server's answers.
pub struct Subscription {
    requests: tokio::sync::mpsc::UnboundedSender<FetchRequest>,
    answers: Streaming<FetchResponse>,
}

impl PubSubEvents for Subscription {
    async fn message(&mut self) -> Result<Option<FetchResponse>, PubSubError> {
        self.answers
            .message()
            .await
            .map_err(|status| PubSubError::from_status(&status))
    }

    fn request(&mut self, more: FetchRequest) -> bool {
        self.requests.send(more).is_ok()
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
