//! Salesforce Pub/Sub API: a gRPC server (plain HTTP/2) speaking
//! `eventbus.v1.PubSub` over the orgs' Change Data Capture buses.
//!
//! The protobuf messages are written by hand with the field numbers of
//! Salesforce's `pubsub_api.proto`, and the service is a hand-written
//! `tower::Service` in the shape `tonic-build` generates (no `protoc`).
//! Implemented: `GetTopic`, `GetSchema`, `Subscribe`. `Publish`,
//! `PublishStream` and `ManagedSubscribe` answer `UNIMPLEMENTED`.

use crate::cdc::{self, BusEvent, CHANGE_EVENTS_TOPIC};
use crate::http::Shared;
use crate::world::World;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tonic::codegen::{BoxFuture, BoxStream, Context, Poll, Service, http};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status, Streaming};

/// The protobuf messages of `pubsub_api.proto` (package `eventbus.v1`) that
/// the emulator serves, with Salesforce's field numbers.
pub use pubsub_proto as proto;

use proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset, SchemaInfo,
    SchemaRequest, TopicInfo, TopicRequest,
};

/// Full gRPC service name.
pub const SERVICE_NAME: &str = "eventbus.v1.PubSub";
/// Most events a subscription may have requested and not yet received.
pub const MAX_PENDING: i32 = 100;
/// Default keepalive interval (Salesforce: "within 270 seconds").
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(270);

/// `error-code` trailer: missing, invalid or expired credentials (UNAUTHENTICATED).
pub const ERR_AUTH: &str = "sfdc.platform.eventbus.grpc.service.auth.error";
/// `error-code`: unknown topic, or CDC not enabled for its object (NOT_FOUND).
pub const ERR_TOPIC_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.topic.not.found";
/// `error-code`: replay id unknown or older than the retention window (INVALID_ARGUMENT).
pub const ERR_REPLAY_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";
/// `error-code`: CUSTOM replay without a replay id (INVALID_ARGUMENT).
pub const ERR_REPLAY_VALIDATION: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed";
/// `error-code`: `num_requested` ≤ 0 (INVALID_ARGUMENT).
pub const ERR_NUM_REQUESTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid";
/// `error-code`: a later FetchRequest names another topic (INVALID_ARGUMENT).
pub const ERR_TOPIC_CHANGED: &str = "sfdc.platform.eventbus.grpc.subscription.fetch.topic.invalid";
/// `error-code`: unknown schema id (NOT_FOUND).
pub const ERR_SCHEMA_NOT_FOUND: &str = "sfdc.platform.eventbus.grpc.schema.not.found";

fn rpc_id() -> String {
    let a: u128 = rand::random();
    let s = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// A gRPC error the way Salesforce shapes it: the message ends with
/// `rpcId: …`, and the trailers carry `error-code` and `rpc-id`.
pub fn sf_status(code: Code, error_code: &str, message: &str, rpc: &str) -> Status {
    let mut md = MetadataMap::new();
    if let Ok(v) = MetadataValue::try_from(error_code) {
        md.insert("error-code", v);
    }
    if let Ok(v) = MetadataValue::try_from(rpc) {
        md.insert("rpc-id", v);
    }
    Status::with_metadata(code, format!("{message} rpcId: {rpc}"), md)
}

fn auth_error(rpc: &str) -> Status {
    sf_status(
        Code::Unauthenticated,
        ERR_AUTH,
        "An authentication exception occurred. Provide valid authentication via metadata headers.",
        rpc,
    )
}

fn topic_not_found(org_id: &str, topic: &str, rpc: &str) -> Status {
    sf_status(
        Code::NotFound,
        ERR_TOPIC_NOT_FOUND,
        &format!(
            "The topic information for org CORE/prod/{org_id} and topic {topic} not found. Ensure the topic name is correct and that the topic exists."
        ),
        rpc,
    )
}

fn replay_corrupted(rpc: &str) -> Status {
    sf_status(
        Code::InvalidArgument,
        ERR_REPLAY_CORRUPTED,
        "The Replay ID validation failed. Ensure that the replay_id field value in FetchRequest is valid and refers to an event that is within the retention window.",
        rpc,
    )
}

/// The authenticated caller of an RPC.
#[derive(Debug, Clone)]
struct Caller {
    org: usize,
    org_id: String,
    token: String,
}

fn meta<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Checks `accesstoken` (a live session with the `api` scope), `tenantid`
/// (its org) and `instanceurl` (the emulator's instance URL). `touch` counts
/// as session activity (the start of an RPC); the checks during a
/// subscription do not extend the session.
fn authenticate(world: &mut World, md: &MetadataMap, touch: bool) -> Option<Caller> {
    let token = meta(md, "accesstoken")?.to_string();
    let tenant = meta(md, "tenantid")?;
    let instance = meta(md, "instanceurl")?;
    if !instance
        .trim_end_matches('/')
        .eq_ignore_ascii_case(world.base_url.trim_end_matches('/'))
    {
        return None;
    }
    let sess = if touch {
        crate::oauth::session(world, &token)?
    } else {
        peek_session(world, &token)?
    };
    if !sess.scopes.iter().any(|s| s == "api" || s == "full") {
        return None;
    }
    let o = world.orgs.get(sess.org)?;
    if crate::ids::normalize15(tenant).as_deref() != Some(&o.id[..15]) {
        return None;
    }
    Some(Caller {
        org: sess.org,
        org_id: o.id.clone(),
        token,
    })
}

fn peek_session(world: &World, token: &str) -> Option<crate::world::AccessToken> {
    let t = world.access.get(token)?;
    let timeout = world.orgs.get(t.org)?.session_timeout_ms;
    if world.now() - t.last_used > timeout || !world.user_active(t.org, t.user) {
        return None;
    }
    Some(t.clone())
}

fn still_valid(world: &World, c: &Caller) -> bool {
    match peek_session(world, &c.token) {
        Some(s) => s.org == c.org && world.orgs.get(c.org).is_some_and(|o| o.id == c.org_id),
        None => false,
    }
}

/// Which events a topic carries.
#[derive(Debug, Clone, Copy)]
enum TopicFilter {
    /// One object.
    Object(usize),
    /// `/data/ChangeEvents`: every selected object.
    All,
}

impl TopicFilter {
    fn matches(self, obj: usize) -> bool {
        match self {
            TopicFilter::Object(o) => o == obj,
            TopicFilter::All => true,
        }
    }
}

/// Resolves a topic in an org: known, and CDC enabled for its object.
fn resolve_topic(world: &World, org: usize, topic: &str) -> Option<(TopicFilter, String)> {
    let o = world.orgs.get(org)?;
    if topic == CHANGE_EVENTS_TOPIC {
        return o
            .cdc
            .any_enabled()
            .then(|| (TopicFilter::All, String::new()));
    }
    let s = cdc::schema_for_topic(topic)?;
    o.cdc
        .is_enabled(s.obj)
        .then(|| (TopicFilter::Object(s.obj), s.id.clone()))
}

/// The `eventbus.v1.PubSub` service over the emulator's state.
#[derive(Debug, Clone)]
pub struct PubSubService {
    shared: Arc<Shared>,
}

impl PubSubService {
    /// A service over shared state.
    pub fn new(shared: Arc<Shared>) -> PubSubService {
        PubSubService { shared }
    }

    fn get_topic(&self, req: Request<TopicRequest>) -> Result<Response<TopicInfo>, Status> {
        let rpc = rpc_id();
        let mut world = self.shared.lock();
        let caller =
            authenticate(&mut world, req.metadata(), true).ok_or_else(|| auth_error(&rpc))?;
        let topic = req.into_inner().topic_name;
        let (_, schema_id) = resolve_topic(&world, caller.org, &topic)
            .ok_or_else(|| topic_not_found(&caller.org_id, &topic, &rpc))?;
        Ok(Response::new(TopicInfo {
            topic_name: topic,
            tenant_guid: caller.org_id,
            can_publish: false,
            can_subscribe: true,
            schema_id,
            rpc_id: rpc,
        }))
    }

    fn get_schema(&self, req: Request<SchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        let rpc = rpc_id();
        let mut world = self.shared.lock();
        authenticate(&mut world, req.metadata(), true).ok_or_else(|| auth_error(&rpc))?;
        let id = req.into_inner().schema_id;
        let s = cdc::schema_by_id(&id).ok_or_else(|| {
            sf_status(
                Code::NotFound,
                ERR_SCHEMA_NOT_FOUND,
                &format!("The schema {id} was not found."),
                &rpc,
            )
        })?;
        Ok(Response::new(SchemaInfo {
            schema_json: s.json.clone(),
            schema_id: s.id.clone(),
            rpc_id: rpc,
        }))
    }

    fn subscribe(
        &self,
        req: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<BoxStream<FetchResponse>>, Status> {
        let rpc = rpc_id();
        let caller = {
            let mut world = self.shared.lock();
            authenticate(&mut world, req.metadata(), true).ok_or_else(|| auth_error(&rpc))?
        };
        let inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<FetchResponse, Status>>(8);
        let sub = Subscription {
            shared: self.shared.clone(),
            caller,
            rpc,
            tx,
        };
        tokio::spawn(sub.run(inbound));
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

struct Subscription {
    shared: Arc<Shared>,
    caller: Caller,
    rpc: String,
    tx: tokio::sync::mpsc::Sender<Result<FetchResponse, Status>>,
}

enum Step {
    Events(Vec<BusEvent>),
    Idle(u64),
    Fail(Status),
}

impl Subscription {
    fn invalid(&self, code: &str, message: &str) -> Status {
        sf_status(Code::InvalidArgument, code, message, &self.rpc)
    }

    fn requested(&self, n: i32) -> Result<i32, Status> {
        if n <= 0 {
            return Err(self.invalid(
                ERR_NUM_REQUESTED,
                "The requested number of events in a fetch request must be greater than zero.",
            ));
        }
        Ok(n)
    }

    /// Validates the first FetchRequest: topic, replay start, count.
    fn start(&self, first: &FetchRequest) -> Result<(TopicFilter, u64, i32), Status> {
        let mut world = self.shared.lock();
        let now = world.now();
        if !still_valid(&world, &self.caller) {
            return Err(auth_error(&self.rpc));
        }
        let (filter, _) = resolve_topic(&world, self.caller.org, &first.topic_name)
            .ok_or_else(|| topic_not_found(&self.caller.org_id, &first.topic_name, &self.rpc))?;
        let bus = &mut world.orgs[self.caller.org].cdc;
        bus.prune(now);
        let cursor = match ReplayPreset::try_from(first.replay_preset) {
            Ok(ReplayPreset::Latest) => bus.tip(),
            Ok(ReplayPreset::Earliest) => bus.earliest(),
            Ok(ReplayPreset::Custom) => {
                if first.replay_id.is_empty() {
                    return Err(self.invalid(
                        ERR_REPLAY_VALIDATION,
                        "The replay_preset field in FetchRequest is set to ReplayPreset.CUSTOM, but no Replay ID value is set.",
                    ));
                }
                let x = cdc::parse_replay(&first.replay_id)
                    .ok_or_else(|| replay_corrupted(&self.rpc))?;
                bus.validate_replay(x)
                    .map_err(|_| replay_corrupted(&self.rpc))?
            }
            Err(_) => {
                return Err(self.invalid(
                    ERR_REPLAY_VALIDATION,
                    "The replay_preset field in FetchRequest is not valid.",
                ));
            }
        };
        let n = self.requested(first.num_requested)?;
        Ok((filter, cursor, n.min(MAX_PENDING)))
    }

    fn step(&self, filter: TopicFilter, cursor: u64, pending: i32) -> Step {
        let mut world = self.shared.lock();
        let now = world.now();
        if !still_valid(&world, &self.caller) {
            return Step::Fail(auth_error(&self.rpc));
        }
        let bus = &mut world.orgs[self.caller.org].cdc;
        bus.prune(now);
        if pending > 0 {
            let evs = bus.events_after(cursor, pending as usize, |o| filter.matches(o));
            if !evs.is_empty() {
                return Step::Events(evs);
            }
        }
        Step::Idle(bus.tip())
    }

    async fn send(&self, item: Result<FetchResponse, Status>) -> bool {
        self.tx.send(item).await.is_ok()
    }

    async fn run(self, mut inbound: Streaming<FetchRequest>) {
        let mut bus = self.shared.bus.subscribe();
        let first = match inbound.message().await {
            Ok(Some(m)) => m,
            _ => return,
        };
        let (filter, mut cursor, mut pending) = match self.start(&first) {
            Ok(v) => v,
            Err(status) => {
                let _ = self.send(Err(status)).await;
                return;
            }
        };
        let topic = first.topic_name;
        let keepalive =
            || Duration::from_millis(self.shared.keepalive_ms.load(Ordering::Relaxed).max(10));
        let mut next_keepalive = tokio::time::Instant::now() + keepalive();
        let mut keepalive_due = false;
        let mut inbound_open = true;
        loop {
            bus.borrow_and_update();
            match self.step(filter, cursor, pending) {
                Step::Fail(status) => {
                    let _ = self.send(Err(status)).await;
                    return;
                }
                Step::Events(evs) => {
                    let n = evs.len() as i32;
                    cursor = evs.last().map_or(cursor, |e| e.replay);
                    pending -= n;
                    let events = evs
                        .into_iter()
                        .map(|e| ConsumerEvent {
                            event: Some(ProducerEvent {
                                id: e.uuid,
                                schema_id: e.schema_id.to_string(),
                                payload: e.payload.to_vec(),
                                headers: Vec::new(),
                            }),
                            replay_id: cdc::replay_bytes(e.replay),
                        })
                        .collect();
                    let resp = FetchResponse {
                        events,
                        latest_replay_id: cdc::replay_bytes(cursor),
                        rpc_id: self.rpc.clone(),
                        pending_num_requested: pending,
                    };
                    if !self.send(Ok(resp)).await {
                        return;
                    }
                    keepalive_due = false;
                    next_keepalive = tokio::time::Instant::now() + keepalive();
                    continue;
                }
                Step::Idle(tip) => {
                    if pending > 0 {
                        // Caught up: nothing of this topic lies between the cursor and the tip.
                        cursor = cursor.max(tip);
                        if keepalive_due {
                            keepalive_due = false;
                            let resp = FetchResponse {
                                events: Vec::new(),
                                latest_replay_id: cdc::replay_bytes(cursor),
                                rpc_id: self.rpc.clone(),
                                pending_num_requested: pending,
                            };
                            if !self.send(Ok(resp)).await {
                                return;
                            }
                        }
                    }
                }
            }
            tokio::select! {
                _ = self.tx.closed() => return,
                m = inbound.message(), if inbound_open => match m {
                    Ok(Some(req)) => {
                        if !req.topic_name.is_empty() && req.topic_name != topic {
                            let status = self.invalid(
                                ERR_TOPIC_CHANGED,
                                "The topic_name of a FetchRequest must match the topic of the first FetchRequest of the stream.",
                            );
                            let _ = self.send(Err(status)).await;
                            return;
                        }
                        match self.requested(req.num_requested) {
                            Ok(n) => pending = (pending + n).min(MAX_PENDING),
                            Err(status) => {
                                let _ = self.send(Err(status)).await;
                                return;
                            }
                        }
                    }
                    Ok(None) => inbound_open = false,
                    Err(_) => return,
                },
                changed = bus.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(next_keepalive) => {
                    keepalive_due = true;
                    next_keepalive = tokio::time::Instant::now() + keepalive();
                }
            }
        }
    }
}

struct GetTopicSvc(PubSubService);

impl tonic::server::UnaryService<TopicRequest> for GetTopicSvc {
    type Response = TopicInfo;
    type Future = BoxFuture<Response<TopicInfo>, Status>;
    fn call(&mut self, request: Request<TopicRequest>) -> Self::Future {
        let s = self.0.clone();
        Box::pin(async move { s.get_topic(request) })
    }
}

struct GetSchemaSvc(PubSubService);

impl tonic::server::UnaryService<SchemaRequest> for GetSchemaSvc {
    type Response = SchemaInfo;
    type Future = BoxFuture<Response<SchemaInfo>, Status>;
    fn call(&mut self, request: Request<SchemaRequest>) -> Self::Future {
        let s = self.0.clone();
        Box::pin(async move { s.get_schema(request) })
    }
}

struct SubscribeSvc(PubSubService);

impl tonic::server::StreamingService<FetchRequest> for SubscribeSvc {
    type Response = FetchResponse;
    type ResponseStream = BoxStream<FetchResponse>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;
    fn call(&mut self, request: Request<Streaming<FetchRequest>>) -> Self::Future {
        let s = self.0.clone();
        Box::pin(async move { s.subscribe(request) })
    }
}

impl Service<http::Request<tonic::body::Body>> for PubSubService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let svc = self.clone();
        match req.uri().path() {
            "/eventbus.v1.PubSub/GetTopic" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(GetTopicSvc(svc), req).await)
            }),
            "/eventbus.v1.PubSub/GetSchema" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(GetSchemaSvc(svc), req).await)
            }),
            "/eventbus.v1.PubSub/Subscribe" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.streaming(SubscribeSvc(svc), req).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    Status::GRPC_STATUS,
                    http::HeaderValue::from(Code::Unimplemented as i32),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            }),
        }
    }
}

impl tonic::server::NamedService for PubSubService {
    const NAME: &'static str = SERVICE_NAME;
}

/// Serves the Pub/Sub API on a bound listener until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let served = tonic::transport::Server::builder()
        .add_service(PubSubService::new(shared))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "Pub/Sub server stopped with an error");
    }
}
