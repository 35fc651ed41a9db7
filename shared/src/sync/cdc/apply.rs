//! Applying a batch of change events to the stored records and their index
//! entries: creates and updates merged field by field, deletes, and the records
//! read again by id when an event cannot be applied on its own (gaps, overflow).

use super::*;

impl<S: ErasureStore + RecordStore, C: SalesforceApi, R: Resync> Drain<'_, S, C, R> {
    /// Applies a batch of events to the stored records and their index entries.
    /// `false` when a re-sync (GAP_OVERFLOW, or an event that could not be read)
    /// stopped before the end.
    pub(super) async fn apply(
        &self,
        events: &[ChangeEvent],
        resync: bool,
        run: &mut CdcRun,
    ) -> Result<bool, CdcFailure> {
        let tenant = self.session.tenant().clone();
        // Too many changes for the bus (GAP_OVERFLOW), changes to every record at
        // once (a wildcard id such as `006*`, from a custom field's type
        // conversion), or changes we cannot read: the object is read again
        // through its cursor instead of applying the batch.
        let overflow = events.iter().any(|e| {
            e.change_type == ChangeType::GapOverflow
                || !e.record_ids.iter().all(|id| is_record_id(id))
        });
        if resync || overflow {
            let resynced = self.resync.resync(self.object).await?;
            run.resynced = true;
            run.totals.add(&resynced);
            if resynced.stop.is_some() {
                return Ok(false);
            }
            // The re-sync read every record the batch touched as it is now (so
            // an older event of the batch must not be replayed over it), except
            // records deleted for good, which queryAll no longer returns.
            let mut deleted: Vec<String> = events
                .iter()
                .filter(|e| matches!(e.change_type, ChangeType::Delete | ChangeType::GapDelete))
                .flat_map(|e| e.record_ids.iter().filter(|id| is_record_id(id)).cloned())
                .collect();
            deleted.sort_unstable();
            deleted.dedup();
            self.drop_if_gone(&deleted, run).await?;
            return Ok(true);
        }
        let mut ids: Vec<String> = events
            .iter()
            .flat_map(|e| e.record_ids.iter().cloned())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // The state of each record as the batch goes (events apply in order).
        let mut current: HashMap<String, Option<Derived>> = self
            .store
            .get_records(&tenant, &ids)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), Some((r, None))))
            .collect();
        let previous_keys: HashMap<String, Vec<IndexKey>> = current
            .iter()
            .filter_map(|(id, r)| r.as_ref().map(|(r, _)| (id.clone(), r.index_keys.clone())))
            .collect();
        let mut reread: Vec<String> = Vec::new();
        for event in events {
            for id in &event.record_ids {
                let key = id.clone();
                match event.change_type {
                    ChangeType::Delete => {
                        current.insert(key, None);
                    }
                    // What is stored is newer (a re-sync read it): the event is history.
                    ChangeType::Create | ChangeType::Update
                        if current
                            .get(&key)
                            .and_then(Option::as_ref)
                            .is_some_and(|(r, _)| r.system_modstamp > event.commit_timestamp) => {}
                    ChangeType::Create => {
                        let raw = self.raw_record(id, event.commit_timestamp, &event.values, None);
                        current.insert(key, self.derive(&raw));
                    }
                    ChangeType::Update => match current
                        .get(&key)
                        .and_then(Option::as_ref)
                        .map(|(r, _)| r.fields.clone())
                    {
                        Some(stored) => {
                            let mut values = Map::new();
                            for field in event
                                .changed
                                .iter()
                                .filter(|f| self.object.fields.contains(&f.as_str()))
                            {
                                let v = if event.nulled.contains(field) {
                                    Value::Null
                                } else {
                                    event.values.get(field).cloned().unwrap_or(Value::Null)
                                };
                                values.insert(field.clone(), v);
                            }
                            let raw =
                                self.raw_record(id, event.commit_timestamp, &values, Some(&stored));
                            current.insert(key, self.derive(&raw));
                        }
                        // Not stored yet: read it whole.
                        None => reread.push(id.clone()),
                    },
                    ChangeType::GapOverflow => {}
                    _ => reread.push(id.clone()),
                }
            }
        }
        run.totals.read += ids.len() as u64;
        if !reread.is_empty() {
            reread.sort_unstable();
            reread.dedup();
            run.reread += reread.len() as u64;
            let rows = self.read_records(&reread).await?;
            for (id, raw) in reread_states(&reread, rows) {
                current.insert(id, raw.and_then(|raw| self.derive(&raw)));
            }
        }
        let mut changes = Vec::new();
        for (id, state) in current {
            let previous = previous_keys.get(&id).cloned().unwrap_or_default();
            match state {
                Some((record, index)) => {
                    // Derived already, unless no event of the batch changed it.
                    let index = index.unwrap_or_else(|| {
                        objects::derive(self.object, &rest_form(&record), self.phone_region, None)
                            .map(|(_, i)| i)
                            .unwrap_or_default()
                    });
                    changes.push(RecordChange::Upsert {
                        record,
                        index,
                        previous_keys: previous,
                    });
                    run.totals.written += 1;
                }
                None if previous_keys.contains_key(&id) => {
                    changes.push(RecordChange::Delete {
                        id,
                        previous_keys: previous,
                    });
                    run.totals.deleted += 1;
                }
                None => {}
            }
        }
        let changes =
            crate::erase::tombstones::without_erased(self.store, &tenant, changes).await?;
        self.store.apply_record_changes(&tenant, &changes).await?;
        Ok(true)
    }

    /// Removes from the store those of `ids` that Salesforce no longer has.
    pub(super) async fn drop_if_gone(
        &self,
        ids: &[String],
        run: &mut CdcRun,
    ) -> Result<(), CdcFailure> {
        if ids.is_empty() {
            return Ok(());
        }
        let tenant = self.session.tenant();
        run.reread += ids.len() as u64;
        let rows = self.read_records(ids).await?;
        let gone: Vec<String> = reread_states(ids, rows)
            .into_iter()
            .filter_map(|(id, state)| state.is_none().then_some(id))
            .collect();
        let changes: Vec<RecordChange> = self
            .store
            .get_records(tenant, &gone)
            .await?
            .into_iter()
            .map(|r| RecordChange::Delete {
                id: r.id,
                previous_keys: r.index_keys,
            })
            .collect();
        run.totals.deleted += changes.len() as u64;
        self.store.apply_record_changes(tenant, &changes).await?;
        Ok(())
    }

    /// A record as a REST query returns it: our fields only, Id and SystemModstamp.
    pub(super) fn raw_record(
        &self,
        id: &str,
        at: DateTime<Utc>,
        values: &Map<String, Value>,
        base: Option<&Map<String, Value>>,
    ) -> Map<String, Value> {
        let mut raw = base.cloned().unwrap_or_default();
        for (k, v) in values {
            if self.object.fields.contains(&k.as_str()) {
                raw.insert(k.clone(), v.clone());
            }
        }
        raw.insert("Id".into(), Value::String(id.to_string()));
        raw.insert(
            "SystemModstamp".into(),
            Value::String(at.format("%Y-%m-%dT%H:%M:%S.000+0000").to_string()),
        );
        raw.insert("IsDeleted".into(), Value::Bool(false));
        raw
    }

    pub(super) fn derive(&self, raw: &Map<String, Value>) -> Option<Derived> {
        objects::derive(self.object, raw, self.phone_region, None).map(|(r, i)| (r, Some(i)))
    }

    /// Reads records by id through REST (queryAll, so deletions show).
    pub(super) async fn read_records(
        &self,
        ids: &[String],
    ) -> Result<Vec<Map<String, Value>>, CdcFailure> {
        let mut out = Vec::new();
        for chunk in ids.chunks(300) {
            let select = Select::new(self.object.name, self.object.fields)
                .filter(Cond::is_in("Id", chunk.iter().cloned()));
            out.extend(self.session.query_select(&select, true).await?);
        }
        Ok(out)
    }
}

/// What each record read again by id now is: its row, or `None` when it is
/// deleted, including when queryAll no longer returns it at all (purged from the
/// recycle bin).
fn reread_states(
    asked: &[String],
    rows: Vec<Map<String, Value>>,
) -> HashMap<String, Option<Map<String, Value>>> {
    let mut states: HashMap<String, Option<Map<String, Value>>> =
        asked.iter().map(|id| (id18(id), None)).collect();
    for row in rows {
        let Some(id) = row.get("Id").and_then(Value::as_str).map(id18) else {
            continue;
        };
        let live = row.get("IsDeleted") != Some(&Value::Bool(true));
        states.insert(id, live.then_some(row));
    }
    states
}

/// A record and its index entries, once derived (a record only loaded from the
/// store has none yet).
type Derived = (CrmRecord, Option<Vec<IndexEntry>>);

/// A stored record back in REST form, for index derivation.
fn rest_form(record: &CrmRecord) -> Map<String, Value> {
    let mut raw = record.fields.clone();
    raw.insert("Id".into(), Value::String(record.id.clone()));
    raw.insert(
        "SystemModstamp".into(),
        Value::String(
            record
                .system_modstamp
                .format("%Y-%m-%dT%H:%M:%S.000+0000")
                .to_string(),
        ),
    );
    raw
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn records_read_again_are_live_deleted_or_gone() {
        let live = "006000000000001AAA".to_string();
        let deleted = "006000000000002AAA".to_string();
        let purged = "006000000000003AAA".to_string();
        let states = reread_states(
            &[live.clone(), deleted.clone(), purged.clone()],
            vec![
                row(json!({"Id": live, "Name": "Live", "IsDeleted": false})),
                row(json!({"Id": deleted, "Name": "Binned", "IsDeleted": true})),
            ],
        );
        assert_eq!(states.len(), 3);
        assert_eq!(
            states[&live].as_ref().map(|r| r["Name"].clone()),
            Some(json!("Live"))
        );
        assert_eq!(states[&deleted], None);
        assert_eq!(states[&purged], None, "not returned by queryAll: gone");
    }

    #[test]
    fn ids_are_matched_in_their_18_character_form() {
        let states = reread_states(
            &["006000000000001".to_string()],
            vec![row(json!({"Id": "006000000000001AAA", "IsDeleted": false}))],
        );
        assert_eq!(states.len(), 1);
        assert!(states["006000000000001AAA"].is_some());
    }
}
