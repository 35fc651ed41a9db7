//! Salesforce org emulator (issue 3).
//!
//! An axum server holding one or more orgs in memory, speaking Salesforce's
//! OAuth web-server flow and REST API (query, sObjects, collections, composite,
//! SOSL, updated/deleted, limits), with fault injection and a control API,
//! and optionally (issue 10) the Pub/Sub API (gRPC `eventbus.v1.PubSub`)
//! serving Change Data Capture events ([`cdc`], [`pubsub`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sf_emulator::{AppSpec, Emulator, Options, OrgSpec, UserSpec};
//! let emu = Emulator::start(Options::default()).await?;
//! let org = emu.create_org(OrgSpec { key: Some("acme".into()), ..Default::default() })?;
//! emu.create_user("acme", UserSpec {
//!     username: "admin@acme.test".into(), email: "admin@acme.test".into(),
//!     last_name: "Admin".into(), ..Default::default() })?;
//! let app = emu.create_app("acme", AppSpec {
//!     callback_url: "http://127.0.0.1:9/cb".into(),
//!     auto_approve_user: Some("admin@acme.test".into()), ..Default::default() })?;
//! println!("{} {} {}", emu.base_url(), org.org_id, app.consumer_key);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Answers are `serde_json::Value`s built with `json!` or a `Map`: the workspace
//! turns on serde_json's `preserve_order`, so keys come out in the order they
//! were inserted, as Salesforce writes them (`attributes` first, then the fields
//! in SELECT order).

// A field's describe is one `json!` object of some sixty keys, deeper than
// the default limit of macro recursion.
#![recursion_limit = "256"]

pub mod access;
pub mod cdc;
pub mod composite;
pub mod conditional;
pub mod content;
pub mod control;
pub mod describe;
pub mod event;
pub mod http;
pub mod ids;
pub mod oauth;
pub mod org;
pub mod pubsub;
pub mod rest;
pub mod schema;
pub mod soql;
pub mod sosl;
pub mod store;
pub mod time;
pub mod ui;
pub mod versions;
pub mod world;

pub use cdc::{EventInfo, EventType};
pub use org::PagePolicy;
pub use org::{ChangeEntry, ChangeType, ConnectedApp, FailureKind};
pub use world::{
    AppSpec, ControlError, Counters, Fault, Footprint, OrgInfo, OrgSpec, RecordFault, SeedFile,
    SeedOrg, SeedRecord, UserInfo, UserSpec, WriteOp,
};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The API version used in URLs the emulator builds for itself.
pub const API_VERSION: &str = "62.0";

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind (default 127.0.0.1).
    pub host: IpAddr,
    /// Port (0: an ephemeral port).
    pub port: u16,
    /// Base URL announced as instance URL (default `http://<bound address>`).
    pub public_url: Option<String>,
    /// Seed applied at start and by reset.
    pub seed: Option<SeedFile>,
    /// Daily API allocation of orgs that do not set one.
    pub default_api_limit: u64,
    /// Also serve the Pub/Sub API (gRPC, plain HTTP/2) on its own port.
    pub pubsub: bool,
    /// Port of the Pub/Sub API (0: an ephemeral port), on `host`.
    pub pubsub_port: u16,
    /// Interval of the keepalive responses of idle subscriptions (Salesforce:
    /// within 270 s; tests use e.g. 200 ms).
    pub pubsub_keepalive: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            public_url: None,
            seed: None,
            default_api_limit: 15_000,
            pubsub: false,
            pubsub_port: 0,
            pubsub_keepalive: pubsub::DEFAULT_KEEPALIVE,
        }
    }
}

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port could not be bound.
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The seed was refused.
    #[error("seed refused: {0}")]
    Seed(#[from] ControlError),
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Emulator {
    base_url: String,
    addr: SocketAddr,
    shared: Arc<http::Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    pubsub_addr: Option<SocketAddr>,
    pubsub_stop: Option<oneshot::Sender<()>>,
    pubsub_task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds, applies the seed and serves in a tokio task.
    pub async fn start(options: Options) -> Result<Emulator, StartError> {
        let bind = SocketAddr::new(options.host, options.port);
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| StartError::Bind(bind, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError::Bind(bind, e))?;
        let base_url = options
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_string();
        let mut world = world::World::new(base_url.clone(), options.default_api_limit);
        if let Some(seed) = options.seed {
            world.apply_seed(&seed)?;
            world.initial_seed = Some(seed);
        }
        let keepalive_ms = u64::try_from(options.pubsub_keepalive.as_millis()).unwrap_or(u64::MAX);
        let shared = Arc::new(http::Shared::new(world, keepalive_ms));
        let (pubsub_addr, pubsub_stop, pubsub_task) = if options.pubsub {
            let bind = SocketAddr::new(options.host, options.pubsub_port);
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| StartError::Bind(bind, e))?;
            let addr = listener
                .local_addr()
                .map_err(|e| StartError::Bind(bind, e))?;
            let (tx, rx) = oneshot::channel::<()>();
            let task = tokio::spawn(pubsub::serve(listener, shared.clone(), rx));
            (Some(addr), Some(tx), Some(task))
        } else {
            (None, None, None)
        };
        let app = axum::Router::new()
            .fallback(http::handle)
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "emulator server stopped with an error");
            }
        });
        Ok(Emulator {
            base_url,
            addr,
            shared,
            stop: Some(tx),
            task: Some(task),
            pubsub_addr,
            pubsub_stop,
            pubsub_task,
        })
    }

    /// Address of the Pub/Sub API server (None unless `Options::pubsub`).
    pub fn pubsub_addr(&self) -> Option<SocketAddr> {
        self.pubsub_addr
    }

    /// `http://127.0.0.1:PORT` of the Pub/Sub API server (plain HTTP/2).
    pub fn pubsub_url(&self) -> Option<String> {
        self.pubsub_addr.map(|a| format!("http://{a}"))
    }

    /// Changes the keepalive interval of idle subscriptions (from their next tick).
    pub fn set_pubsub_keepalive(&self, every: std::time::Duration) {
        let ms = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .keepalive_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Selects (`true`) or deselects an object for Change Data Capture in an
    /// org (Account, Contact, Lead, Opportunity, OpportunityContactRole).
    /// Default: none, as in Salesforce where the admin selects entities.
    pub fn set_cdc(&self, org: &str, object: &str, enabled: bool) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.set_cdc(i, object, enabled)
        })
    }

    /// Objects selected for Change Data Capture.
    pub fn cdc_objects(&self, org: &str) -> Result<Vec<String>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            Ok(w.orgs[i]
                .cdc
                .enabled_names()
                .into_iter()
                .map(String::from)
                .collect())
        })
    }

    /// Event retention window of an org (default 72 hours, emulated clock).
    pub fn set_cdc_retention(
        &self,
        org: &str,
        window: std::time::Duration,
    ) -> Result<(), ControlError> {
        let ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.with(|w| {
            let i = self.org(w, org)?;
            w.set_cdc_retention(i, ms)
        })
    }

    /// Publishes gap events `GAP_CREATE|GAP_UPDATE|GAP_DELETE|GAP_UNDELETE`
    /// for records (15/18-character ids; one event per object).
    pub fn inject_gap(
        &self,
        org: &str,
        change_type: EventType,
        ids: &[&str],
    ) -> Result<(), ControlError> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        self.with(|w| {
            let i = self.org(w, org)?;
            w.inject_gap(i, change_type, &ids, None)
        })
    }

    /// Publishes a `GAP_OVERFLOW` event for an object.
    pub fn inject_gap_overflow(&self, org: &str, object: &str) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.inject_gap(i, EventType::GapOverflow, &[], Some(object))
        })
    }

    /// The latest replay id of an org's bus (8 bytes, big-endian), what a
    /// keepalive of a caught-up subscription to any of its topics carries.
    pub fn latest_replay_id(&self, org: &str) -> Result<Vec<u8>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            let now = w.now();
            let o = &mut w.orgs[i];
            o.cdc.prune(now);
            Ok(cdc::replay_bytes(o.cdc.tip()))
        })
    }

    /// Restores deleted records (one transaction, like Salesforce's undelete
    /// call: the REST API has none). Emits UNDELETE change events.
    pub fn undelete(&self, org: &str, ids: &[&str]) -> Result<(), ControlError> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        self.with(|w| {
            let i = self.org(w, org)?;
            w.undelete(i, &ids)
        })
    }

    /// The change events kept on an org's bus (headers), oldest first.
    pub fn cdc_events(&self, org: &str) -> Result<Vec<EventInfo>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.cdc_events(i)
        })
    }

    /// Base URL, also the instance URL of every org (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits (briefly) for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.pubsub_stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.pubsub_task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut world::World) -> T) -> T {
        let out = {
            let mut w = self.shared.lock();
            f(&mut w)
        };
        self.shared.changed();
        out
    }

    fn org(&self, w: &world::World, org: &str) -> Result<usize, ControlError> {
        w.org_index(org)
    }

    /// Creates an org.
    pub fn create_org(&self, spec: OrgSpec) -> Result<OrgInfo, ControlError> {
        self.with(|w| w.create_org(&spec))
    }

    /// Creates a connected app in an org (org id or key).
    pub fn create_app(&self, org: &str, spec: AppSpec) -> Result<ConnectedApp, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.create_app(i, &spec)
        })
    }

    /// Changes an app's callback URL, rotation and auto-approve flags.
    pub fn update_app(
        &self,
        consumer_key: &str,
        spec: AppSpec,
    ) -> Result<ConnectedApp, ControlError> {
        self.with(|w| w.update_app(consumer_key, &spec))
    }

    /// Creates a user.
    pub fn create_user(&self, org: &str, spec: UserSpec) -> Result<UserInfo, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.create_user(i, &spec)
        })
    }

    /// Grants or takes away a user's object permissions or *API Enabled*, or
    /// turns the org's Notes on or off ([`access::Access`]).
    pub fn set_access(&self, org: &str, change: &access::AccessChange) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.set_access(i, change)
        })
    }

    /// Activates or deactivates a user (id or username).
    pub fn set_user_active(&self, org: &str, user: &str, active: bool) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.set_user_active(i, user, active)
        })
    }

    /// Seeds records (`"@name"` references, `"$now-3d"` relative times); returns ids.
    pub fn seed(&self, org: &str, records: &[SeedRecord]) -> Result<Vec<String>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.seed_records(i, records)
        })
    }

    /// The id a seed reference resolved to.
    pub fn seed_ref(&self, org: &str, name: &str) -> Result<String, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.orgs[i]
                .seed_refs
                .get(name)
                .cloned()
                .ok_or_else(|| ControlError::UnknownRef(name.to_string()))
        })
    }

    /// Applies a whole seed file (creates orgs).
    pub fn load_seed(&self, seed: &SeedFile) -> Result<Vec<OrgInfo>, ControlError> {
        self.with(|w| w.apply_seed(seed))
    }

    /// Every record of a type, as JSON with all fields.
    pub fn records(
        &self,
        org: &str,
        object: &str,
        include_deleted: bool,
    ) -> Result<Vec<serde_json::Value>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.records(i, object, include_deleted)
        })
    }

    /// Merges `losers` (one or two) into `master`, as Salesforce does: related
    /// records move to the master, the losers are deleted with `MasterRecordId`.
    pub fn merge(&self, org: &str, master: &str, losers: &[String]) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.merge_records(i, master, losers)
        })
    }

    /// Converts a lead (with an opportunity when asked): the ids of the account,
    /// contact and opportunity created.
    pub fn convert_lead(
        &self,
        org: &str,
        lead: &str,
        opportunity: bool,
    ) -> Result<(String, String, Option<String>), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.convert_lead(i, lead, opportunity)
        })
    }

    /// Edits a record as a user saving it in Salesforce's UI would (its
    /// `LastModifiedDate` moves to now; no API call counted, no latency).
    pub fn edit_record(
        &self,
        org: &str,
        id: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.edit_record(i, id, fields)
        })
    }

    /// One record by id (deleted or not).
    pub fn record(&self, org: &str, id: &str) -> Result<serde_json::Value, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.record(i, id)
        })
    }

    /// Runs SOQL in-process (not counted): the matching records as JSON rows
    /// (subqueries included; the single `AggregateResult` row of an aggregate
    /// query; nothing for `COUNT()`).
    pub fn query(
        &self,
        org: &str,
        soql_text: &str,
        include_deleted: bool,
    ) -> Result<Vec<serde_json::Value>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            let parsed = soql::parse_checked(soql_text)
                .map_err(|e| ControlError::BadInput(format!("{}: {}", e.code, e.message)))?;
            let plan = soql::compile(soql_text, &parsed, w.now())
                .map_err(|e| ControlError::BadInput(format!("{}: {}", e.code, e.message)))?;
            let o = &w.orgs[i];
            let view = o.view();
            let ids = soql::execute(&plan, &view, include_deleted);
            Ok(match &plan.shape {
                soql::Shape::Records => {
                    let (_, rows) = soql::plan::page(
                        &plan,
                        &view,
                        API_VERSION,
                        &ids,
                        0,
                        usize::MAX,
                        include_deleted,
                    );
                    rows
                }
                soql::Shape::Count => Vec::new(),
                soql::Shape::Aggregate(_) => {
                    vec![soql::plan::aggregate_row(&plan, &view, &ids)]
                }
            })
        })
    }

    /// API usage and per-endpoint counts.
    pub fn counters(&self, org: &str) -> Result<Counters, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.counters(i)
        })
    }

    /// Zeroes usage and counts.
    pub fn reset_counters(&self, org: &str) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.reset_counters(i)
        })
    }

    /// Injects a fault.
    pub fn inject(&self, org: &str, fault: Fault) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.inject(i, &fault)
        })
    }

    /// The change log (what Change Data Capture will publish).
    pub fn changes(&self, org: &str) -> Result<Vec<ChangeEntry>, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.changes(i)
        })
    }

    /// Releases the spare capacity of an org's columns and change log: call it
    /// after a bulk load made of many [`Emulator::seed`] calls (seed files are
    /// shrunk once loaded).
    pub fn shrink_to_fit(&self, org: &str) -> Result<(), ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.shrink_to_fit(i)
        })
    }

    /// Heap bytes held by an org's records and change log (benchmarks).
    pub fn footprint(&self, org: &str) -> Result<Footprint, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.footprint(i)
        })
    }

    /// Tokens for a user without the browser flow (same shape as the token endpoint).
    pub fn mint_tokens(
        &self,
        org: &str,
        consumer_key: &str,
        username: &str,
    ) -> Result<serde_json::Value, ControlError> {
        self.with(|w| {
            let i = self.org(w, org)?;
            w.mint_tokens(i, consumer_key, username)
        })
    }

    /// Emulated time (ms since the epoch).
    pub fn now_ms(&self) -> i64 {
        self.with(|w| w.now())
    }

    /// Sets the emulated time.
    pub fn set_time_ms(&self, ms: i64) {
        self.with(|w| w.clock.set(ms));
    }

    /// Moves the emulated time.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.with(|w| w.clock.advance(ms));
    }

    /// Freezes (true) or releases (false) the clock.
    pub fn freeze_clock(&self, frozen: bool) {
        self.with(|w| {
            if frozen {
                w.clock.freeze();
            } else {
                w.clock.unfreeze();
            }
        });
    }

    /// Forgets everything and re-applies the start seed.
    pub fn reset(&self) -> Result<Vec<OrgInfo>, ControlError> {
        self.with(|w| w.reset())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.pubsub_stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.pubsub_task.take() {
            task.abort();
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
