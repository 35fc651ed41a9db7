//! The SOQL cursor path: each object read in `(SystemModstamp, Id)` order from
//! its cursor, a page's records and index entries written before its position is
//! saved, within the deadline and the tenant's API budget. Change Data Capture
//! falls back on it.

use super::*;

impl<'a, S: SyncStore, C: SalesforceSessions, Q: JobQueue> Syncer<'a, S, C, Q> {
    pub(super) async fn sync_object(
        &self,
        session: &C::Session,
        object: &SyncObject,
        phone_region: &str,
        stop_at: Instant,
    ) -> Result<ObjectRun, WorkError> {
        let tenant = session.tenant().clone();
        let store = self.store;
        let stored = store.get_cursor(&tenant, object.key).await?;
        let lookback = chrono::Duration::from_std(LOOKBACK).unwrap_or_default();
        let start = stored.as_ref().map(|c| {
            if c.caught_up && c.updated_at - c.system_modstamp < lookback {
                Position {
                    system_modstamp: c.system_modstamp - lookback,
                    id: String::new(),
                }
            } else {
                Position {
                    system_modstamp: c.system_modstamp,
                    id: c.last_id.clone(),
                }
            }
        });
        let query = object.keyset_query();
        let mut run = ObjectRun::default();
        if let Some(used_percent) = self.over_budget(&tenant) {
            run.stop = Some(Stop::Budget { used_percent });
            return Ok(run);
        }
        let mut pages = Box::pin(session.keyset_pages(query, start));
        while let Some(page) = pages.try_next().await? {
            run.read += page.records.len() as u64;
            let (written, deleted) = self
                .apply_page(&tenant, object, &page.records, phone_region)
                .await?;
            run.written += written;
            run.deleted += deleted;
            // Only now, with the page durably written, does the cursor move.
            let saved = match (&page.position, &stored) {
                (Some(position), _) => Some(SyncCursor {
                    object: object.key.to_string(),
                    system_modstamp: position.system_modstamp,
                    last_id: position.id.clone(),
                    updated_at: Utc::now(),
                    caught_up: page.done,
                }),
                // Nothing after a cut-short pass: it has now reached the end.
                (None, Some(c)) if page.done && !c.caught_up => Some(SyncCursor {
                    caught_up: true,
                    updated_at: Utc::now(),
                    ..c.clone()
                }),
                (None, _) => None,
            };
            if let Some(cursor) = saved {
                store.put_cursor(&tenant, &cursor).await?;
            }
            if page.done {
                break;
            }
            if let Some(used_percent) = self.over_budget(&tenant) {
                run.stop = Some(Stop::Budget { used_percent });
                break;
            }
            if Instant::now() >= stop_at {
                run.stop = Some(Stop::Deadline);
                break;
            }
        }
        Ok(run)
    }

    /// The live usage, when it is at or above the sync's pause threshold.
    pub(super) fn over_budget(&self, tenant: &TenantId) -> Option<u8> {
        let u = self.salesforce.fresh_usage(tenant)?;
        match decide(self.budget, Work::Sync, u.used, u.max) {
            BudgetDecision::Wait { used_percent, .. } => Some(used_percent),
            BudgetDecision::Proceed => None,
        }
    }

    /// Writes one page: upserts with their index entries (stale entries removed),
    /// deletions with theirs. Idempotent.
    pub(super) async fn apply_page(
        &self,
        tenant: &TenantId,
        object: &SyncObject,
        records: &[Map<String, Value>],
        phone_region: &str,
    ) -> Result<(u64, u64), WorkError> {
        let store = self.store;
        let ids: Vec<String> = records
            .iter()
            .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_string))
            .collect();
        let previous: HashMap<String, CrmRecord> = store
            .get_records(tenant, &ids)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        // Relations carry their email's summary onto the contact's timeline.
        let emails: HashMap<String, CrmRecord> =
            if object.key == objects::EMAIL_MESSAGE_RELATION.key {
                let email_ids: Vec<String> = records
                    .iter()
                    .filter_map(|r| {
                        r.get("EmailMessageId")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect();
                store
                    .get_records(tenant, &email_ids)
                    .await?
                    .into_iter()
                    .map(|r| (r.id.clone(), r))
                    .collect()
            } else {
                HashMap::new()
            };
        let mut changes = Vec::with_capacity(records.len());
        let (mut written, mut deleted) = (0, 0);
        for raw in records {
            let Some(id) = raw.get("Id").and_then(Value::as_str) else {
                continue;
            };
            let stored = previous.get(id);
            let previous_keys = stored.map(|r| r.index_keys.clone()).unwrap_or_default();
            if raw.get("IsDeleted") == Some(&Value::Bool(true)) {
                changes.push(RecordChange::Delete {
                    id: id.to_string(),
                    previous_keys,
                });
                deleted += 1;
                continue;
            }
            let email = raw
                .get("EmailMessageId")
                .and_then(Value::as_str)
                .and_then(|e| emails.get(e));
            match objects::derive(object, raw, phone_region, email) {
                // Read again (the look-back window) and unchanged: nothing to write.
                Some((record, _)) if stored.is_some_and(|s| same_record(s, &record)) => {}
                Some((record, index)) => {
                    changes.push(RecordChange::Upsert {
                        record,
                        index,
                        previous_keys,
                    });
                    written += 1;
                }
                None => {
                    tracing::warn!(tenant_id = %tenant, object = object.name, id, "record without SystemModstamp skipped")
                }
            }
        }
        let changes = crate::erase::tombstones::without_erased(store, tenant, changes).await?;
        store.apply_record_changes(tenant, &changes).await?;
        // Records Salesforce merged away or converted: their calls follow the
        // survivors (before the cursor moves past them).
        if REMATCH_ON.contains(&object.key) {
            let moved = survivors::survivors(object.name, records);
            survivors::follow_survivors(store, tenant, &moved).await?;
        }
        Ok((written, deleted))
    }
}

/// The same version of a record: same `SystemModstamp` and field values (numbers
/// compare by value: `12000` and `12000.0` are one amount).
fn same_record(stored: &CrmRecord, read: &CrmRecord) -> bool {
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Object(x), Value::Object(y)) => same_map(x, y),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
            }
            _ => a == b,
        }
    }
    fn same_map(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
        x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
    }
    stored.system_modstamp == read.system_modstamp && same_map(&stored.fields, &read.fields)
}

/// The SOQL cursor path, which Change Data Capture falls back on.
pub(super) struct CursorResync<'r, 'a, S, C: SalesforceSessions, Q> {
    pub(super) syncer: &'r Syncer<'a, S, C, Q>,
    pub(super) session: &'r C::Session,
    pub(super) phone_region: &'r str,
    pub(super) stop_at: Instant,
}

impl<S: SyncStore, C: SalesforceSessions, Q: JobQueue> Resync for CursorResync<'_, '_, S, C, Q> {
    async fn resync(&self, object: &SyncObject) -> Result<ObjectRun, WorkError> {
        self.syncer
            .sync_object(self.session, object, self.phone_region, self.stop_at)
            .await
    }
}
