//! A tenant's own items, under its `T#<tenant>` partition: connection and audit
//! trail, user mappings and Modjo users, sync cursors and statuses, leases, OAuth
//! states.

use super::*;

impl ConnectionStore for DynamoStore {
    async fn get_connection(&self, tenant: &TenantId) -> StoreResult<Option<Connection>> {
        self.get(key(keys::tenant(tenant), keys::CONNECTION))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn save_connection(&self, connection: &Connection) -> StoreResult<Connection> {
        let t = &connection.tenant_id;
        let mut item = keyed(connection, keys::tenant(t), keys::CONNECTION)?;
        item.insert(GSI1_PK.into(), s(keys::status(connection.status)));
        item.insert(GSI1_SK.into(), s(keys::tenant(t)));
        let version = self.put_versioned(item, connection.version).await?;
        Ok(Connection {
            version,
            ..connection.clone()
        })
    }

    async fn tenants_with_status(
        &self,
        status: ConnectionStatus,
        page_token: Option<String>,
    ) -> StoreResult<Page<TenantId>> {
        let page: Page<Connection> = self.gsi_page(keys::status(status), page_token).await?;
        Ok(Page {
            items: page.items.into_iter().map(|c| c.tenant_id).collect(),
            next: page.next,
        })
    }

    async fn append_audit(&self, tenant: &TenantId, entry: &AuditEntry) -> StoreResult<()> {
        let item = keyed(entry, keys::tenant(tenant), keys::audit(entry.at))?;
        self.put_new(item, "PutItem (audit)").await
    }

    async fn audit_trail(&self, tenant: &TenantId) -> StoreResult<Vec<AuditEntry>> {
        self.query_partition(keys::tenant(tenant), Some("AUDIT#"))
            .await
    }
}

impl UserMappingStore for DynamoStore {
    async fn put_mapping(&self, tenant: &TenantId, mapping: &UserMapping) -> StoreResult<bool> {
        let item = keyed(
            mapping,
            keys::tenant(tenant),
            keys::user_mapping(&mapping.modjo_user_id),
        )?;
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if mapping.source == MappingSource::Auto {
            put = put
                .condition_expression("attribute_not_exists(pk) OR #source <> :manual")
                .expression_attribute_names("#source", "source")
                .expression_attribute_values(":manual", s("manual"));
        }
        let result = put
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (user mapping)", e));
        Ok(unless_conflict(result)?.is_some())
    }

    async fn get_mapping(
        &self,
        tenant: &TenantId,
        modjo_user_id: &str,
    ) -> StoreResult<Option<UserMapping>> {
        self.get(key(keys::tenant(tenant), keys::user_mapping(modjo_user_id)))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn get_mappings(
        &self,
        tenant: &TenantId,
        modjo_user_ids: &[String],
    ) -> StoreResult<Vec<UserMapping>> {
        let keys = modjo_user_ids
            .iter()
            .map(|id| key(keys::tenant(tenant), keys::user_mapping(id)))
            .collect();
        self.batch_get_as(keys, from_item).await
    }

    async fn list_mappings(&self, tenant: &TenantId) -> StoreResult<Vec<UserMapping>> {
        self.query_partition(keys::tenant(tenant), Some("USERMAP#"))
            .await
    }

    async fn replace_modjo_users(&self, tenant: &TenantId, users: &[ModjoUser]) -> StoreResult<()> {
        let keep: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        let mut requests = Vec::with_capacity(users.len());
        for old in self.modjo_users(tenant).await? {
            if !keep.contains(old.id.as_str()) {
                requests.push(delete_request(key(
                    keys::tenant(tenant),
                    keys::modjo_user(&old.id),
                ))?);
            }
        }
        for user in users {
            requests.push(put_request(keyed(
                user,
                keys::tenant(tenant),
                keys::modjo_user(&user.id),
            )?)?);
        }
        self.batch_write(requests).await
    }

    async fn modjo_users(&self, tenant: &TenantId) -> StoreResult<Vec<ModjoUser>> {
        self.query_partition(keys::tenant(tenant), Some(keys::MODJO_USER_PREFIX))
            .await
    }

    async fn delete_mapping(&self, tenant: &TenantId, modjo_user_id: &str) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::tenant(tenant),
                keys::user_mapping(modjo_user_id),
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| map_sdk_error("DeleteItem (user mapping)", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

impl CursorStore for DynamoStore {
    async fn get_cursor(&self, tenant: &TenantId, object: &str) -> StoreResult<Option<SyncCursor>> {
        self.get(key(keys::tenant(tenant), keys::cursor(object)))
            .await?
            .map(from_item)
            .transpose()
    }

    async fn put_cursor(&self, tenant: &TenantId, cursor: &SyncCursor) -> StoreResult<()> {
        let item = keyed(cursor, keys::tenant(tenant), keys::cursor(&cursor.object))?;
        self.put(item, "PutItem (cursor)").await
    }

    async fn get_replay_id(&self, tenant: &TenantId, topic: &str) -> StoreResult<Option<Vec<u8>>> {
        let Some(item) = self
            .get(key(keys::tenant(tenant), keys::replay(topic)))
            .await?
        else {
            return Ok(None);
        };
        match item.get("replayId") {
            Some(AttributeValue::B(b)) => Ok(Some(b.clone().into_inner())),
            _ => Err(StoreError::Corrupt(
                "replay id item without replayId".into(),
            )),
        }
    }

    async fn put_replay_id(
        &self,
        tenant: &TenantId,
        topic: &str,
        replay_id: &[u8],
    ) -> StoreResult<()> {
        let mut item = key(keys::tenant(tenant), keys::replay(topic));
        item.insert("topic".into(), s(topic));
        item.insert(
            "replayId".into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(replay_id.to_vec())),
        );
        item.insert("updatedAt".into(), s(Utc::now().to_rfc3339()));
        self.put(item, "PutItem (replay id)").await
    }

    async fn put_sync_status(&self, tenant: &TenantId, status: &SyncStatus) -> StoreResult<()> {
        let item = keyed(
            status,
            keys::tenant(tenant),
            keys::sync_status(&status.object),
        )?;
        self.put(item, "PutItem (sync status)").await
    }

    async fn sync_statuses(&self, tenant: &TenantId) -> StoreResult<Vec<SyncStatus>> {
        self.query_partition(keys::tenant(tenant), Some("SYNCSTATUS#"))
            .await
    }
}

impl LeaseStore for DynamoStore {
    async fn acquire_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Lease>> {
        let ttl = chrono::Duration::from_std(ttl)
            .map_err(|_| StoreError::Rejected("lease duration out of range".into()))?;
        let lease = Lease {
            name: name.to_string(),
            holder: holder.to_string(),
            expires_at: now + ttl,
        };
        let mut item = keyed(&lease, keys::tenant(tenant), keys::lease(name))?;
        item.insert("expiresAtMs".into(), n(lease.expires_at.timestamp_millis()));
        // Expired leases are cleaned up by DynamoDB a day later.
        item.insert(TTL.into(), n(lease.expires_at.timestamp() + 86_400));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR holder = :holder OR expiresAtMs < :now",
            )
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await
            .map_err(|e| map_sdk_error("PutItem (lease)", e));
        Ok(unless_conflict(result)?.map(|_| lease))
    }

    async fn release_lease(
        &self,
        tenant: &TenantId,
        name: &str,
        holder: &str,
    ) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::tenant(tenant), keys::lease(name))))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await
            .map_err(|e| map_sdk_error("DeleteItem (lease)", e));
        Ok(unless_conflict(result)?.is_some())
    }
}

impl OAuthStateStore for DynamoStore {
    async fn put_pending(
        &self,
        tenant: &TenantId,
        pending: &PendingAuthorization,
    ) -> StoreResult<()> {
        let mut item = keyed(pending, keys::tenant(tenant), keys::oauth(&pending.nonce))?;
        item.insert(TTL.into(), n(pending.expires_at.timestamp()));
        self.put_new(item, "PutItem (oauth state)").await
    }

    async fn take_pending(
        &self,
        tenant: &TenantId,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<PendingAuthorization>> {
        // Delete-and-return is atomic: of two concurrent callbacks, exactly one gets it.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(keys::tenant(tenant), keys::oauth(nonce))))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| map_sdk_error("DeleteItem (oauth state)", e));
        let Some(out) = unless_conflict(result)? else {
            return Ok(None);
        };
        let item = out.attributes.unwrap_or_default();
        let pending: PendingAuthorization = from_item(item)?;
        // TTL deletion is lazy (up to days): expiry is checked here, not left to it.
        Ok((pending.expires_at > now).then_some(pending))
    }
}
