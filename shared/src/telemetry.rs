//! Structured JSON logs through `tracing`, and CloudWatch embedded metric format.
//!
//! Logs: one JSON object per line on stdout, with the current span's fields
//! (the Lambda runtime's span carries `requestId`; handlers add `tenant_id` and
//! `call_id` spans). Secrets never reach a log line because they are `secrecy`
//! types whose `Debug` prints `[REDACTED]`.
//!
//! Metrics: [`Metrics`] prints one EMF document per flush; CloudWatch turns it
//! into metrics without any API call from the function.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber. `RUST_LOG` (or `AWS_LAMBDA_LOG_LEVEL`) sets the
/// level; default `info`. Safe to call more than once (later calls are no-ops).
pub fn init(function: &'static str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|l| l.to_lowercase())
        })
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(true)
        .with_ansi(false)
        .try_init();
    tracing::debug!(function, "telemetry initialised");
}

/// Metric units understood by CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Percent,
    Bytes,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Percent => "Percent",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One EMF document: a few metrics sharing a dimension set.
///
/// Dimensions must stay low-cardinality (function, stage, object); per-tenant values go
/// in [`Metrics::property`], which is searchable in Logs Insights but creates no metric.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    properties: Map<String, Value>,
    metrics: Vec<(String, Unit, f64)>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            properties: Map::new(),
            metrics: Vec::new(),
        }
    }

    pub fn dimension(mut self, name: &str, value: impl Into<String>) -> Self {
        self.dimensions.push((name.to_string(), value.into()));
        self
    }

    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_string(), value.into());
        self
    }

    /// Records a value; a name recorded twice is summed.
    pub fn put(&mut self, name: &str, unit: Unit, value: f64) -> &mut Self {
        match self.metrics.iter_mut().find(|(n, _, _)| n == name) {
            Some((_, _, sum)) => *sum += value,
            None => self.metrics.push((name.to_string(), unit, value)),
        }
        self
    }

    pub fn count(&mut self, name: &str, value: u64) -> &mut Self {
        self.put(name, Unit::Count, value as f64)
    }

    /// The DynamoDB requests sent between two readings of the store's counts:
    /// `DynamoDbRequests` in all, and `DynamoDb<Operation>` for each operation used.
    pub fn store_requests(
        &mut self,
        before: &std::collections::BTreeMap<String, u64>,
        after: &std::collections::BTreeMap<String, u64>,
    ) -> &mut Self {
        let mut total = 0;
        for (operation, n) in after {
            let sent = n.saturating_sub(before.get(operation).copied().unwrap_or(0));
            if sent > 0 {
                total += sent;
                self.count(&format!("DynamoDb{operation}"), sent);
            }
        }
        self.count("DynamoDbRequests", total)
    }

    /// The EMF JSON document.
    pub fn render(&self, timestamp_ms: u64) -> Value {
        let mut doc = self.properties.clone();
        for (name, value) in &self.dimensions {
            doc.insert(name.clone(), Value::String(value.clone()));
        }
        let mut definitions = Vec::new();
        for (name, unit, value) in &self.metrics {
            doc.insert(name.clone(), json!(value));
            definitions.push(json!({ "Name": name, "Unit": unit.as_str() }));
        }
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        doc.insert(
            "_aws".to_string(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }]
            }),
        );
        Value::Object(doc)
    }

    /// Prints the document on stdout, where the Lambda log agent picks it up.
    /// Does nothing when no metric was recorded.
    pub fn emit(&self) {
        if self.metrics.is_empty() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let line = self.render(now).to_string();
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_embedded_metric_format() {
        let mut m = Metrics::new("Modjo/Salesforce")
            .dimension("Function", "call-logger")
            .dimension("Stage", "dev")
            .property("tenantId", "acme");
        m.count("CallsLogged", 3)
            .put("Latency", Unit::Milliseconds, 12.5)
            .count("CallsLogged", 2);
        let doc = m.render(1_700_000_000_000);
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Modjo/Salesforce");
        assert_eq!(cw["Dimensions"], json!([["Function", "Stage"]]));
        assert_eq!(
            cw["Metrics"],
            json!([{"Name": "CallsLogged", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}])
        );
        assert_eq!(doc["CallsLogged"], 5.0);
        assert_eq!(doc["Latency"], 12.5);
        assert_eq!(doc["Function"], "call-logger");
        assert_eq!(doc["tenantId"], "acme");
    }

    #[test]
    fn store_requests_are_counted_by_operation_between_two_readings() {
        let before = std::collections::BTreeMap::from([("Query".to_string(), 5)]);
        let after = std::collections::BTreeMap::from([
            ("Query".to_string(), 8),
            ("TransactWriteItems".to_string(), 2),
        ]);
        let mut m = Metrics::new("Modjo/Test");
        m.store_requests(&before, &after);
        let doc = m.render(0);
        assert_eq!(doc["DynamoDbQuery"], 3.0);
        assert_eq!(doc["DynamoDbTransactWriteItems"], 2.0);
        assert_eq!(doc["DynamoDbRequests"], 5.0);
    }
}
