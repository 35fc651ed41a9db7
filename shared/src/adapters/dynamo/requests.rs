//! The requests the ports are built from: single and versioned writes, reads,
//! partition and index queries, batches (their unprocessed items retried), and
//! transactions cut to DynamoDB's limits and settled action by action.

use super::*;

impl DynamoStore {
    /// An unconditional write.
    pub(super) async fn put(&self, item: Item, operation: &str) -> StoreResult<()> {
        self.put_if(item, None, operation).await
    }

    /// A write of an item that must not exist yet: [`StoreError::Conflict`] if it does.
    pub(super) async fn put_new(&self, item: Item, operation: &str) -> StoreResult<()> {
        self.put_if(item, Some("attribute_not_exists(pk)"), operation)
            .await
    }

    async fn put_if(
        &self,
        item: Item,
        condition: Option<&str>,
        operation: &str,
    ) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .send()
            .await
            .map_err(|e| map_sdk_error(operation, e))?;
        Ok(())
    }

    pub(super) async fn get(&self, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_sdk_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Writes `item` if the stored `version` equals `expected` (0: the item must not exist).
    pub(super) async fn put_versioned(&self, mut item: Item, expected: u64) -> StoreResult<u64> {
        let next = expected + 1;
        item.insert("version".into(), n(next as i64));
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(expected as i64))
        };
        put.send()
            .await
            .map_err(|e| map_sdk_error("PutItem (versioned)", e))?;
        Ok(next)
    }

    /// All items of one partition (optionally with a sort key prefix), following
    /// pages, decoded.
    pub(super) async fn query_partition<T: DeserializeOwned>(
        &self,
        pk: String,
        sk_prefix: Option<&str>,
    ) -> StoreResult<Vec<T>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk.clone()))
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(prefix) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.map_err(|e| map_sdk_error("Query", e))?;
            for item in out.items.unwrap_or_default() {
                items.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// One page of the GSI under `gsi_pk`, decoded.
    pub(super) async fn gsi_page<T: DeserializeOwned>(
        &self,
        gsi_pk: String,
        page_token: Option<String>,
    ) -> StoreResult<Page<T>> {
        self.gsi_page_with(gsi_pk, page_token, from_item).await
    }

    /// One page of the GSI under `gsi_pk`, each item decoded by `decode`.
    pub(super) async fn gsi_page_with<T>(
        &self,
        gsi_pk: String,
        page_token: Option<String>,
        decode: fn(Item) -> StoreResult<T>,
    ) -> StoreResult<Page<T>> {
        let start = page_token.map(|t| decode_page_token(&t)).transpose()?;
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :g")
            .expression_attribute_values(":g", s(gsi_pk))
            .set_exclusive_start_key(start)
            .limit(self.page_size)
            .send()
            .await
            .map_err(|e| map_sdk_error("Query (gsi1)", e))?;
        page_of(out.items, out.last_evaluated_key, decode)
    }

    /// Writes every request with BatchWriteItem, 25 at a time, several batches in
    /// flight, retrying unprocessed items with back-off. Requests for the same key
    /// collapse to the last one (DynamoDB refuses duplicates within a batch).
    pub(super) async fn batch_write(&self, requests: Vec<(Item, WriteRequest)>) -> StoreResult<()> {
        let mut seen = HashSet::new();
        let mut unique: Vec<WriteRequest> = Vec::with_capacity(requests.len());
        for (key, request) in requests.into_iter().rev() {
            if seen.insert(key_signature(&key)) {
                unique.push(request);
            }
        }
        unique.reverse();
        let chunks: Vec<Vec<WriteRequest>> = unique
            .chunks(WRITE_BATCH)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        futures::stream::iter(chunks)
            .map(|chunk| self.write_chunk(chunk))
            .buffer_unordered(WRITE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    pub(super) async fn write_chunk(&self, mut pending: Vec<WriteRequest>) -> StoreResult<()> {
        for attempt in 0..MAX_BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| map_sdk_error("BatchWriteItem", e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(format!(
            "BatchWriteItem: {} items still unprocessed after {MAX_BATCH_ATTEMPTS} attempts",
            pending.len()
        )))
    }

    /// Reads items by key with BatchGetItem, 100 at a time, retrying unprocessed keys.
    /// The items of `keys` that exist, each decoded.
    pub(super) async fn batch_get_as<T>(
        &self,
        keys: Vec<Item>,
        decode: impl FnMut(Item) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.batch_get(keys)
            .await?
            .into_iter()
            .map(decode)
            .collect()
    }

    pub(super) async fn batch_get(&self, keys: Vec<Item>) -> StoreResult<Vec<Item>> {
        let mut seen = HashSet::new();
        let unique: Vec<Item> = keys
            .into_iter()
            .filter(|k| seen.insert(key_signature(k)))
            .collect();
        let mut found = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(GET_BATCH) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Rejected(format!("BatchGetItem: {e}")))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                if attempt > 0 {
                    tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
                }
                if attempt >= MAX_BATCH_ATTEMPTS {
                    return Err(StoreError::Unavailable(
                        "BatchGetItem: keys still unprocessed after retries".into(),
                    ));
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("BatchGetItem", e))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
            }
        }
        Ok(found)
    }
}

impl DynamoStore {
    /// Sends `actions` as few TransactWriteItems as their count and size allow.
    /// An action whose own condition fails is settled by `on_check_failed` (given the
    /// item as it was); one cancelled for another's sake is sent again in the next
    /// round. One result per action, in order.
    pub(super) async fn transact_each<T>(
        &self,
        operation: &str,
        actions: Vec<TransactWriteItem>,
        landed: impl Fn(usize) -> T,
        on_check_failed: impl Fn(usize, Option<Item>) -> StoreResult<T>,
    ) -> Vec<StoreResult<T>> {
        let sizes: Vec<usize> = actions.iter().map(action_size).collect();
        let mut results: Vec<Option<StoreResult<T>>> = (0..actions.len()).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..actions.len()).collect();
        for attempt in 0..MAX_TX_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Backoff::STORE.delay(attempt)).await;
            }
            let mut again = Vec::new();
            for chunk in tx_chunks(&pending, &sizes) {
                let items: Vec<TransactWriteItem> =
                    chunk.iter().map(|&i| actions[i].clone()).collect();
                for (&i, action) in chunk.iter().zip(self.transact(operation, items).await) {
                    match action {
                        Ok(None) => results[i] = Some(Ok(landed(i))),
                        Ok(Some(TxCancel::CheckFailed(item))) => {
                            results[i] = Some(on_check_failed(i, item))
                        }
                        Ok(Some(TxCancel::Again)) => again.push(i),
                        Err(e) => results[i] = Some(Err(e)),
                    }
                }
            }
            pending = again;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StoreError::Unavailable(format!(
                        "{operation}: still cancelled by conflicting transactions after {MAX_TX_ATTEMPTS} rounds"
                    )))
                })
            })
            .collect()
    }

    /// One TransactWriteItems: per action, `None` when it landed, else why it was cancelled.
    pub(super) async fn transact(
        &self,
        operation: &str,
        items: Vec<TransactWriteItem>,
    ) -> Vec<StoreResult<Option<TxCancel>>> {
        let n = items.len();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return (0..n).map(|_| Ok(None)).collect(),
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            if reasons.len() == n {
                return reasons.iter().map(|r| Ok(Some(TxCancel::of(r)))).collect();
            }
        }
        let e = map_sdk_error(operation, err);
        (0..n)
            .map(|_| match &e {
                // Throttling or a conflict of the whole: every action goes again.
                StoreError::Unavailable(_) | StoreError::Conflict(_) => Ok(Some(TxCancel::Again)),
                other => Err(StoreError::Rejected(other.to_string())),
            })
            .collect()
    }
}

/// Why one action of a cancelled transaction did not land.
pub(super) enum TxCancel {
    /// Its own condition failed; the item as it was, when asked for.
    CheckFailed(Option<Item>),
    /// Cancelled for another action's sake, or by a conflicting transaction or throttling.
    Again,
}

impl TxCancel {
    fn of(reason: &CancellationReason) -> Self {
        match reason.code() {
            Some("ConditionalCheckFailed") => TxCancel::CheckFailed(reason.item().cloned()),
            _ => TxCancel::Again,
        }
    }
}

/// Splits action indexes into transactions within DynamoDB's count and size limits.
pub(super) fn tx_chunks(pending: &[usize], sizes: &[usize]) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for &i in pending {
        let fits = chunks
            .last()
            .is_some_and(|c| c.len() < TX_ITEMS && bytes + sizes[i] <= TX_BYTES);
        if !fits {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += sizes[i];
        if let Some(last) = chunks.last_mut() {
            last.push(i);
        }
    }
    chunks
}

/// DynamoDB's size of an item: attribute names plus values.
pub(super) fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

pub(super) fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(l) | AttributeValue::Ns(l) => l.iter().map(String::len).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::M(m) => 3 + item_size(m),
        AttributeValue::L(l) => 3 + l.iter().map(value_size).sum::<usize>(),
        _ => 1,
    }
}

pub(super) fn action_size(action: &TransactWriteItem) -> usize {
    let values = |m: Option<&Item>| m.map_or(0, item_size);
    if let Some(put) = action.put() {
        return item_size(put.item()) + values(put.expression_attribute_values());
    }
    if let Some(update) = action.update() {
        return item_size(update.key()) + values(update.expression_attribute_values());
    }
    512
}

/// A versioned write of an outcome, as [`DynamoStore::put_versioned`] does alone.
pub(super) fn versioned_put(
    table: &str,
    mut item: Item,
    expected: u64,
) -> StoreResult<TransactWriteItem> {
    item.insert("version".into(), n(expected as i64 + 1));
    let put = Put::builder().table_name(table).set_item(Some(item));
    let put = if expected == 0 {
        put.condition_expression("attribute_not_exists(pk)")
    } else {
        put.condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", n(expected as i64))
    };
    let put = put
        .build()
        .map_err(|e| StoreError::Rejected(format!("outcome: {e}")))?;
    Ok(TransactWriteItem::builder().put(put).build())
}
