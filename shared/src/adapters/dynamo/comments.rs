//! Comments and each call's comment state ([`CommentStore`]).

use super::*;

impl CommentStore for DynamoStore {
    async fn upsert_comment(
        &self,
        tenant: &TenantId,
        comment: &StoredComment,
    ) -> StoreResult<bool> {
        let mut item = keyed(
            comment,
            keys::call(tenant, &comment.call_id),
            keys::comment(&comment.comment_id),
        )?;
        let updated_ms = n(comment.updated_at.timestamp_millis());
        item.insert("updatedAtMs".into(), updated_ms.clone());
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR updatedAtMs < :u")
            .expression_attribute_values(":u", updated_ms)
            .build()
            .map_err(|e| StoreError::Rejected(format!("comment: {e}")))?;
        let raise = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                keys::call(tenant, &comment.call_id),
                keys::COMMENT_STATE,
            )))
            .update_expression("ADD version :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::Rejected(format!("comment state: {e}")))?;
        let actions = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(raise).build(),
        ];
        // The comment and its state move together: both land, or neither.
        for attempt in 0..MAX_TX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
            }
            let results = self
                .transact("TransactWriteItems (comment)", actions.clone())
                .await;
            match results.into_iter().next() {
                Some(Ok(None)) => return Ok(true),
                // A version with the same or a newer `updatedAt` is stored.
                Some(Ok(Some(TxCancel::CheckFailed(_)))) => return Ok(false),
                Some(Ok(Some(TxCancel::Again))) => continue,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Err(StoreError::Unavailable(
            "TransactWriteItems (comment): still cancelled by conflicting transactions".into(),
        ))
    }

    async fn comments_for_call(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> StoreResult<Vec<StoredComment>> {
        self.query_partition(keys::call(tenant, call_id), Some("COMMENT#"))
            .await
    }

    async fn comment_versions(
        &self,
        tenant: &TenantId,
        call_ids: &[String],
    ) -> StoreResult<HashMap<String, u64>> {
        let prefix = keys::call(tenant, "");
        let keys = call_ids
            .iter()
            .map(|c| key(keys::call(tenant, c), keys::COMMENT_STATE))
            .collect();
        let mut versions = HashMap::new();
        for item in self.batch_get(keys).await? {
            let call = match item.get(PK) {
                Some(AttributeValue::S(pk)) => pk.strip_prefix(&prefix).map(str::to_string),
                _ => None,
            };
            let version = match item.get("version") {
                Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
                _ => None,
            };
            match (call, version) {
                (Some(call), Some(version)) => {
                    versions.insert(call, version);
                }
                _ => {
                    return Err(StoreError::Corrupt(
                        "a comment state without its version".into(),
                    ));
                }
            }
        }
        Ok(versions)
    }
}
