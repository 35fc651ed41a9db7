//! Creates, on moto (or any AWS endpoint), the resources `template.yaml` declares:
//! the table, the OAuth state-signing key, and the three queues with their DLQs.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use shared::adapters::dynamo::create_table;
use shared::aws::AwsClients;
use shared::config::vars;

/// A work queue and the event source mapping that feeds its function, as
/// `template.yaml` declares them (infra/scripts/check_template.py holds the two
/// to each other).
#[derive(Debug, Clone, Copy)]
pub struct QueueSpec {
    pub name: &'static str,
    pub visibility_timeout_seconds: u32,
    pub function: &'static str,
    pub batch_size: usize,
    pub batching_window_seconds: u64,
}

pub const QUEUES: [QueueSpec; 3] = [
    QueueSpec {
        name: "call-events",
        visibility_timeout_seconds: 900,
        function: "call-logger",
        batch_size: 100,
        batching_window_seconds: 10,
    },
    QueueSpec {
        name: "comment-events",
        visibility_timeout_seconds: 420,
        function: "comment-sync",
        batch_size: 50,
        batching_window_seconds: 5,
    },
    QueueSpec {
        name: "sync-jobs",
        visibility_timeout_seconds: 5400,
        function: "scheduled-sync",
        batch_size: 1,
        batching_window_seconds: 0,
    },
];
/// Receives before a message moves to its dead-letter queue (every queue).
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Dead-letter queues take SQS's largest message (1 MiB): a message as large as
/// its queue allows still fits with the reason attribute added to it.
pub const DLQ_MAX_MESSAGE_BYTES: u32 = 1_048_576;

/// Names of one provisioned environment.
#[derive(Debug, Clone)]
pub struct Resources {
    pub table: String,
    pub secret_prefix: String,
    pub signing_key_id: String,
    pub call_events_queue: String,
    pub comment_events_queue: String,
    pub sync_jobs_queue: String,
    /// Queue URL → its dead-letter queue URL.
    pub dead_letter_queues: HashMap<String, String>,
}

impl Resources {
    /// The environment variables the functions read, pointing at these resources.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (vars::TABLE_NAME, self.table.clone()),
            (vars::SECRET_PREFIX, self.secret_prefix.clone()),
            (vars::STATE_SIGNING_SECRET_ID, self.signing_key_id.clone()),
            (vars::CALL_EVENTS_QUEUE_URL, self.call_events_queue.clone()),
            (
                vars::COMMENT_EVENTS_QUEUE_URL,
                self.comment_events_queue.clone(),
            ),
            (vars::SYNC_JOBS_QUEUE_URL, self.sync_jobs_queue.clone()),
            (
                vars::CALL_EVENTS_DLQ_URL,
                self.dead_letter_queues
                    .get(&self.call_events_queue)
                    .cloned()
                    .unwrap_or_default(),
            ),
            (
                vars::COMMENT_EVENTS_DLQ_URL,
                self.dead_letter_queues
                    .get(&self.comment_events_queue)
                    .cloned()
                    .unwrap_or_default(),
            ),
            (
                vars::SYNC_JOBS_DLQ_URL,
                self.dead_letter_queues
                    .get(&self.sync_jobs_queue)
                    .cloned()
                    .unwrap_or_default(),
            ),
        ]
    }
}

impl Resources {
    /// The resources of a deployed stack, named by the functions' variables.
    pub fn from_env() -> Result<Self, String> {
        let get = |name: &str| {
            std::env::var(name).map_err(|_| format!("{name} must name the deployed resource"))
        };
        let call_events_queue = get(vars::CALL_EVENTS_QUEUE_URL)?;
        let comment_events_queue = get(vars::COMMENT_EVENTS_QUEUE_URL)?;
        let sync_jobs_queue = get(vars::SYNC_JOBS_QUEUE_URL)?;
        let dead_letter_queues = HashMap::from([
            (call_events_queue.clone(), get(vars::CALL_EVENTS_DLQ_URL)?),
            (
                comment_events_queue.clone(),
                get(vars::COMMENT_EVENTS_DLQ_URL)?,
            ),
            (sync_jobs_queue.clone(), get(vars::SYNC_JOBS_DLQ_URL)?),
        ]);
        Ok(Self {
            table: get(vars::TABLE_NAME)?,
            secret_prefix: get(vars::SECRET_PREFIX)?,
            signing_key_id: get(vars::STATE_SIGNING_SECRET_ID)?,
            call_events_queue,
            comment_events_queue,
            sync_jobs_queue,
            dead_letter_queues,
        })
    }
}

/// Provisions a complete environment whose names all start with `prefix`, its
/// queues as the template declares them. `max_receive_count` is the redrive
/// threshold of every queue (template: [`MAX_RECEIVE_COUNT`]); `visibility`, when
/// given, replaces every queue's visibility timeout (tests that must not wait
/// 15 minutes for a crashed batch).
pub async fn provision(
    clients: &AwsClients,
    prefix: &str,
    max_receive_count: u32,
    visibility: Option<std::time::Duration>,
) -> Result<Resources, String> {
    let table = format!("{prefix}-table");
    create_table(&clients.dynamodb, &table)
        .await
        .map_err(|e| format!("table: {e}"))?;

    let signing_key_id = format!("{prefix}/oauth-state-key");
    let key: String = {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(64)
            .map(char::from)
            .collect()
    };
    clients
        .secrets
        .create_secret()
        .name(&signing_key_id)
        .secret_string(key)
        .send()
        .await
        .map_err(|e| {
            format!(
                "signing key: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        })?;

    let mut dead_letter_queues = HashMap::new();
    let mut urls = Vec::new();
    for spec in QUEUES {
        let name = spec.name;
        let visibility = visibility.map_or(spec.visibility_timeout_seconds, |v| {
            v.as_secs().max(1) as u32
        });
        let dlq = create_queue(
            clients,
            &format!("{prefix}-{name}-dlq"),
            HashMap::from([
                (
                    QueueAttributeName::MaximumMessageSize,
                    DLQ_MAX_MESSAGE_BYTES.to_string(),
                ),
                (QueueAttributeName::MessageRetentionPeriod, "1209600".into()),
            ]),
        )
        .await?;
        let dlq_arn = queue_arn(clients, &dlq).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count.to_string(),
        })
        .to_string();
        let url = create_queue(
            clients,
            &format!("{prefix}-{name}"),
            HashMap::from([
                (QueueAttributeName::RedrivePolicy, redrive),
                (
                    QueueAttributeName::VisibilityTimeout,
                    visibility.to_string(),
                ),
            ]),
        )
        .await?;
        dead_letter_queues.insert(url.clone(), dlq);
        urls.push(url);
    }
    let [call_events_queue, comment_events_queue, sync_jobs_queue]: [String; 3] =
        urls.try_into().map_err(|_| "three queues".to_string())?;
    Ok(Resources {
        table,
        secret_prefix: format!("{prefix}/salesforce/tenants/"),
        signing_key_id,
        call_events_queue,
        comment_events_queue,
        sync_jobs_queue,
        dead_letter_queues,
    })
}

async fn create_queue(
    clients: &AwsClients,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, String> {
    clients
        .sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes))
        .send()
        .await
        .map_err(|e| {
            format!(
                "queue {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url
        .ok_or_else(|| format!("queue {name}: no URL returned"))
}

async fn queue_arn(clients: &AwsClients, url: &str) -> Result<String, String> {
    clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            format!(
                "queue {url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| format!("queue {url}: no ARN"))
}
