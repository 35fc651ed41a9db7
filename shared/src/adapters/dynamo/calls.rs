//! Call outcomes, claims and the call listings: the stored form of an outcome
//! (claim expiry as a number, listings, message compressed) and [`CallStore`].

use super::*;

/// Which calls a page of the call listing keeps.
#[derive(Debug, Clone, Copy)]
enum ListFilter<'a> {
    State(CallState),
    /// Unmatched, or matched among several candidates, and not linked by hand.
    NeedsAttention,
    /// Linked (Who or What) to one of these records.
    LinkedTo(&'a [String]),
}

impl DynamoStore {
    /// One page of the tenant's calls by last update, newest first, filtered.
    async fn call_listing_page(
        &self,
        tenant: &TenantId,
        filter: Option<ListFilter<'_>>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        let limit = limit.max(1);
        let listing = keys::calls(tenant);
        let own_prefix = keys::call(tenant, "");
        let mut start = cursor.map(|t| decode_page_token(&t)).transpose()?;
        // A cursor is this listing's key, of this tenant, or nothing.
        if let Some(k) = &start {
            let text = |name: &str| match k.get(name) {
                Some(AttributeValue::S(v)) => v.as_str(),
                _ => "",
            };
            if k.len() != 4
                || text(GSI2_PK) != listing
                || !text(PK).starts_with(&own_prefix)
                || text(SK) != keys::OUTCOME
                || text(GSI2_SK).is_empty()
            {
                return Err(StoreError::Rejected("invalid page token".into()));
            }
        }
        let mut found: Vec<Item> = Vec::with_capacity(limit);
        for _ in 0..MAX_LIST_READS {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI2)
                .key_condition_expression("gsi2pk = :g")
                .expression_attribute_values(":g", s(listing.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX));
            match filter {
                Some(ListFilter::State(state)) => {
                    q = q
                        .filter_expression("#state = :state")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":state", s(state.as_str()));
                }
                Some(ListFilter::LinkedTo(ids)) => {
                    let names: Vec<String> = (0..ids.len()).map(|i| format!(":r{i}")).collect();
                    let list = names.join(", ");
                    q = q.filter_expression(format!("whoId IN ({list}) OR whatId IN ({list})"));
                    for (name, id) in names.into_iter().zip(ids) {
                        q = q.expression_attribute_values(name, s(id.clone()));
                    }
                }
                Some(ListFilter::NeedsAttention) => {
                    q = q
                        .filter_expression(
                            "(#state = :unmatched OR attribute_exists(candidates)) \
                             AND attribute_not_exists(linkedByHand)",
                        )
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":unmatched", s("unmatched"));
                }
                None => {}
            }
            let out = q
                .send()
                .await
                .map_err(|e| map_sdk_error("Query (gsi2)", e))?;
            found.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if found.len() >= limit || start.is_none() {
                break;
            }
        }
        // Full page: the next one starts after its last call (it may be empty).
        // Short page: after the last key read, when the index goes on.
        let next = match (found.len() >= limit, found.last(), &start) {
            (true, Some(last), _) => Some(listing_key(last)),
            (_, _, Some(k)) => Some(k.clone()),
            _ => None,
        };
        let items = found
            .into_iter()
            .take(limit)
            .map(outcome_from_item)
            .collect::<StoreResult<_>>()?;
        Ok(Page {
            items,
            next: next.map(|k| encode_page_token(&k)).transpose()?,
        })
    }
}

/// The stored form of a call outcome: its keys, the claim expiry as a number, the
/// listings it belongs to (`gsi1` while it waits or has comments to show, always
/// `gsi2`: the tenant's calls by last update), the message compressed. Every write
/// of a whole outcome builds its item here.
pub(super) fn outcome_item(tenant: &TenantId, outcome: &CallOutcome) -> StoreResult<Item> {
    let mut item = keyed(outcome, keys::call(tenant, &outcome.call_id), keys::OUTCOME)?;
    if let Some(until) = outcome.claimed_until {
        item.insert(CLAIMED_UNTIL_MS.into(), n(until.timestamp_millis()));
    }
    if let Some(expires) = outcome.expires_at {
        item.insert(TTL.into(), n(expires.timestamp()));
    }
    // One gsi1 listing at a time, the most urgent: a call whose comments wait is
    // listed for re-matching again once they are shown.
    let listed_under = if outcome.state == CallState::Waiting {
        Some((keys::waiting(tenant), outcome.call_id.clone()))
    } else if outcome.comments_pending {
        Some((keys::pending_comments(tenant), outcome.call_id.clone()))
    } else {
        match outcome.started_at {
            Some(started) if outcome.can_improve() => Some((
                keys::rematch(tenant),
                keys::rematch_listing(started, &outcome.call_id),
            )),
            _ => None,
        }
    };
    if let Some((gsi_pk, gsi_sk)) = listed_under {
        item.insert(GSI1_PK.into(), s(gsi_pk));
        item.insert(GSI1_SK.into(), s(gsi_sk));
    }
    // Always in the tenant's calls by last update (the settings page's Calls tab).
    item.insert(GSI2_PK.into(), s(keys::calls(tenant)));
    item.insert(
        GSI2_SK.into(),
        s(keys::call_listing(outcome.updated_at, &outcome.call_id)),
    );
    if let Some(message) = outcome.message.as_deref() {
        if message.len() > COMPRESS_MESSAGE_OVER {
            item.remove("message");
            item.insert(
                MESSAGE_GZ.into(),
                AttributeValue::B(Blob::new(gzip(message)?)),
            );
        }
    }
    Ok(item)
}

pub(super) fn outcome_from_item(mut item: Item) -> StoreResult<CallOutcome> {
    let compressed = item.remove(MESSAGE_GZ);
    let mut outcome: CallOutcome = from_item(item)?;
    if let Some(AttributeValue::B(blob)) = compressed {
        outcome.message = Some(gunzip(blob.as_ref())?);
    }
    Ok(outcome)
}

pub(super) const CLAIMED_UNTIL_MS: &str = "claimedUntilMs";
pub(super) const MESSAGE_GZ: &str = "messageGz";

pub(super) fn gzip(text: &str) -> StoreResult<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(text.as_bytes())
        .and_then(|()| encoder.finish())
        .map_err(|e| StoreError::Rejected(format!("cannot compress a message: {e}")))
}

pub(super) fn gunzip(bytes: &[u8]) -> StoreResult<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_MESSAGE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| StoreError::Corrupt(format!("a stored message does not decompress: {e}")))?;
    Ok(text)
}

/// A claim on a call that is not final and not held by a live claim.
pub(super) fn claim_action(
    table: &str,
    tenant: &TenantId,
    claim: &CallClaim,
    now: DateTime<Utc>,
) -> StoreResult<TransactWriteItem> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key(keys::call(tenant, &claim.call_id), keys::OUTCOME)))
        .update_expression(
            "SET #state = :in_progress, claimedUntil = :until, claimedUntilMs = :until_ms, \
             updatedAt = :now, callId = :call_id, version = :version, \
             gsi2pk = :listing, gsi2sk = :listing_sk REMOVE gsi1pk, gsi1sk",
        )
        .condition_expression(
            "attribute_not_exists(pk) OR (NOT #state IN (:created, :enriched, :unmatched) \
             AND (#state <> :in_progress OR attribute_not_exists(claimedUntilMs) OR claimedUntilMs < :now_ms))",
        )
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":in_progress", s("in_progress"))
        .expression_attribute_values(":created", s("created"))
        .expression_attribute_values(":enriched", s("enriched"))
        .expression_attribute_values(":unmatched", s("unmatched"))
        .expression_attribute_values(":until", s(rfc3339(claim.until)))
        .expression_attribute_values(":until_ms", n(claim.until.timestamp_millis()))
        .expression_attribute_values(":now", s(rfc3339(now)))
        .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
        .expression_attribute_values(":call_id", s(claim.call_id.clone()))
        .expression_attribute_values(":version", n(claim.version as i64))
        .expression_attribute_values(":listing", s(keys::calls(tenant)))
        .expression_attribute_values(":listing_sk", s(keys::call_listing(now, &claim.call_id)))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(|e| StoreError::Rejected(format!("claim: {e}")))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// What a failed claim condition found: a final call, or another's live claim.
pub(super) fn claim_refused(item: Option<Item>, now: DateTime<Utc>) -> StoreResult<ClaimResult> {
    let item =
        item.ok_or_else(|| StoreError::Corrupt("a refused claim came without its item".into()))?;
    let outcome = outcome_from_item(item)?;
    if outcome.is_final() {
        return Ok(ClaimResult::Final(Box::new(outcome)));
    }
    Ok(ClaimResult::Busy {
        until: outcome.claimed_until.filter(|u| *u > now).unwrap_or(now),
    })
}

impl CallStore for DynamoStore {
    async fn get_outcome(
        &self,
        tenant: &TenantId,
        call_id: &str,
    ) -> StoreResult<Option<CallOutcome>> {
        self.get(key(keys::call(tenant, call_id), keys::OUTCOME))
            .await?
            .map(outcome_from_item)
            .transpose()
    }

    async fn get_outcomes(
        &self,
        tenant: &TenantId,
        call_ids: &[String],
    ) -> StoreResult<Vec<CallOutcome>> {
        let keys = call_ids
            .iter()
            .map(|c| key(keys::call(tenant, c), keys::OUTCOME))
            .collect();
        self.batch_get_as(keys, outcome_from_item).await
    }

    async fn save_outcome(
        &self,
        tenant: &TenantId,
        outcome: &CallOutcome,
    ) -> StoreResult<CallOutcome> {
        let version = self
            .put_versioned(outcome_item(tenant, outcome)?, outcome.version)
            .await?;
        Ok(CallOutcome {
            version,
            ..outcome.clone()
        })
    }

    async fn save_outcomes(
        &self,
        tenant: &TenantId,
        outcomes: &[CallOutcome],
    ) -> StoreResult<Vec<StoreResult<CallOutcome>>> {
        once_each(outcomes.iter().map(|o| o.call_id.as_str()), |id| {
            format!("call {id} appears twice in one outcome write")
        })?;
        let actions = outcomes
            .iter()
            .map(|o| versioned_put(&self.table, outcome_item(tenant, o)?, o.version))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(self
            .transact_each(
                "TransactWriteItems (outcomes)",
                actions,
                |i| CallOutcome {
                    version: outcomes[i].version + 1,
                    ..outcomes[i].clone()
                },
                |i, _| {
                    Err(StoreError::Conflict(format!(
                        "the outcome of {} changed meanwhile",
                        outcomes[i].call_id
                    )))
                },
            )
            .await)
    }

    async fn claim_calls(
        &self,
        tenant: &TenantId,
        claims: &[CallClaim],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<StoreResult<ClaimResult>>> {
        once_each(claims.iter().map(|c| c.call_id.as_str()), |id| {
            format!("call {id} is claimed twice in one request")
        })?;
        let actions = claims
            .iter()
            .map(|c| claim_action(&self.table, tenant, c, now))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(self
            .transact_each(
                "TransactWriteItems (claims)",
                actions,
                |_| ClaimResult::Claimed,
                |_, item| claim_refused(item, now),
            )
            .await)
    }

    async fn recent_calls(
        &self,
        tenant: &TenantId,
        state: Option<CallState>,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.call_listing_page(tenant, state.map(ListFilter::State), limit, cursor)
            .await
    }

    async fn calls_linked_to(
        &self,
        tenant: &TenantId,
        record_ids: &[String],
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        if record_ids.is_empty() || record_ids.len() > crate::ports::MAX_LINKED_IDS {
            return Err(StoreError::Rejected(format!(
                "1 to {} record ids per listing",
                crate::ports::MAX_LINKED_IDS
            )));
        }
        self.call_listing_page(
            tenant,
            Some(ListFilter::LinkedTo(record_ids)),
            crate::ports::MAX_CALLS_PAGE,
            cursor,
        )
        .await
    }

    async fn calls_needing_attention(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.call_listing_page(tenant, Some(ListFilter::NeedsAttention), limit, cursor)
            .await
    }

    async fn waiting_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.gsi_page_with(keys::waiting(tenant), page_token, outcome_from_item)
            .await
    }

    async fn pending_comment_calls(
        &self,
        tenant: &TenantId,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        self.gsi_page_with(
            keys::pending_comments(tenant),
            page_token,
            outcome_from_item,
        )
        .await
    }

    async fn rematch_calls(
        &self,
        tenant: &TenantId,
        started_since: DateTime<Utc>,
        limit: usize,
        page_token: Option<String>,
    ) -> StoreResult<Page<CallOutcome>> {
        let listing = keys::rematch(tenant);
        let start = page_token.map(|t| decode_page_token(&t)).transpose()?;
        if let Some(k) = &start {
            let text = |name: &str| match k.get(name) {
                Some(AttributeValue::S(v)) => v.as_str(),
                _ => "",
            };
            if text(GSI1_PK) != listing || !text(PK).starts_with(&keys::call(tenant, "")) {
                return Err(StoreError::Rejected("invalid page token".into()));
            }
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("gsi1pk = :g AND gsi1sk >= :since")
            .expression_attribute_values(":g", s(listing))
            .expression_attribute_values(":since", s(rfc3339_millis(started_since)))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| map_sdk_error("Query (gsi1 re-match)", e))?;
        page_of(out.items, out.last_evaluated_key, outcome_from_item)
    }
}
