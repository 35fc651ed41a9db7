//! What a function runs on: configuration plus the adapters behind the ports.
//! `main.rs` builds one at cold start; tests build one on moto and the emulator.

use std::sync::Arc;

use crate::adapters::dynamo::DynamoStore;
use crate::adapters::salesforce::{SalesforceClient, Sessions};
use crate::adapters::secrets::SecretsManagerStore;
use crate::adapters::sqs::SqsQueue;
use crate::aws::AwsClients;
use crate::calls::{CallLogger, CallLoggerStore};
use crate::comments::{CommentSync, CommentSyncStore};
use crate::config::{self, Config, ConfigError, OAuthConfig};
use crate::connect::state::SigningKeyCache;
use crate::connect::{Connect, ConnectStore};
use crate::domain::SigningKeys;
use crate::ports::{
    AccessRefusals, CallStore, CommentStore, ConnectionStore, CursorStore, ErasureStore, JobQueue,
    LeaseStore, OAuthStateStore, RecordStore, SecretStore, StoreError, StoreRequests,
    UserMappingStore,
};
use crate::salesforce::SalesforceError;
use crate::sync::{SyncStore, Syncer};
use crate::telemetry::Metrics;

/// Every storage port at once (the DynamoDB adapter implements them all): for
/// the integration API's router, which serves every use case, and for tests.
/// A use case asks only for its own ports (e.g. [`CallLoggerStore`]).
pub trait Store:
    ConnectionStore
    + UserMappingStore
    + CursorStore
    + LeaseStore
    + RecordStore
    + CallStore
    + CommentStore
    + OAuthStateStore
    + ErasureStore
    + StoreRequests
    + Clone
    + 'static
{
}

impl<T> Store for T where
    T: ConnectionStore
        + UserMappingStore
        + CursorStore
        + LeaseStore
        + RecordStore
        + CallStore
        + CommentStore
        + OAuthStateStore
        + ErasureStore
        + StoreRequests
        + Clone
        + 'static
{
}

/// A function's dependencies (queues are wired separately, by the functions that
/// send to them).
pub struct App<S, K> {
    pub config: Config,
    pub store: S,
    pub secrets: K,
    pub salesforce: SalesforceClient,
    /// Present in the functions that run the OAuth flow.
    pub oauth: Option<OAuthConfig>,
    /// The state-signing keys, as last read.
    keys: SigningKeyCache,
}

/// The production wiring.
pub type AwsApp = App<DynamoStore, SecretsManagerStore>;

/// Each builder asks of the store the ports of the use case it builds, and the
/// leases its Salesforce sessions need (token refreshes are single-flight).
impl<S, K: SecretStore> App<S, K> {
    /// Embedded-format metrics of `function`, in this stage's namespace.
    pub fn metrics(&self, function: &str) -> Metrics {
        Metrics::new(self.config.metrics_namespace.clone())
            .dimension("Function", function)
            .dimension("Stage", self.config.stage.clone())
    }

    pub fn new(
        config: Config,
        store: S,
        secrets: K,
        oauth: Option<OAuthConfig>,
    ) -> Result<Self, SalesforceError> {
        let salesforce = SalesforceClient::new(&config.salesforce)?;
        let keys = SigningKeyCache::new(oauth.as_ref().map(|o| o.state_signing_secret_id.clone()));
        Ok(Self {
            config,
            store,
            secrets,
            salesforce,
            oauth,
            keys,
        })
    }

    /// The Salesforce port, for the use cases.
    pub fn sessions(&self) -> Sessions<'_, K, S>
    where
        S: LeaseStore + AccessRefusals,
    {
        Sessions::new(&self.salesforce, &self.secrets, &self.store)
    }

    /// The call logging use case on this wiring.
    pub fn call_logger<'a, Q: JobQueue>(
        &'a self,
        calls: &'a Q,
        dead_letters: &'a Q,
    ) -> CallLogger<'a, S, Sessions<'a, K, S>, Q>
    where
        S: CallLoggerStore + LeaseStore,
    {
        CallLogger::new(
            &self.store,
            self.sessions(),
            &self.config.budget,
            calls,
            dead_letters,
        )
    }

    /// The comment propagation use case on this wiring.
    pub fn comment_sync<'a, Q: JobQueue>(
        &'a self,
        dead_letters: &'a Q,
    ) -> CommentSync<'a, S, Sessions<'a, K, S>, Q>
    where
        S: CommentSyncStore + LeaseStore,
    {
        CommentSync::new(&self.store, self.sessions(), dead_letters)
    }

    /// The sync use case on this wiring (Change Data Capture when the Pub/Sub
    /// API is configured).
    pub fn syncer<'a, Q: JobQueue>(&'a self, jobs: &'a Q) -> Syncer<'a, S, Sessions<'a, K, S>, Q>
    where
        S: SyncStore,
    {
        Syncer::new(
            &self.store,
            self.sessions(),
            &self.config.budget,
            self.config.salesforce.pubsub_endpoint.clone(),
            jobs,
        )
    }

    /// The OAuth state-signing keys (see [`SigningKeyCache::current`]).
    pub async fn signing_keys(&self) -> Result<Arc<SigningKeys>, StoreError> {
        self.keys.current(&self.secrets).await
    }

    /// The connect use case on this wiring.
    pub fn connect(&self) -> Connect<'_, S, K, Sessions<'_, K, S>>
    where
        S: ConnectStore + LeaseStore,
    {
        Connect::new(
            &self.store,
            &self.secrets,
            self.sessions(),
            self.oauth.as_ref(),
            &self.keys,
        )
    }
}

/// The production wiring from the environment: the shared settings, the OAuth
/// settings when `with_oauth`, and AWS clients honouring `AWS_ENDPOINT_URL`.
pub async fn from_env(
    with_oauth: bool,
) -> Result<(AwsApp, AwsClients), Box<dyn std::error::Error + Send + Sync>> {
    let config = Config::from_env().inspect_err(init_failed)?;
    let oauth = if with_oauth {
        Some(OAuthConfig::from_env().inspect_err(init_failed)?)
    } else {
        None
    };
    let aws = AwsClients::from_env().await;
    let store = DynamoStore::new(aws.dynamodb.clone(), &config.table_name);
    let secrets = SecretsManagerStore::new(aws.secrets.clone(), &config.secret_prefix);
    Ok((App::new(config, store, secrets, oauth)?, aws))
}

/// A queue named by a required environment variable.
pub fn queue_from_env(aws: &AwsClients, name: &'static str) -> Result<SqsQueue, ConfigError> {
    let url = config::queue_url_from_env(name).inspect_err(init_failed)?;
    Ok(SqsQueue::new(aws.sqs.clone(), url))
}

/// Says, in the function's log, why it cannot start (the runtime prints only a
/// debug form of the error).
fn init_failed(e: &ConfigError) {
    tracing::error!(error = %e, "configuration error: the function cannot start");
}
