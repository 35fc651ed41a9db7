//! The protobuf messages of Salesforce's Pub/Sub API (`pubsub_api.proto`, package
//! `eventbus.v1`) used by the product's subscriber and the emulator's server,
//! written by hand with Salesforce's field numbers (no `protoc` needed).
//! Source: forcedotcom/pub-sub-api, `pubsub_api.proto`.

/// gRPC method paths.
pub const GET_TOPIC: &str = "/eventbus.v1.PubSub/GetTopic";
pub const GET_SCHEMA: &str = "/eventbus.v1.PubSub/GetSchema";
pub const SUBSCRIBE: &str = "/eventbus.v1.PubSub/Subscribe";

/// `TopicRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicRequest {
    /// 1: topic name.
    #[prost(string, tag = "1")]
    pub topic_name: String,
}

/// `TopicInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicInfo {
    /// 1.
    #[prost(string, tag = "1")]
    pub topic_name: String,
    /// 2: the org id.
    #[prost(string, tag = "2")]
    pub tenant_guid: String,
    /// 3.
    #[prost(bool, tag = "3")]
    pub can_publish: bool,
    /// 4.
    #[prost(bool, tag = "4")]
    pub can_subscribe: bool,
    /// 5.
    #[prost(string, tag = "5")]
    pub schema_id: String,
    /// 6.
    #[prost(string, tag = "6")]
    pub rpc_id: String,
}

/// `EventHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventHeader {
    /// 1.
    #[prost(string, tag = "1")]
    pub key: String,
    /// 2.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `ProducerEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProducerEvent {
    /// 1: event uuid.
    #[prost(string, tag = "1")]
    pub id: String,
    /// 2.
    #[prost(string, tag = "2")]
    pub schema_id: String,
    /// 3: Avro binary datum.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// 4.
    #[prost(message, repeated, tag = "4")]
    pub headers: Vec<EventHeader>,
}

/// `ConsumerEvent`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsumerEvent {
    /// 1.
    #[prost(message, optional, tag = "1")]
    pub event: Option<ProducerEvent>,
    /// 2.
    #[prost(bytes = "vec", tag = "2")]
    pub replay_id: Vec<u8>,
}

/// `ReplayPreset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReplayPreset {
    /// Tip of the stream.
    Latest = 0,
    /// Earliest retained event.
    Earliest = 1,
    /// After `replay_id`.
    Custom = 2,
}

/// `FetchRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchRequest {
    /// 1.
    #[prost(string, tag = "1")]
    pub topic_name: String,
    /// 2.
    #[prost(enumeration = "ReplayPreset", tag = "2")]
    pub replay_preset: i32,
    /// 3.
    #[prost(bytes = "vec", tag = "3")]
    pub replay_id: Vec<u8>,
    /// 4.
    #[prost(int32, tag = "4")]
    pub num_requested: i32,
    /// 5.
    #[prost(string, tag = "5")]
    pub auth_refresh: String,
}

/// `FetchResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchResponse {
    /// 1.
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<ConsumerEvent>,
    /// 2.
    #[prost(bytes = "vec", tag = "2")]
    pub latest_replay_id: Vec<u8>,
    /// 3.
    #[prost(string, tag = "3")]
    pub rpc_id: String,
    /// 4.
    #[prost(int32, tag = "4")]
    pub pending_num_requested: i32,
}

/// `SchemaRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaRequest {
    /// 1.
    #[prost(string, tag = "1")]
    pub schema_id: String,
}

/// `SchemaInfo`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaInfo {
    /// 1: Avro schema (JSON).
    #[prost(string, tag = "1")]
    pub schema_json: String,
    /// 2.
    #[prost(string, tag = "2")]
    pub schema_id: String,
    /// 3.
    #[prost(string, tag = "3")]
    pub rpc_id: String,
}
