//! Salesforce users and the mapping of Modjo users onto them: listed, matched
//! automatically by email, set and removed by hand.

use super::*;

/// An active, standard Salesforce user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SalesforceUser {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: Option<String>,
    #[serde(rename = "Email", default)]
    pub email: Option<String>,
    #[serde(rename = "Username", default)]
    pub username: Option<String>,
}

/// Most Modjo users one request (or the directory) may name.
pub const MAX_MODJO_USERS: usize = 5_000;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutoMatchReport {
    pub matched: Vec<MatchedUser>,
    /// A manual mapping exists: left as it is.
    pub kept_manual: Vec<MatchedUser>,
    pub unmatched: Vec<String>,
    pub ambiguous: Vec<AmbiguousUser>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MatchedUser {
    pub modjo_user_id: String,
    pub sf_user_id: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AmbiguousUser {
    pub modjo_user_id: String,
    pub candidates: Vec<String>,
}

/// A Modjo user id as the API accepts it.
fn check_modjo_user_id(id: &str) -> Result<(), ConnectError> {
    if crate::domain::validate_external_id(id) {
        Ok(())
    } else {
        Err(ConnectError::invalid(
            "users",
            "format",
            format!("invalid Modjo user id {id:?}"),
        ))
    }
}

impl<S: ConnectStore, K: SecretStore, C: ConnectSalesforce> Connect<'_, S, K, C> {
    /// `GET users`: the org's active standard users (one API call).
    pub async fn salesforce_users(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<SalesforceUser>, ConnectError> {
        self.require_connected(tenant).await?;
        let soql = Select::new("User", &["Id", "Name", "Email", "Username"])
            .filter(Cond::and([
                Cond::eq("IsActive", true),
                Cond::eq("UserType", "Standard"),
            ]))
            .order_by("Name", Order::Asc)
            .render()
            .map_err(SalesforceError::from)?;
        Ok(self.session(tenant).query_all_pages(&soql, false).await?)
    }

    /// `POST users/auto-match`: case-insensitive email; ambiguous or unmatched
    /// users are reported, never guessed; a manual mapping is kept.
    pub async fn auto_match(
        &self,
        actor: &Actor,
        users: Vec<ModjoUser>,
    ) -> Result<AutoMatchReport, ConnectError> {
        if users.len() > MAX_MODJO_USERS {
            return Err(ConnectError::invalid(
                "users",
                "too_many",
                "at most 5000 users per request",
            ));
        }
        let sf_users = self.salesforce_users(&actor.tenant).await?;
        let mut by_email: HashMap<String, Vec<String>> = HashMap::new();
        for u in &sf_users {
            if let Some(email) = u.email.as_deref().and_then(normalize::email) {
                by_email.entry(email).or_default().push(u.id.clone());
            }
        }
        let mut report = AutoMatchReport::default();
        for user in users {
            check_modjo_user_id(&user.id)?;
            let candidates = normalize::email(&user.email)
                .and_then(|e| by_email.get(&e))
                .cloned()
                .unwrap_or_default();
            match candidates.as_slice() {
                [] => report.unmatched.push(user.id),
                [one] => {
                    let mapping = UserMapping {
                        modjo_user_id: user.id.clone(),
                        sf_user_id: one.clone(),
                        source: MappingSource::Auto,
                        updated_at: Utc::now(),
                    };
                    if self.store.put_mapping(&actor.tenant, &mapping).await? {
                        report.matched.push(MatchedUser {
                            modjo_user_id: user.id,
                            sf_user_id: one.clone(),
                        });
                    } else {
                        let manual = self.store.get_mapping(&actor.tenant, &user.id).await?;
                        report.kept_manual.push(MatchedUser {
                            modjo_user_id: user.id,
                            sf_user_id: manual.map(|m| m.sf_user_id).unwrap_or_default(),
                        });
                    }
                }
                many => report.ambiguous.push(AmbiguousUser {
                    modjo_user_id: user.id,
                    candidates: many.to_vec(),
                }),
            }
        }
        self.audit(
            actor,
            "users_auto_matched",
            Some(format!(
                "{} matched, {} unmatched, {} ambiguous",
                report.matched.len(),
                report.unmatched.len(),
                report.ambiguous.len()
            )),
        )
        .await?;
        Ok(report)
    }

    /// `PUT modjo-users`: the platform's list of the workspace's users replaces
    /// the directory shown next to the Salesforce users. Ids are unique and valid,
    /// emails normalised; at most [`MAX_MODJO_USERS`].
    pub async fn replace_modjo_users(
        &self,
        actor: &Actor,
        users: Vec<ModjoUser>,
    ) -> Result<Vec<ModjoUser>, ConnectError> {
        if users.len() > MAX_MODJO_USERS {
            return Err(ConnectError::invalid(
                "users",
                "too_many",
                format!("at most {MAX_MODJO_USERS} users"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut clean = Vec::with_capacity(users.len());
        for user in users {
            check_modjo_user_id(&user.id)?;
            if !seen.insert(user.id.clone()) {
                return Err(ConnectError::invalid(
                    "users",
                    "duplicate",
                    format!("Modjo user {} is listed twice", user.id),
                ));
            }
            let Some(email) = normalize::email(&user.email) else {
                return Err(ConnectError::invalid(
                    "users",
                    "format",
                    format!("invalid email for Modjo user {}", user.id),
                ));
            };
            let name = user
                .name
                .map(|n| n.trim().chars().take(200).collect::<String>())
                .filter(|n| !n.is_empty());
            clean.push(ModjoUser {
                id: user.id,
                email,
                name,
            });
        }
        clean.sort_by(|a, b| a.id.cmp(&b.id));
        self.store
            .replace_modjo_users(&actor.tenant, &clean)
            .await?;
        self.audit(
            actor,
            "modjo_users_replaced",
            Some(format!("{} users", clean.len())),
        )
        .await?;
        Ok(clean)
    }

    /// `GET modjo-users`.
    pub async fn modjo_users(&self, tenant: &TenantId) -> Result<Vec<ModjoUser>, ConnectError> {
        Ok(self.store.modjo_users(tenant).await?)
    }

    /// `PUT mappings/<modjoUserId>`: a manual mapping to an active standard user.
    pub async fn set_mapping(
        &self,
        actor: &Actor,
        modjo_user_id: &str,
        sf_user_id: &str,
    ) -> Result<UserMapping, ConnectError> {
        if !crate::domain::validate_external_id(modjo_user_id) {
            return Err(ConnectError::invalid(
                "modjoUserId",
                "format",
                "invalid Modjo user id",
            ));
        }
        if !valid_sf_id(sf_user_id, "005") {
            return Err(ConnectError::invalid(
                "sfUserId",
                "format",
                "expected a Salesforce user id (005…)",
            ));
        }
        self.require_connected(&actor.tenant).await?;
        let soql = Select::new("User", &["Id"])
            .filter(Cond::and([
                Cond::eq("Id", sf_user_id),
                Cond::eq("IsActive", true),
                Cond::eq("UserType", "Standard"),
            ]))
            .render()
            .map_err(SalesforceError::from)?;
        let found: Vec<Map<String, Value>> = self
            .session(&actor.tenant)
            .query_all_pages(&soql, false)
            .await?;
        let Some(id) = found
            .first()
            .and_then(|r| r.get("Id"))
            .and_then(Value::as_str)
        else {
            return Err(ConnectError::invalid(
                "sfUserId",
                "not_found",
                "no active standard Salesforce user has this id",
            ));
        };
        let mapping = UserMapping {
            modjo_user_id: modjo_user_id.to_string(),
            sf_user_id: id.to_string(),
            source: MappingSource::Manual,
            updated_at: Utc::now(),
        };
        self.store.put_mapping(&actor.tenant, &mapping).await?;
        self.audit(
            actor,
            "mapping_set",
            Some(format!("{modjo_user_id} → {id}")),
        )
        .await?;
        Ok(mapping)
    }

    /// `DELETE mappings/<modjoUserId>`.
    pub async fn delete_mapping(
        &self,
        actor: &Actor,
        modjo_user_id: &str,
    ) -> Result<(), ConnectError> {
        if !self
            .store
            .delete_mapping(&actor.tenant, modjo_user_id)
            .await?
        {
            return Err(ConnectError::NotFound("no mapping for this user".into()));
        }
        self.audit(actor, "mapping_deleted", Some(modjo_user_id.to_string()))
            .await?;
        Ok(())
    }

    /// `GET mappings`.
    pub async fn mappings(&self, tenant: &TenantId) -> Result<Vec<UserMapping>, ConnectError> {
        Ok(self.store.list_mappings(tenant).await?)
    }
}
