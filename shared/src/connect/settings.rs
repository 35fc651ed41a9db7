//! The tenant's settings: the connected app's keys and login host, validated
//! and kept in Secrets Manager; the matching and owner preferences kept with
//! the connection.

use super::*;

/// The body of `PUT settings`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsInput {
    pub consumer_key: String,
    /// Optional on update: keeps the stored secret when absent.
    #[serde(default)]
    pub consumer_secret: Option<SecretString>,
    pub instance_url: String,
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or a My Domain host.
    #[serde(default)]
    pub login_url: Option<String>,
    /// A sandbox without an explicit login URL logs in at test.salesforce.com.
    #[serde(default)]
    pub sandbox: bool,
    #[serde(default)]
    pub phone_region: Option<String>,
    #[serde(default)]
    pub default_owner_id: Option<String>,
    /// Days after a call during which the sync matches it again (0: never).
    #[serde(default)]
    pub rematch_days: Option<u16>,
    /// Days stored calls are kept after they start (30 to 3,650).
    #[serde(default)]
    pub retention_days: Option<u16>,
    /// Summaries as Notes (absent: kept).
    #[serde(default)]
    pub summaries_as_notes: Option<bool>,
}

/// The longest re-match window a tenant may set, in days.
pub const MAX_REMATCH_DAYS: u16 = 90;

/// Settings as shown back: never the secret.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    /// What was normalised in the values just saved (only in the answer to a save).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<SettingsNotice>,
    pub consumer_key: String,
    pub consumer_secret_set: bool,
    pub instance_url: String,
    pub login_url: String,
    pub phone_region: String,
    pub default_owner_id: Option<String>,
    /// Days after a call during which the sync matches it again.
    pub rematch_days: u16,
    /// Days stored calls (message and outcome) are kept after they start.
    pub retention_days: u16,
    /// Each logged call's summary, highlights and rep's notes also written as
    /// a Salesforce Note, linked to the call's Who and What.
    pub summaries_as_notes: bool,
    pub callback_url: Option<String>,
    /// What was changed in the addresses typed, in plain words (on save only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What saving the settings changed in what the admin typed (shown back in
/// plain words: the admin must recognise the host that will be used).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SettingsNotice {
    pub field: &'static str,
    /// `lightning_host` (a Lightning UI host mapped to its API host),
    /// `host_changed` (another host is used), `origin_only` (path, query or
    /// case dropped; https assumed).
    pub reason: &'static str,
    pub from: String,
    pub to: String,
}

/// How `raw`, as typed, became `origin`; `None` when it was already the origin.
pub fn normalisation_notice(
    field: &'static str,
    raw: &str,
    origin: &SalesforceOrigin,
) -> Option<SettingsNotice> {
    let typed = raw.trim();
    if typed.trim_end_matches('/') == origin.as_str() {
        return None;
    }
    let with_scheme = if typed.contains("://") {
        typed.to_string()
    } else {
        format!("https://{typed}")
    };
    let typed_host = Url::parse(&with_scheme)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let reason = if typed_host == origin.host() {
        "origin_only"
    } else if typed_host.ends_with(".lightning.force.com") {
        "lightning_host"
    } else {
        "host_changed"
    };
    Some(SettingsNotice {
        field,
        reason,
        from: typed.to_string(),
        to: origin.as_str().to_string(),
    })
}

impl<S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'_, S, K, C> {
    /// `PUT settings`: validated, normalised, stored in Secrets Manager.
    pub async fn save_settings(
        &self,
        actor: &Actor,
        input: SettingsInput,
    ) -> Result<SettingsView, ConnectError> {
        let hosts = self.salesforce.hosts();
        let consumer_key = input.consumer_key.trim().to_string();
        if consumer_key.is_empty()
            || consumer_key.len() > 256
            || consumer_key.chars().any(char::is_whitespace)
        {
            return Err(ConnectError::invalid(
                "consumerKey",
                "format",
                "a consumer key is 1-256 characters without spaces",
            ));
        }
        let address = hosts.org_address(&input.instance_url)?;
        let instance = address.instance;
        let mut notes = address.notes;
        let login = match (&input.login_url, input.sandbox) {
            (Some(login), _) if !login.trim().is_empty() => {
                let typed = hosts
                    .org_address(login)
                    .map_err(|e| ConnectError::url("loginUrl", &e))?;
                notes.extend(typed.notes);
                typed.login
            }
            (_, true) => hosts
                .origin(SANDBOX_LOGIN_HOST)
                .map_err(|e| ConnectError::url("loginUrl", &e))?,
            // A My Domain serves the OAuth endpoints of its org; a pod's address
            // signs in at Salesforce's login host.
            _ => address.login,
        };
        let phone_region = match input.phone_region.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => {
                Some(r.to_ascii_uppercase())
            }
            Some(_) => {
                return Err(ConnectError::invalid(
                    "phoneRegion",
                    "format",
                    "expected an ISO 3166 country code such as FR",
                ));
            }
        };
        // Absent: kept; empty: cleared (the connected user owns unmapped hosts' calls).
        let default_owner = match input.default_owner_id.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(owner) if valid_sf_id(owner, "005") => Some(Some(owner.to_string())),
            Some(_) => {
                return Err(ConnectError::invalid(
                    "defaultOwnerId",
                    "format",
                    "expected a Salesforce user id (005…)",
                ));
            }
        };
        if input.rematch_days.is_some_and(|d| d > MAX_REMATCH_DAYS) {
            return Err(ConnectError::invalid(
                "rematchDays",
                "range",
                format!("calls are matched again for 0 to {MAX_REMATCH_DAYS} days"),
            ));
        }
        if input
            .retention_days
            .is_some_and(|d| !crate::domain::retention::valid_days(d))
        {
            return Err(ConnectError::invalid(
                "retentionDays",
                "range",
                format!(
                    "stored calls are kept for {} to {} days",
                    crate::domain::retention::MIN_RETENTION_DAYS,
                    crate::domain::retention::MAX_RETENTION_DAYS
                ),
            ));
        }

        let previous = self.secrets.get_credentials(&actor.tenant).await?;
        let consumer_secret = match (&input.consumer_secret, &previous) {
            (Some(s), _) if !s.expose_secret().trim().is_empty() => {
                SecretString::from(s.expose_secret().trim())
            }
            (_, Some(p)) if p.consumer_key == consumer_key => p.consumer_secret.clone(),
            _ => {
                return Err(ConnectError::invalid(
                    "consumerSecret",
                    "required",
                    "the consumer secret is required",
                ));
            }
        };
        // Tokens survive a secret rotation of the same app; another app, org or login
        // host invalidates them.
        let same_app = previous.as_ref().is_some_and(|p| {
            p.consumer_key == consumer_key
                && p.instance_url == instance.as_str()
                && p.login_url == login.as_str()
        });
        let (refresh_token, access_token) = match (&previous, same_app) {
            (Some(p), true) => (p.refresh_token.clone(), p.access_token.clone()),
            _ => (None, None),
        };
        let had_tokens = previous.as_ref().is_some_and(|p| p.refresh_token.is_some());
        let credentials = TenantCredentials {
            consumer_key,
            consumer_secret,
            instance_url: instance.as_str().to_string(),
            login_url: login.as_str().to_string(),
            refresh_token,
            access_token,
        };
        self.secrets
            .put_credentials(&actor.tenant, &credentials)
            .await?;
        self.salesforce.forget(&actor.tenant);

        let mut connection = self.connection_or_new(&actor.tenant).await?;
        if let Some(region) = phone_region {
            connection.phone_region = region;
        }
        if let Some(owner) = default_owner {
            connection.default_owner_id = owner;
        }
        if let Some(days) = input.rematch_days {
            connection.rematch_days = days;
        }
        if let Some(days) = input.retention_days {
            connection.retention_days = days;
        }
        if let Some(on) = input.summaries_as_notes {
            connection.summaries_as_notes = on;
        }
        connection.instance_url = Some(credentials.instance_url.clone());
        if had_tokens && !same_app {
            connection.status = ConnectionStatus::Pending;
            connection.status_reason = Some("Salesforce settings changed: connect again".into());
        }
        connection.updated_at = Utc::now();
        let connection = self.store.save_connection(&connection).await?;
        self.audit(
            actor,
            "settings_saved",
            Some(credentials.instance_url.clone()),
        )
        .await?;
        let mut view = self.settings_view(&credentials, &connection);
        // In plain words for whoever reads the answer, and as codes for the page.
        view.notes = notes;
        view.notices = normalisation_notice("instanceUrl", &input.instance_url, &instance)
            .into_iter()
            .chain(
                input
                    .login_url
                    .as_deref()
                    .filter(|l| !l.trim().is_empty())
                    .and_then(|l| normalisation_notice("loginUrl", l, &login)),
            )
            .collect();
        Ok(view)
    }

    fn settings_view(&self, c: &TenantCredentials, connection: &Connection) -> SettingsView {
        SettingsView {
            notices: Vec::new(),
            consumer_key: c.consumer_key.clone(),
            consumer_secret_set: !c.consumer_secret.expose_secret().is_empty(),
            instance_url: c.instance_url.clone(),
            login_url: c.login_url.clone(),
            phone_region: connection.phone_region.clone(),
            default_owner_id: connection.default_owner_id.clone(),
            rematch_days: connection.rematch_days,
            retention_days: connection.retention_days,
            summaries_as_notes: connection.summaries_as_notes,
            callback_url: self.oauth.map(|o| o.callback_url.to_string()),
            notes: Vec::new(),
        }
    }

    /// `GET settings`.
    pub async fn settings(&self, tenant: &TenantId) -> Result<SettingsView, ConnectError> {
        let credentials = self
            .secrets
            .get_credentials(tenant)
            .await?
            .ok_or_else(|| ConnectError::NotFound("no Salesforce settings saved yet".into()))?;
        let connection = self.connection_or_new(tenant).await?;
        Ok(self.settings_view(&credentials, &connection))
    }
}
