//! Change Data Capture as the sync's source for Opportunity and
//! OpportunityContactRole: change events through the Pub/Sub API cost no REST
//! API call and carry deletes and field-level changes.
//!
//! Per tenant and topic: subscribe from the stored replay id (CUSTOM), drain
//! until caught up or out of time, apply each batch to the stored records and
//! indexes, and store the replay id only once the batch it covers is applied.
//! Without a replay id (first connection) or when it has expired (72 h):
//! subscribe at LATEST, re-sync the object with SOQL, then drain what arrived
//! during the re-sync, so no change made meanwhile is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use pubsub_proto::{FetchResponse, ProducerEvent, ReplayPreset};
use secrecy::SecretString;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::objects::{self, SyncObject};
use super::{ObjectRun, Stop};

use crate::domain::hosts::PubSubEndpoint;
use crate::domain::{CrmRecord, IndexEntry, IndexKey};
use crate::ports::{
    CursorStore, ErasureStore, PubSubApi, PubSubEvents, RecordChange, RecordStore, SalesforceApi,
    StoreError,
};
use crate::salesforce::SalesforceError;
use crate::salesforce::cdc::{ChangeEvent, ChangeType, EventSchema};
use crate::salesforce::id::{id18, is_record_id};
use crate::salesforce::pubsub::{PubSubAuth, PubSubError, fetch, more};
use crate::salesforce::soql::{Cond, Select};
use crate::work::WorkError;

mod apply;

/// Events requested at a time (the Pub/Sub API's maximum).
const BATCH: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum CdcFailure {
    /// The topic does not exist: CDC is not enabled for the object in this org.
    #[error("Change Data Capture is not enabled for {0}")]
    NotEnabled(String),
    /// The Pub/Sub API cannot be used right now.
    #[error("Change Data Capture is unavailable for {object}: {reason}")]
    Unavailable { object: String, reason: String },
    #[error(transparent)]
    Sync(#[from] WorkError),
}

impl From<SalesforceError> for CdcFailure {
    fn from(e: SalesforceError) -> Self {
        CdcFailure::Sync(e.into())
    }
}

impl From<StoreError> for CdcFailure {
    fn from(e: StoreError) -> Self {
        CdcFailure::Sync(e.into())
    }
}

/// What a CDC run did: `totals` counts records as the SOQL path does.
#[derive(Debug, Default)]
pub(crate) struct CdcRun {
    pub events: u64,
    /// Records read again through REST (undeletes, gaps).
    pub reread: u64,
    /// A re-sync through the SOQL cursor ran (first subscription, an expired
    /// replay id, or a GAP_OVERFLOW).
    pub resynced: bool,
    pub totals: ObjectRun,
}

/// The subscriber: one per function container (it caches schemas by id).
pub struct CdcFeed {
    endpoint: PubSubEndpoint,
    /// No event for this long means caught up. Salesforce sends a keepalive only
    /// after up to 270 s of silence, too long to wait for on every job (a fresh
    /// subscription waits for it once, to learn its position).
    pub idle: Duration,
    /// Schemas by id; an error for a schema we could not parse (so it is fetched
    /// once, not for every event that uses it).
    schemas: Mutex<HashMap<String, Result<Arc<EventSchema>, String>>>,
}

/// The SOQL re-sync of one object, which the feed falls back on.
pub(crate) trait Resync {
    fn resync(
        &self,
        object: &SyncObject,
    ) -> impl std::future::Future<Output = Result<ObjectRun, WorkError>> + Send;
}

pub fn topic_of(object: &SyncObject) -> String {
    format!("/data/{}ChangeEvent", object.name)
}

/// Why a subscription could not go on.
enum Interrupted {
    /// The stored replay id is past the retention window.
    ReplayExpired(String),
    Failed(CdcFailure),
}

impl Interrupted {
    fn into_failure(self, object: &SyncObject) -> CdcFailure {
        match self {
            Interrupted::Failed(e) => e,
            Interrupted::ReplayExpired(reason) => CdcFailure::Unavailable {
                object: object.name.to_string(),
                reason,
            },
        }
    }
}

impl<E: Into<CdcFailure>> From<E> for Interrupted {
    fn from(e: E) -> Self {
        Interrupted::Failed(e.into())
    }
}

impl CdcFeed {
    pub fn new(endpoint: PubSubEndpoint) -> Self {
        Self {
            endpoint,
            idle: Duration::from_secs(3),
            schemas: Mutex::new(HashMap::new()),
        }
    }

    /// Brings `object` up to date from its change events.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sync<
        S: CursorStore + ErasureStore + RecordStore,
        C: SalesforceApi,
        R: Resync,
    >(
        &self,
        store: &S,
        session: &C,
        org_id: &str,
        object: &SyncObject,
        phone_region: &str,
        stop_at: Instant,
        resync: &R,
    ) -> Result<CdcRun, CdcFailure> {
        let topic = topic_of(object);
        let mut feed = Drain {
            feed: self,
            store,
            session,
            org_id,
            object,
            topic: &topic,
            phone_region,
            stop_at,
            resync,
            token: None,
            renewed: false,
        };
        let mut client = feed.connect().await?;
        let mut run = CdcRun::default();
        if let Some(from) = store.get_replay_id(session.tenant(), &topic).await? {
            match feed.resume(&mut client, from, &mut run).await {
                Ok(()) => return Ok(run),
                Err(Interrupted::Failed(e)) => return Err(e),
                Err(Interrupted::ReplayExpired(reason)) => {
                    tracing::warn!(tenant_id = %session.tenant(), topic, reason, "replay id expired: re-syncing with SOQL before resubscribing");
                }
            }
        }
        // First subscription, or an expired replay id: subscribe at LATEST, re-sync
        // with SOQL, then drain what arrived meanwhile, so no change made during the
        // re-sync is lost. The server fixes the LATEST position as it reads the
        // request, and its first answer (events or a keepalive) proves it has. That
        // answer may take Salesforce up to 270 s on a quiet org: the re-sync waits
        // for it at most PROOF_WAIT after the request went out, the subscription
        // until `stop_at`.
        let sent = SentAt::new();
        let (resynced, opened) = {
            let mut opening = std::pin::pin!(feed.open_fresh(&mut client, &sent));
            let early = loop {
                let due = sent
                    .proof_due()
                    .max(Instant::now() + Duration::from_millis(50));
                match tokio::time::timeout_at(due, &mut opening).await {
                    Ok(opened) => break Some(opened),
                    // A token renewal, or a request sent again since: keep waiting.
                    Err(_) if sent.proof_pending() => continue,
                    Err(_) => break None,
                }
            };
            match early {
                Some(Err(e)) => return Err(e.into_failure(object)),
                Some(opened) => (resync.resync(object).await, Some(opened)),
                None => {
                    let mut resyncing = std::pin::pin!(resync.resync(object));
                    let mut opened = None;
                    let resynced = loop {
                        tokio::select! {
                            resynced = &mut resyncing => break resynced,
                            answer = &mut opening, if opened.is_none() => opened = Some(answer),
                        }
                    };
                    let done = resynced.as_ref().is_ok_and(|r| r.stop.is_none());
                    if done && opened.is_none() {
                        opened = tokio::time::timeout_at(stop_at, &mut opening).await.ok();
                    }
                    (resynced, opened)
                }
            }
        };
        let resynced = resynced?;
        run.resynced = true;
        run.totals.add(&resynced);
        if resynced.stop.is_some() {
            // Nothing stored: the next job subscribes again and the cursor resumes.
            return Ok(run);
        }
        let Some((subscription, first)) = opened.transpose().map_err(|e| e.into_failure(object))?
        else {
            // No answer before the deadline: the next job subscribes afresh.
            run.totals.stop = Some(Stop::Deadline);
            return Ok(run);
        };
        feed.drain(&mut client, subscription, None, first, &mut run)
            .await
            .map_err(|e| e.into_failure(object))?;
        Ok(run)
    }

    /// The decoded event; `Ok(Err(reason))` when this event cannot be read (its
    /// schema or its payload is not what we understand).
    async fn decode<P: PubSubApi>(
        &self,
        client: &mut P,
        object: &SyncObject,
        event: &ProducerEvent,
    ) -> Result<Result<ChangeEvent, String>, CdcFailure> {
        let cached = self
            .schemas
            .lock()
            .ok()
            .and_then(|m| m.get(&event.schema_id).cloned());
        let schema = match cached {
            Some(schema) => schema,
            None => {
                let info = client.get_schema(&event.schema_id).await.map_err(|e| {
                    CdcFailure::Unavailable {
                        object: object.name.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                let schema = EventSchema::parse(&info.schema_json)
                    .map(Arc::new)
                    .map_err(|e| format!("schema {}: {e}", event.schema_id));
                if let Ok(mut m) = self.schemas.lock() {
                    m.insert(event.schema_id.clone(), schema.clone());
                }
                schema
            }
        };
        Ok(schema.and_then(|s| s.decode(&event.payload).map_err(|e| e.to_string())))
    }
}

/// How long after a fresh subscription's request went out its re-sync waits for
/// the server's first answer before starting anyway. The server fixes the
/// position as it reads the request, which takes a round trip, not seconds; a
/// change it misses in between would still be read by the re-sync unless it
/// came after the re-sync's query of that record.
const PROOF_WAIT: Duration = Duration::from_secs(2);

/// When the latest subscribe request went out: a refused one is sent again
/// after a token renewal, and until then none is out.
struct SentAt {
    base: Instant,
    after_ms: AtomicU64,
    renewing: AtomicBool,
}

impl SentAt {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            after_ms: AtomicU64::new(0),
            renewing: AtomicBool::new(false),
        }
    }

    /// A request goes out now.
    fn mark(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.after_ms.store(ms, Ordering::Relaxed);
        self.renewing.store(false, Ordering::Relaxed);
    }

    /// The request was refused; another goes out after a renewal.
    fn refused(&self) {
        self.renewing.store(true, Ordering::Relaxed);
    }

    /// Whether the server's first answer is still worth waiting for before the
    /// re-sync starts.
    fn proof_pending(&self) -> bool {
        self.renewing.load(Ordering::Relaxed) || Instant::now() < self.proof_due()
    }

    fn proof_due(&self) -> Instant {
        self.base + Duration::from_millis(self.after_ms.load(Ordering::Relaxed)) + PROOF_WAIT
    }
}

fn unavailable(object: &SyncObject, e: PubSubError) -> CdcFailure {
    match e {
        PubSubError::TopicNotFound(_) => CdcFailure::NotEnabled(object.name.to_string()),
        other => CdcFailure::Unavailable {
            object: object.name.to_string(),
            reason: other.to_string(),
        },
    }
}

/// A subscription through the session's Pub/Sub client.
type Subscription<C> = <<C as SalesforceApi>::PubSub as PubSubApi>::Subscription;

/// One object's subscription within a job.
struct Drain<'a, S, C, R> {
    feed: &'a CdcFeed,
    store: &'a S,
    session: &'a C,
    org_id: &'a str,
    object: &'a SyncObject,
    topic: &'a str,
    phone_region: &'a str,
    stop_at: Instant,
    resync: &'a R,
    /// The access token the current client presents.
    token: Option<SecretString>,
    /// The access token is renewed at most once per job.
    renewed: bool,
}

impl<S: CursorStore + ErasureStore + RecordStore, C: SalesforceApi, R: Resync> Drain<'_, S, C, R> {
    /// A client that has seen the topic (so CDC is enabled for the object).
    async fn connect(&mut self) -> Result<C::PubSub, CdcFailure> {
        loop {
            let mut client = self.client().await?;
            match client.get_topic(self.topic).await {
                Ok(_) => return Ok(client),
                Err(PubSubError::Unauthenticated(_)) if !self.renewed => self.renew().await?,
                Err(e) => return Err(unavailable(self.object, e)),
            }
        }
    }

    async fn client(&mut self) -> Result<C::PubSub, CdcFailure> {
        let (access_token, instance) = self.session.bearer().await?;
        self.token = Some(access_token.clone());
        let auth = PubSubAuth {
            access_token,
            instance_url: instance.as_str().to_string(),
            tenant_id: self.org_id.to_string(),
        };
        self.session
            .pubsub(&self.feed.endpoint, auth)
            .await
            .map_err(|e| unavailable(self.object, e))
    }

    /// The Pub/Sub API refused the client's access token: get a new one
    /// (refreshing it, unless another request already has).
    async fn renew(&mut self) -> Result<(), CdcFailure> {
        self.renewed = true;
        let refused = match self.token.take() {
            Some(token) => token,
            None => self.session.bearer().await?.0,
        };
        self.session.renew(&refused).await?;
        Ok(())
    }

    /// What a gRPC failure means here; `Ok` when a renewed token may fix it.
    async fn on_error(&mut self, e: PubSubError) -> Result<(), Interrupted> {
        match e {
            PubSubError::Unauthenticated(_) if !self.renewed => Ok(self.renew().await?),
            PubSubError::ReplayIdInvalid(reason) => Err(Interrupted::ReplayExpired(reason)),
            e => Err(unavailable(self.object, e).into()),
        }
    }

    /// Opens a subscription, renewing the token once if it is refused. A server
    /// may hold back its response headers until its first answer, so each
    /// attempt waits up to `wait` (`None`: as long as it takes); `Ok(None)` when
    /// the server said nothing for that long. Only the attempt is timed, never a
    /// token renewal, which must not be cut short.
    async fn open(
        &mut self,
        client: &mut C::PubSub,
        preset: ReplayPreset,
        from: Vec<u8>,
        wait: Option<Duration>,
        sent: &SentAt,
    ) -> Result<Option<Subscription<C>>, Interrupted> {
        loop {
            sent.mark();
            let attempt = client.subscribe(fetch(self.topic, preset, from.clone(), BATCH));
            let outcome = match wait {
                Some(wait) => match tokio::time::timeout(wait, attempt).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        tracing::info!(tenant_id = %self.session.tenant(), topic = self.topic, "no answer to the subscription: nothing new");
                        return Ok(None);
                    }
                },
                None => attempt.await,
            };
            match outcome {
                Ok(subscription) => return Ok(Some(subscription)),
                Err(e) => {
                    sent.refused();
                    self.on_error(e).await?;
                    *client = self.client().await?;
                }
            }
        }
    }

    /// Opens a subscription after the stored replay id. `None` when the server
    /// has said nothing for `idle`: nothing new (caught up).
    async fn open_after(
        &mut self,
        client: &mut C::PubSub,
        from: Vec<u8>,
    ) -> Result<Option<Subscription<C>>, Interrupted> {
        let idle = self.feed.idle;
        self.open(
            client,
            ReplayPreset::Custom,
            from,
            Some(idle),
            &SentAt::new(),
        )
        .await
    }

    /// Subscribes at LATEST and reads the server's first answer, which proves
    /// the position is fixed (`None`: the stream ended without one).
    async fn open_fresh(
        &mut self,
        client: &mut C::PubSub,
        sent: &SentAt,
    ) -> Result<(Subscription<C>, Option<FetchResponse>), Interrupted> {
        let opened = self
            .open(client, ReplayPreset::Latest, Vec::new(), None, sent)
            .await?;
        // An untimed attempt always answers; this is only a guard.
        let mut subscription = opened.ok_or_else(|| {
            unavailable(
                self.object,
                PubSubError::Unavailable("no subscription".into()),
            )
        })?;
        let first = subscription
            .message()
            .await
            .map_err(|e| unavailable(self.object, e))?;
        Ok((subscription, first))
    }

    /// Subscribes after the stored replay id and drains.
    async fn resume(
        &mut self,
        client: &mut C::PubSub,
        from: Vec<u8>,
        run: &mut CdcRun,
    ) -> Result<(), Interrupted> {
        match self.open_after(client, from.clone()).await? {
            Some(subscription) => {
                self.drain(client, subscription, Some(from), None, run)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Applies batches until caught up or out of time. `position` is the last
    /// stored replay id (`None` on a fresh LATEST subscription); `held`, a
    /// response already read from the stream.
    async fn drain(
        &mut self,
        client: &mut C::PubSub,
        mut subscription: Subscription<C>,
        mut position: Option<Vec<u8>>,
        mut held: Option<FetchResponse>,
        run: &mut CdcRun,
    ) -> Result<(), Interrupted> {
        let tenant = self.session.tenant().clone();
        loop {
            if Instant::now() >= self.stop_at {
                run.totals.stop = Some(Stop::Deadline);
                return Ok(());
            }
            let was_held = held.is_some();
            let next = match held.take() {
                Some(response) => Ok(Ok(Some(response))),
                None => tokio::time::timeout(self.feed.idle, subscription.message()).await,
            };
            let response = match next {
                // Nothing for a while: caught up.
                Err(_) | Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(response))) => response,
                Ok(Err(e)) => {
                    // The token expired mid-subscription: renew it and resume after
                    // what is stored. With nothing stored yet, the next job
                    // subscribes afresh (and its re-sync covers what was missed).
                    self.on_error(e).await?;
                    let Some(from) = position.clone() else {
                        return Ok(());
                    };
                    *client = self.client().await?;
                    match self.open_after(client, from).await? {
                        Some(reopened) => subscription = reopened,
                        None => return Ok(()),
                    }
                    continue;
                }
            };
            let FetchResponse {
                events,
                latest_replay_id,
                pending_num_requested,
                ..
            } = response;
            if events.is_empty() {
                // A keepalive: nothing new up to latest_replay_id.
                if !latest_replay_id.is_empty() && position.as_ref() != Some(&latest_replay_id) {
                    self.store
                        .put_replay_id(&tenant, self.topic, &latest_replay_id)
                        .await?;
                    position = Some(latest_replay_id);
                }
                if was_held {
                    // Read before the re-sync: what came after is still to read.
                    continue;
                }
                return Ok(());
            }
            let mut decoded = Vec::with_capacity(events.len());
            let mut undecodable = false;
            let mut last = Vec::new();
            for e in events {
                last = e.replay_id;
                let Some(event) = e.event else { continue };
                match self.feed.decode(client, self.object, &event).await? {
                    Ok(change) => decoded.push(change),
                    Err(reason) => {
                        // What it changed is unknown: the object is read again instead.
                        tracing::error!(tenant_id = %tenant, topic = self.topic, reason, "undecodable change event: re-syncing the object");
                        undecodable = true;
                    }
                }
            }
            run.events += decoded.len() as u64;
            if !self.apply(&decoded, undecodable, run).await? {
                // A re-sync ran out of time: leave the replay id before this
                // batch, so the next job re-syncs again.
                return Ok(());
            }
            // Only now, with the batch applied, does the replay id move.
            self.store.put_replay_id(&tenant, self.topic, &last).await?;
            position = Some(last);
            if pending_num_requested <= 0 {
                // A closed request channel means the stream is over; the next
                // read says so.
                subscription.request(more(self.topic, BATCH));
            }
        }
    }
}
