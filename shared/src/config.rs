//! Typed configuration, read once from the environment at cold start.
//!
//! This module is the one place that knows environment variable names. Every
//! function loads [`Config`] (what all of them share) plus the sections it needs
//! ([`OAuthConfig`], queue URLs), so that a missing or malformed value stops the
//! Lambda at init with an error naming the variable, not at the first event.

use std::collections::HashMap;
use std::time::Duration;

use crate::domain::hosts::{self, HostPolicy, PubSubEndpoint};
use url::Url;

/// A configuration problem. The message always names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where configuration values come from: the process environment in Lambda,
/// a map in tests and in the local stack.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Source for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|v| v.to_string())
    }
}

/// Variable names, in one list so that the template, the local stack and the
/// tests can refer to them without retyping strings.
pub mod vars {
    pub const STAGE: &str = "STAGE";
    pub const TABLE_NAME: &str = "TABLE_NAME";
    pub const SECRET_PREFIX: &str = "SECRET_PREFIX";
    pub const STATE_SIGNING_SECRET_ID: &str = "STATE_SIGNING_SECRET_ID";
    pub const CALL_EVENTS_QUEUE_URL: &str = "CALL_EVENTS_QUEUE_URL";
    pub const COMMENT_EVENTS_QUEUE_URL: &str = "COMMENT_EVENTS_QUEUE_URL";
    pub const SYNC_JOBS_QUEUE_URL: &str = "SYNC_JOBS_QUEUE_URL";
    pub const CALL_EVENTS_DLQ_URL: &str = "CALL_EVENTS_DLQ_URL";
    pub const COMMENT_EVENTS_DLQ_URL: &str = "COMMENT_EVENTS_DLQ_URL";
    pub const SYNC_JOBS_DLQ_URL: &str = "SYNC_JOBS_DLQ_URL";
    pub const SALESFORCE_API_VERSION: &str = "SALESFORCE_API_VERSION";
    pub const SALESFORCE_CLIENT_NAME: &str = "SALESFORCE_CLIENT_NAME";
    pub const SALESFORCE_EXTRA_ALLOWED_ORIGINS: &str = "SALESFORCE_EXTRA_ALLOWED_ORIGINS";
    pub const SALESFORCE_PUBSUB_ENDPOINT: &str = "SALESFORCE_PUBSUB_ENDPOINT";
    pub const OAUTH_CALLBACK_URL: &str = "OAUTH_CALLBACK_URL";
    pub const MODJO_RETURN_URL: &str = "MODJO_RETURN_URL";
    pub const OAUTH_STATE_TTL_SECONDS: &str = "OAUTH_STATE_TTL_SECONDS";
    pub const SYNC_PAUSE_AT_PERCENT: &str = "SYNC_PAUSE_AT_PERCENT";
    pub const CALL_LOGGING_DEFER_AT_PERCENT: &str = "CALL_LOGGING_DEFER_AT_PERCENT";
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
    /// The one PEM bundle the AWS SDK trusts (read by rustls-native-certs)
    /// instead of every file of the system's certificate directories.
    pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";
}

/// Salesforce REST API version used for every request unless configured: 64.0
/// (Summer '25), over a year old, so every production org serves it; newer ones
/// reach orgs over weeks of a release. Versions 21.0 to 30.0 are retired.
pub const DEFAULT_API_VERSION: &str = "64.0";
/// The oldest version Salesforce still serves.
pub const OLDEST_API_VERSION: u32 = 31;

/// Settings every function shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Deployment stage (`dev`, `staging`, `prod`, `local`): a label for logs and metrics.
    pub stage: String,
    /// The single DynamoDB table.
    pub table_name: String,
    /// Prefix of per-tenant secret names in Secrets Manager, e.g. `modjo/prod/salesforce/`.
    pub secret_prefix: String,
    pub salesforce: SalesforceConfig,
    pub budget: BudgetThresholds,
    pub metrics_namespace: String,
}

/// How the product talks to Salesforce.
#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceConfig {
    /// `62.0`: REST paths use `v62.0`.
    pub api_version: String,
    /// Sent as `Sforce-Call-Options: client=<name>` on writes, so CDC echoes can be recognised.
    pub client_name: String,
    /// Origins (`scheme://host:port`) allowed besides Salesforce's own domains.
    /// Only tests and the local stack set this (to reach the emulator); production never does.
    pub extra_allowed_origins: Vec<Url>,
    /// The Pub/Sub API (Change Data Capture); `None` polls every object with SOQL.
    pub pubsub_endpoint: Option<PubSubEndpoint>,
}

/// API budget thresholds, in percent of the org's daily allocation (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetThresholds {
    /// The sync pauses at or above this usage.
    pub sync_pause_at_percent: u8,
    /// Call logging waits at or above this usage.
    pub call_logging_defer_at_percent: u8,
}

impl Default for BudgetThresholds {
    fn default() -> Self {
        Self {
            sync_pause_at_percent: 80,
            call_logging_defer_at_percent: 95,
        }
    }
}

/// The OAuth connect flow's settings (integration-api and oauth-callback).
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthConfig {
    /// The `redirect_uri` registered in the customer's connected app:
    /// `https://app.modjo.ai/integrations/salesforce/callback` in production.
    pub callback_url: Url,
    /// The Modjo page the browser is sent back to after the callback (with a result flag).
    pub return_url: Url,
    /// Secrets Manager id of the key that signs OAuth `state` tokens.
    pub state_signing_secret_id: String,
    /// How long a `state` (and its PKCE verifier) stays valid.
    pub state_ttl: Duration,
}

impl Config {
    /// Reads the shared settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(env: &dyn Source) -> Result<Self, ConfigError> {
        let extra_allowed_origins = match non_empty(env, vars::SALESFORCE_EXTRA_ALLOWED_ORIGINS) {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
                .map(|(i, s)| parse_origin(vars::SALESFORCE_EXTRA_ALLOWED_ORIGINS, i + 1, s))
                .collect::<Result<_, _>>()?,
        };
        let api_version = non_empty(env, vars::SALESFORCE_API_VERSION)
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_string());
        if !is_api_version(&api_version) {
            return Err(ConfigError::Invalid {
                name: vars::SALESFORCE_API_VERSION,
                reason: format!(
                    "expected a version Salesforce serves, {OLDEST_API_VERSION}.0 or later, like {DEFAULT_API_VERSION}; got {api_version:?}"
                ),
            });
        }
        let defaults = BudgetThresholds::default();
        let budget = BudgetThresholds {
            sync_pause_at_percent: percent(
                env,
                vars::SYNC_PAUSE_AT_PERCENT,
                defaults.sync_pause_at_percent,
            )?,
            call_logging_defer_at_percent: percent(
                env,
                vars::CALL_LOGGING_DEFER_AT_PERCENT,
                defaults.call_logging_defer_at_percent,
            )?,
        };
        certificate_bundle(env)?;
        Ok(Self {
            stage: non_empty(env, vars::STAGE).unwrap_or_else(|| "dev".to_string()),
            table_name: required(env, vars::TABLE_NAME)?,
            secret_prefix: secret_prefix(env)?,
            salesforce: SalesforceConfig {
                api_version,
                client_name: non_empty(env, vars::SALESFORCE_CLIENT_NAME)
                    .unwrap_or_else(|| "modjo".to_string()),
                pubsub_endpoint: pubsub_endpoint(env, &extra_allowed_origins)?,
                extra_allowed_origins,
            },
            budget,
            metrics_namespace: non_empty(env, vars::METRICS_NAMESPACE)
                .unwrap_or_else(|| "Modjo/Salesforce".to_string()),
        })
    }
}

impl OAuthConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(env: &dyn Source) -> Result<Self, ConfigError> {
        let ttl_seconds = match non_empty(env, vars::OAUTH_STATE_TTL_SECONDS) {
            None => 600,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (30..=3600).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: vars::OAUTH_STATE_TTL_SECONDS,
                        reason: format!("expected seconds between 30 and 3600, got {v:?}"),
                    });
                }
            },
        };
        Ok(Self {
            callback_url: absolute_url(env, vars::OAUTH_CALLBACK_URL)?,
            return_url: absolute_url(env, vars::MODJO_RETURN_URL)?,
            state_signing_secret_id: required(env, vars::STATE_SIGNING_SECRET_ID)?,
            state_ttl: Duration::from_secs(ttl_seconds),
        })
    }
}

/// Reads a required SQS queue URL, e.g. [`vars::SYNC_JOBS_QUEUE_URL`].
pub fn queue_url(env: &dyn Source, name: &'static str) -> Result<String, ConfigError> {
    Ok(absolute_url(env, name)?.to_string())
}

/// Reads a required queue URL from the process environment.
pub fn queue_url_from_env(name: &'static str) -> Result<String, ConfigError> {
    queue_url(&ProcessEnv, name)
}

/// Salesforce's endpoint unless configured; `none` turns Change Data Capture off.
/// Validated like an instance URL: Salesforce's own host, or an origin allowed
/// explicitly (the emulator).
fn pubsub_endpoint(
    env: &dyn Source,
    extra_origins: &[Url],
) -> Result<Option<PubSubEndpoint>, ConfigError> {
    let name = vars::SALESFORCE_PUBSUB_ENDPOINT;
    match non_empty(env, name).as_deref() {
        Some("none") => Ok(None),
        raw => {
            let raw = raw.unwrap_or(hosts::PUBSUB_ENDPOINT);
            PubSubEndpoint::parse(raw, &HostPolicy::new(extra_origins))
                .map(Some)
                .map_err(|e| ConfigError::Invalid {
                    name,
                    // Not the value itself: a mistyped URL may carry credentials.
                    reason: format!("not a Pub/Sub API endpoint ({e})"),
                })
        }
    }
}

/// When set, the bundle must be a readable file: otherwise the SDK would trust
/// no certificate and every AWS call would fail, long after start-up.
fn certificate_bundle(env: &dyn Source) -> Result<(), ConfigError> {
    match non_empty(env, vars::SSL_CERT_FILE) {
        Some(path) if !std::path::Path::new(&path).is_file() => Err(ConfigError::Invalid {
            name: vars::SSL_CERT_FILE,
            reason: format!("{path} is not a file"),
        }),
        _ => Ok(()),
    }
}

fn non_empty(env: &dyn Source, name: &str) -> Option<String> {
    env.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn required(env: &dyn Source, name: &'static str) -> Result<String, ConfigError> {
    non_empty(env, name).ok_or(ConfigError::Missing(name))
}

fn secret_prefix(env: &dyn Source) -> Result<String, ConfigError> {
    let prefix = required(env, vars::SECRET_PREFIX)?;
    // Secrets Manager names allow ASCII letters, digits and /_+=.@-
    if let Some(bad) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
    {
        return Err(ConfigError::Invalid {
            name: vars::SECRET_PREFIX,
            reason: format!("character {bad:?} is not allowed in a secret name"),
        });
    }
    Ok(prefix)
}

fn absolute_url(env: &dyn Source, name: &'static str) -> Result<Url, ConfigError> {
    let raw = required(env, name)?;
    let url = Url::parse(&raw).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("not an absolute URL ({e})"),
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(ConfigError::Invalid {
            name,
            reason: "expected an http(s) URL with a host".to_string(),
        });
    }
    Ok(url)
}

/// One entry (`position`, from 1) of a list of origins. Errors name the entry,
/// not its value: a mistyped URL may carry credentials.
fn parse_origin(name: &'static str, position: usize, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("entry {position} is not an origin ({e})"),
    })?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() || !bare {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("entry {position} must be a bare origin such as http://127.0.0.1:8443"),
        });
    }
    Ok(url)
}

fn percent(env: &dyn Source, name: &'static str, default: u8) -> Result<u8, ConfigError> {
    match non_empty(env, name) {
        None => Ok(default),
        Some(v) => match v.parse::<u8>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(ConfigError::Invalid {
                name,
                reason: format!("expected a percentage between 1 and 100, got {v:?}"),
            }),
        },
    }
}

fn is_api_version(v: &str) -> bool {
    match v.split_once('.') {
        Some((major, "0")) => {
            (1..=3).contains(&major.len())
                && major.bytes().all(|b| b.is_ascii_digit())
                && major.parse::<u32>().is_ok_and(|m| m >= OLDEST_API_VERSION)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "modjo-sf"),
        ("SECRET_PREFIX", "modjo/dev/sf/"),
    ];

    #[test]
    fn loads_defaults() {
        let c = Config::from_source(&env(BASE)).unwrap();
        assert_eq!(c.table_name, "modjo-sf");
        assert_eq!(c.secret_prefix, "modjo/dev/sf/");
        assert_eq!(c.salesforce.api_version, DEFAULT_API_VERSION);
        assert_eq!(c.salesforce.client_name, "modjo");
        assert_eq!(
            c.salesforce
                .pubsub_endpoint
                .as_ref()
                .map(PubSubEndpoint::as_str),
            Some("https://api.pubsub.salesforce.com:7443/")
        );
        assert!(c.salesforce.extra_allowed_origins.is_empty());
        assert_eq!(c.budget, BudgetThresholds::default());
        assert_eq!(c.stage, "dev");
    }

    #[test]
    fn missing_value_is_named() {
        let err = Config::from_source(&env(&[("SECRET_PREFIX", "x/")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("TABLE_NAME"));
        assert_eq!(
            err.to_string(),
            "missing required environment variable TABLE_NAME"
        );
        // Blank counts as missing.
        let err = Config::from_source(&env(&[("TABLE_NAME", "  "), ("SECRET_PREFIX", "x/")]))
            .unwrap_err();
        assert_eq!(err, ConfigError::Missing("TABLE_NAME"));
    }

    #[test]
    fn invalid_values_are_named() {
        let cases: &[(&str, &str)] = &[
            ("SYNC_PAUSE_AT_PERCENT", "180"),
            ("CALL_LOGGING_DEFER_AT_PERCENT", "ninety"),
            ("SALESFORCE_API_VERSION", "v62"),
            ("SALESFORCE_API_VERSION", "30.0"),
            ("SALESFORCE_API_VERSION", "+64.0"),
            ("SALESFORCE_API_VERSION", "64.1"),
            (
                "SALESFORCE_EXTRA_ALLOWED_ORIGINS",
                "http://127.0.0.1:1/path",
            ),
            ("SALESFORCE_EXTRA_ALLOWED_ORIGINS", "ftp://x"),
            ("SECRET_PREFIX", "bad prefix"),
        ];
        for (name, value) in cases {
            let mut e = env(BASE);
            e.insert(name, value);
            match Config::from_source(&e) {
                Err(ConfigError::Invalid { name: n, .. }) => assert_eq!(&n, name),
                other => panic!("{name}={value}: expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_certificate_bundle_must_exist() {
        let mut e = env(BASE);
        e.insert("SSL_CERT_FILE", "/nonexistent/ca-bundle.crt");
        assert!(matches!(
            Config::from_source(&e),
            Err(ConfigError::Invalid {
                name: "SSL_CERT_FILE",
                ..
            })
        ));
        e.insert(
            "SSL_CERT_FILE",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        );
        assert!(Config::from_source(&e).is_ok());
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_being_echoed() {
        for name in [
            "SALESFORCE_EXTRA_ALLOWED_ORIGINS",
            "SALESFORCE_PUBSUB_ENDPOINT",
        ] {
            let mut e = env(BASE);
            e.insert(name, "https://admin:hunter2@api.pubsub.salesforce.com:7443");
            let err = Config::from_source(&e).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            assert!(!err.contains("hunter2"), "{name} echoed its value: {err}");
        }
    }

    #[test]
    fn extra_origins_parse() {
        let mut e = env(BASE);
        e.insert(
            "SALESFORCE_EXTRA_ALLOWED_ORIGINS",
            "http://127.0.0.1:8443, https://emulator.local",
        );
        let c = Config::from_source(&e).unwrap();
        let origins: Vec<_> = c
            .salesforce
            .extra_allowed_origins
            .iter()
            .map(|u| u.origin().ascii_serialization())
            .collect();
        assert_eq!(origins, ["http://127.0.0.1:8443", "https://emulator.local"]);
    }

    #[test]
    fn pubsub_endpoint_is_validated_like_an_instance_url() {
        let mut e = env(BASE);
        e.insert("SALESFORCE_PUBSUB_ENDPOINT", "none");
        assert_eq!(
            Config::from_source(&e).unwrap().salesforce.pubsub_endpoint,
            None
        );
        e.insert("SALESFORCE_PUBSUB_ENDPOINT", "http://127.0.0.1:7443");
        let err = Config::from_source(&e).unwrap_err().to_string();
        assert!(err.contains("SALESFORCE_PUBSUB_ENDPOINT"), "{err}");
        e.insert(
            "SALESFORCE_PUBSUB_ENDPOINT",
            "https://pubsub.evil.example:7443",
        );
        assert!(Config::from_source(&e).is_err());
        // The emulator only by explicit configuration.
        e.insert("SALESFORCE_PUBSUB_ENDPOINT", "http://127.0.0.1:7443");
        e.insert("SALESFORCE_EXTRA_ALLOWED_ORIGINS", "http://127.0.0.1:7443");
        let c = Config::from_source(&e).unwrap();
        assert_eq!(
            c.salesforce
                .pubsub_endpoint
                .as_ref()
                .map(PubSubEndpoint::as_str),
            Some("http://127.0.0.1:7443/")
        );
    }

    #[test]
    fn oauth_config() {
        let e = env(&[
            (
                "OAUTH_CALLBACK_URL",
                "https://app.modjo.ai/integrations/salesforce/callback",
            ),
            (
                "MODJO_RETURN_URL",
                "https://app.modjo.ai/settings/integrations",
            ),
            ("STATE_SIGNING_SECRET_ID", "modjo/dev/oauth-state-key"),
        ]);
        let c = OAuthConfig::from_source(&e).unwrap();
        assert_eq!(c.state_ttl, Duration::from_secs(600));
        assert_eq!(c.callback_url.path(), "/integrations/salesforce/callback");

        let mut bad = e.clone();
        bad.insert("MODJO_RETURN_URL", "/relative");
        assert!(matches!(
            OAuthConfig::from_source(&bad),
            Err(ConfigError::Invalid {
                name: "MODJO_RETURN_URL",
                ..
            })
        ));
        let mut bad = e.clone();
        bad.insert("OAUTH_STATE_TTL_SECONDS", "5");
        assert!(matches!(
            OAuthConfig::from_source(&bad),
            Err(ConfigError::Invalid {
                name: "OAUTH_STATE_TTL_SECONDS",
                ..
            })
        ));
        let mut missing = e;
        missing.remove("STATE_SIGNING_SECRET_ID");
        assert_eq!(
            OAuthConfig::from_source(&missing),
            Err(ConfigError::Missing("STATE_SIGNING_SECRET_ID"))
        );
    }

    #[test]
    fn queue_urls() {
        let e = env(&[(
            "SYNC_JOBS_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123/sync-jobs",
        )]);
        assert!(queue_url(&e, vars::SYNC_JOBS_QUEUE_URL).is_ok());
        assert_eq!(
            queue_url(&e, vars::CALL_EVENTS_QUEUE_URL),
            Err(ConfigError::Missing("CALL_EVENTS_QUEUE_URL"))
        );
    }
}
