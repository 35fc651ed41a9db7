//! Per-test AWS resources on the test process's moto server.

use std::sync::OnceLock;

use local_stack::moto::MotoServer;
use local_stack::provision::{Resources, provision};
use shared::adapters::dynamo::DynamoStore;
use shared::adapters::secrets::SecretsManagerStore;
use shared::adapters::sqs::SqsQueue;
use shared::aws::AwsClients;

use crate::{repo_root, unique};

/// The test process's moto server, started on first use. It stops when the
/// process exits (its stdin closes).
pub fn server() -> &'static MotoServer {
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        MotoServer::start(&repo_root()).unwrap_or_else(|e| panic!("cannot start moto: {e}"))
    })
}

/// One test's AWS world: its own table, secret prefix, signing key and queues
/// (each with a DLQ) on the shared moto server, so tests run in parallel without
/// seeing each other's data.
pub struct AwsEnv {
    pub endpoint: String,
    pub clients: AwsClients,
    pub resources: Resources,
}

impl AwsEnv {
    pub async fn new() -> Self {
        let endpoint = server().endpoint().to_string();
        let clients = AwsClients::for_endpoint(&endpoint).await;
        let resources = provision(&clients, &unique("t"), 3, None)
            .await
            .unwrap_or_else(|e| panic!("provisioning on moto: {e}"));
        Self {
            endpoint,
            clients,
            resources,
        }
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.clients.dynamodb.clone(), &self.resources.table)
    }

    pub fn secrets(&self) -> SecretsManagerStore {
        SecretsManagerStore::new(self.clients.secrets.clone(), &self.resources.secret_prefix)
    }

    pub fn queue(&self, url: &str) -> SqsQueue {
        SqsQueue::new(self.clients.sqs.clone(), url)
    }

    /// Receives (and deletes) every message currently visible on a queue.
    pub async fn drain(&self, url: &str) -> Vec<String> {
        self.drain_messages(url)
            .await
            .into_iter()
            .map(|m| m.body)
            .collect()
    }

    /// [`Self::drain`], each body with the reason a consumer gave when it
    /// dead-lettered it (the `modjo-error` attribute; empty when absent).
    pub async fn drain_with_reasons(&self, url: &str) -> Vec<(String, String)> {
        self.drain_messages(url)
            .await
            .into_iter()
            .map(|m| (m.body, m.reason))
            .collect()
    }

    /// Like [`AwsEnv::drain`], with each message's `MessageGroupId` as SQS
    /// reports it (the tenant, on the product's fair queues).
    pub async fn drain_grouped(&self, url: &str) -> Vec<(Option<String>, String)> {
        self.drain_messages(url)
            .await
            .into_iter()
            .map(|m| (m.group, m.body))
            .collect()
    }

    /// Receives (and deletes) every message currently visible on a queue, with
    /// what came with it.
    pub async fn drain_messages(&self, url: &str) -> Vec<Drained> {
        let mut drained = Vec::new();
        loop {
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(
                    aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
                )
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return drained;
            }
            for m in messages {
                if let Some(handle) = &m.receipt_handle {
                    self.clients
                        .sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .expect("delete");
                }
                let reason = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("modjo-error"))
                    .and_then(|v| v.string_value.clone())
                    .unwrap_or_default();
                let group = m
                    .attributes
                    .as_ref()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    })
                    .cloned();
                drained.push(Drained {
                    body: m.body.unwrap_or_default(),
                    reason,
                    group,
                });
            }
        }
    }
}

/// A message received from a queue.
#[derive(Debug, Clone)]
pub struct Drained {
    pub body: String,
    /// The reason a consumer gave when it dead-lettered the message.
    pub reason: String,
    /// Its `MessageGroupId`.
    pub group: Option<String>,
}
