//! The whole product on one machine: AWS (moto, or real AWS), Salesforce (the
//! emulator with the demo org, or a real org), the five functions as real Lambda
//! binaries, the HTTP API, the schedule and the queue pollers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sf_emulator::{AppSpec, Emulator, SeedFile};
use shared::aws::AwsClients;
use shared::config::vars;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::functions::{FUNCTIONS, FunctionProcess};
use crate::gateway::{self, CALLBACK_PATH, CONSOLE_PATH, GatewayServer};
use crate::jwt::Authorizer;
use crate::latency::LatencyProxy;
use crate::moto::MotoServer;
use crate::pollers;
use crate::provision::{MAX_RECEIVE_COUNT, QUEUES, Resources, provision};

/// Which Salesforce the stack talks to.
#[derive(Debug, Clone)]
pub enum SalesforceTarget {
    /// The emulator, seeded from this file (the demo org by default).
    Emulator { seed: PathBuf },
    /// A real org (a sandbox): nothing is started; the admin saves its settings
    /// and consents in a browser.
    Real,
}

/// Which AWS the stack uses.
#[derive(Debug, Clone)]
pub enum AwsTarget {
    /// moto on an ephemeral port, provisioned like the template.
    Moto,
    /// Real AWS (credentials from the usual chain), with the resources of a
    /// deployed stack named by the functions' environment variables.
    Real,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Port of the local HTTP API (0: any). The demo org's connected app has
    /// `http://127.0.0.1:8080/integrations/salesforce/callback`; with another port
    /// the emulator's app is updated to match.
    pub port: u16,
    pub schedule_every: Duration,
    pub bin_dir: PathBuf,
    pub log_dir: PathBuf,
    pub salesforce: SalesforceTarget,
    pub aws: AwsTarget,
    /// Processes per function, as Lambda runs concurrent instances (default: one).
    pub instances: BTreeMap<&'static str, usize>,
    /// Replaces every queue's visibility timeout (default: the template's), for
    /// tests that cannot wait 15 minutes for a crashed batch to come back.
    pub visibility_timeout: Option<Duration>,
    /// Latency added to each DynamoDB request the functions send to moto (a real
    /// table answers in milliseconds; moto in microseconds).
    pub dynamodb_latency: Duration,
}

impl Options {
    /// The stack as the template deploys it, with one process per function.
    pub fn new(
        port: u16,
        bin_dir: PathBuf,
        log_dir: PathBuf,
        salesforce: SalesforceTarget,
        aws: AwsTarget,
    ) -> Self {
        Self {
            port,
            schedule_every: Duration::from_secs(60),
            bin_dir,
            log_dir,
            salesforce,
            aws,
            instances: BTreeMap::new(),
            visibility_timeout: None,
            dynamodb_latency: Duration::ZERO,
        }
    }
}

/// The Lambda timeout of each queue's function (template.yaml).
fn function_timeout(function: &str) -> Duration {
    Duration::from_secs(match function {
        "scheduled-sync" => 900,
        "call-logger" => 120,
        "comment-sync" => 60,
        _ => 29,
    })
}

pub struct LocalStack {
    pub gateway: GatewayServer,
    pub authorizer: Arc<Authorizer>,
    pub emulator: Option<Emulator>,
    pub aws: AwsClients,
    pub resources: Resources,
    /// The first process of each function.
    pub functions: BTreeMap<&'static str, Arc<FunctionProcess>>,
    /// Every process of each function (see [`Options::instances`]).
    pub instances: BTreeMap<&'static str, Vec<Arc<FunctionProcess>>>,
    pub log_dir: PathBuf,
    /// The seeded connected apps: (org key, consumer key, consumer secret).
    pub seeded_apps: Vec<(String, String, String)>,
    /// In front of moto for the functions: DynamoDB latency, request counts.
    pub aws_proxy: Option<LatencyProxy>,
    moto: Option<MotoServer>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalStack {
    pub async fn start(options: Options) -> Result<Self, String> {
        let root = crate::repo_root();
        let (moto, aws_proxy, aws, resources) = match options.aws {
            AwsTarget::Moto => {
                let moto = MotoServer::start(&root)?;
                let aws = AwsClients::for_endpoint(moto.endpoint()).await;
                let prefix = format!("modjo-local-{:06x}", rand::random::<u32>() & 0xff_ffff);
                let resources =
                    provision(&aws, &prefix, MAX_RECEIVE_COUNT, options.visibility_timeout).await?;
                let proxy = LatencyProxy::start(moto.endpoint(), options.dynamodb_latency)
                    .await
                    .map_err(|e| format!("AWS proxy: {e}"))?;
                (Some(moto), Some(proxy), aws, resources)
            }
            AwsTarget::Real => (
                None,
                None,
                AwsClients::from_env().await,
                Resources::from_env()?,
            ),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
        let gateway_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base = format!("http://{gateway_addr}");

        let (emulator, seeded_apps) = match &options.salesforce {
            SalesforceTarget::Emulator { seed } => {
                let (emulator, apps) =
                    start_emulator(seed, &format!("{base}{CALLBACK_PATH}")).await?;
                (Some(emulator), apps)
            }
            SalesforceTarget::Real => (None, Vec::new()),
        };

        let mut env: Vec<(String, String)> = resources
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut set = |k: &str, v: String| env.push((k.to_string(), v));
        set(vars::STAGE, "local".into());
        set(vars::OAUTH_CALLBACK_URL, format!("{base}{CALLBACK_PATH}"));
        // Back to the settings page, which says how linking the account went.
        set(vars::MODJO_RETURN_URL, format!("{base}{CONSOLE_PATH}"));
        set(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
        match &aws_proxy {
            Some(proxy) => {
                set("AWS_ENDPOINT_URL", proxy.endpoint());
                set("AWS_REGION", "eu-west-1".into());
                set("AWS_ACCESS_KEY_ID", "testing".into());
                set("AWS_SECRET_ACCESS_KEY", "testing".into());
            }
            None => {
                for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
                {
                    set(&k, v);
                }
            }
        }
        if let Some(emu) = &emulator {
            // The one escape hatch: this emulator's exact origins, never set in production.
            let pubsub = emu.pubsub_url().unwrap_or_default();
            set(
                vars::SALESFORCE_EXTRA_ALLOWED_ORIGINS,
                format!("{},{pubsub}", emu.base_url()),
            );
            set(vars::SALESFORCE_PUBSUB_ENDPOINT, pubsub);
        }

        let mut functions = BTreeMap::new();
        let mut instances: BTreeMap<&'static str, Vec<Arc<FunctionProcess>>> = BTreeMap::new();
        for name in FUNCTIONS {
            let binary = options.bin_dir.join(name);
            if !binary.exists() {
                return Err(format!(
                    "{} is missing: build the functions first (infra/scripts/local.sh does)",
                    binary.display()
                ));
            }
            let count = options.instances.get(name).copied().unwrap_or(1).max(1);
            for n in 0..count {
                let label = if n == 0 {
                    name.to_string()
                } else {
                    format!("{name}-{n}")
                };
                let process = Arc::new(
                    FunctionProcess::spawn(&label, &binary, &env, &options.log_dir).await?,
                );
                functions.entry(name).or_insert_with(|| process.clone());
                instances.entry(name).or_default().push(process);
            }
        }
        let authorizer = Arc::new(Authorizer::new());
        let gateway = gateway::serve(
            listener,
            functions["integration-api"].clone(),
            functions["oauth-callback"].clone(),
            authorizer.clone(),
        )
        .map_err(|e| e.to_string())?;

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        // One poller per process, as the event source mapping invokes concurrent
        // instances, each with the template's batch size and window.
        for spec in QUEUES {
            let queue = match spec.name {
                "call-events" => &resources.call_events_queue,
                "comment-events" => &resources.comment_events_queue,
                _ => &resources.sync_jobs_queue,
            };
            for process in &instances[spec.function] {
                tasks.push(pollers::poll(
                    aws.sqs.clone(),
                    queue.clone(),
                    process.clone(),
                    spec,
                    function_timeout(spec.function),
                    stopped.clone(),
                ));
            }
        }
        tasks.push(pollers::schedule(
            functions["scheduled-sync"].clone(),
            options.schedule_every,
            stopped,
        ));
        Ok(Self {
            gateway,
            authorizer,
            emulator,
            aws,
            resources,
            functions,
            instances,
            log_dir: options.log_dir,
            seeded_apps,
            aws_proxy,
            moto,
            stop,
            tasks,
        })
    }

    /// The local HTTP API, e.g. `http://127.0.0.1:8080`.
    pub fn api_url(&self) -> String {
        self.gateway.base_url()
    }

    pub fn moto_endpoint(&self) -> Option<&str> {
        self.moto.as_ref().map(MotoServer::endpoint)
    }

    /// The settings page, signed in as `user` of `tenant`: the token travels in
    /// the URL fragment, which the browser never sends to a server (nor in a
    /// Referer), and the page moves it to its tab's session storage at once.
    pub fn console_url(&self, tenant: &str, user: &str, role: &str) -> String {
        format!(
            "{}{CONSOLE_PATH}#token={}",
            self.api_url(),
            self.token(tenant, user, role)
        )
    }

    /// Sends every body to `queue` (as Modjo's producers do), 10 per request.
    pub async fn send_messages(&self, queue: &str, bodies: &[String]) -> Result<(), String> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for (n, chunk) in bodies.chunks(10).enumerate() {
            let entries: Vec<SendMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("{n}-{i}"))
                        .message_body(b)
                        .build()
                        .ok()
                })
                .collect();
            self.aws
                .sqs
                .send_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| format!("send: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        }
        Ok(())
    }

    /// Messages on `queue`, visible or in flight; `None` when SQS cannot say.
    pub async fn queue_depth(&self, queue: &str) -> Option<u64> {
        use aws_sdk_sqs::types::QueueAttributeName::{
            ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
        };
        let attrs = self
            .aws
            .sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .ok()?
            .attributes?;
        let n = |k| attrs.get(&k).and_then(|v| v.parse::<u64>().ok());
        Some(n(ApproximateNumberOfMessages)? + n(ApproximateNumberOfMessagesNotVisible)?)
    }

    /// A JWT as Modjo's identity provider would issue it.
    pub fn token(&self, tenant: &str, user: &str, role: &str) -> String {
        self.authorizer.token(tenant, user, role, 12)
    }

    /// Stops the pollers and the schedule, then every process.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        if let Some(emu) = self.emulator {
            emu.shutdown().await;
        }
        drop(self.functions);
        drop(self.instances);
        drop(self.aws_proxy);
        drop(self.moto);
    }
}

async fn start_emulator(
    seed: &std::path::Path,
    callback: &str,
) -> Result<(Emulator, Vec<(String, String, String)>), String> {
    let text = std::fs::read_to_string(seed).map_err(|e| format!("{}: {e}", seed.display()))?;
    let seed_file: SeedFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", seed.display()))?;
    let emulator = Emulator::start(sf_emulator::Options {
        seed: Some(seed_file.clone()),
        // Change Data Capture over its Pub/Sub API; idle subscriptions hear a
        // keepalive every second rather than Salesforce's 270.
        pubsub: true,
        pubsub_keepalive: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("emulator: {e}"))?;
    // Point every seeded app's callback at this stack's HTTP API.
    let mut apps = Vec::new();
    for org in &seed_file.orgs {
        for app in &org.apps {
            if let Some(key) = &app.consumer_key {
                let spec = AppSpec {
                    callback_url: callback.to_string(),
                    ..app.clone()
                };
                emulator
                    .update_app(key, spec)
                    .map_err(|e| format!("emulator app: {e}"))?;
                let org_key = org.spec.key.clone().unwrap_or_default();
                apps.push((
                    org_key,
                    key.clone(),
                    app.consumer_secret.clone().unwrap_or_default(),
                ));
            }
        }
    }
    Ok((emulator, apps))
}
