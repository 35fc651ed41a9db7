//! Salesforce's Pub/Sub API as the port speaks it, without I/O: who is calling,
//! how a failure is classified, and the fetch requests of a subscription (flow
//! control). The gRPC client is in `crate::adapters::salesforce::pubsub`.

use pubsub_proto::FetchRequest;
pub use pubsub_proto::ReplayPreset;
use secrecy::SecretString;

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
