//! Writes through a [`Session`]: single records, sObject Collections (200 per
//! request), composite requests, and conditional updates.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::{Request, Session, checked_id, checked_name, decode};
use super::counters::ApiKind;
use crate::ports::{AccessRefusals, LeaseStore, SalesforceWrites, SecretStore};
use crate::salesforce::error::SalesforceError;
use crate::salesforce::{
    COLLECTION_LIMIT, COMPOSITE_COLLECTIONS_LIMIT, COMPOSITE_LIMIT, ConditionalOutcome,
    ConditionalUpdate, NewRecord, RecordResult, RecordUpdate, SubRequest, SubResponse, Written,
};

#[derive(Debug, Clone, Copy)]
enum Side {
    Create,
    Update,
}

impl<S, D> Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    /// `composite/sobjects` in chunks of 200, results in input order.
    async fn collections(
        &self,
        kind: ApiKind,
        method: Method,
        records: Vec<Value>,
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let mut results = Vec::with_capacity(records.len());
        for chunk in records.chunks(COLLECTION_LIMIT) {
            let body = json!({ "allOrNone": false, "records": chunk });
            let bytes = self
                .send(Request {
                    kind,
                    method: method.clone(),
                    path: self.client.data_path("composite/sobjects"),
                    body: Some(&body),
                    batch_size: None,
                })
                .await?;
            results.extend(collection_results(&bytes, chunk.len())?);
        }
        Ok(results)
    }

    /// Independent subrequests (`allOrNone` false) in one composite request:
    /// their answers by reference id.
    async fn composite_by_reference(
        &self,
        requests: &[SubRequest],
    ) -> Result<HashMap<String, SubResponse>, SalesforceError> {
        Ok(self
            .composite(false, requests)
            .await?
            .into_iter()
            .map(|r| (r.reference_id.clone(), r))
            .collect())
    }
}

impl<S, D> SalesforceWrites for Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    /// `POST …/sobjects/<object>/`: the new record's id.
    async fn create(
        &self,
        object: &str,
        fields: &Map<String, Value>,
    ) -> Result<String, SalesforceError> {
        let body = Value::Object(fields.clone());
        let bytes = self
            .send(Request {
                kind: ApiKind::Create,
                method: Method::POST,
                path: self
                    .client
                    .data_path(&format!("sobjects/{}/", checked_name(object)?)),
                body: Some(&body),
                batch_size: None,
            })
            .await?;
        let result: RecordResult = decode(&bytes)?;
        match result.id {
            Some(id) if result.success => Ok(id),
            _ => Err(SalesforceError::Api {
                status: 201,
                errors: result.errors,
                excerpt: None,
            }),
        }
    }

    /// `PATCH …/sobjects/<object>/<id>`.
    async fn update(
        &self,
        object: &str,
        id: &str,
        fields: &Map<String, Value>,
    ) -> Result<(), SalesforceError> {
        let body = Value::Object(fields.clone());
        self.send(Request {
            kind: ApiKind::Update,
            method: Method::PATCH,
            path: self.client.data_path(&format!(
                "sobjects/{}/{}",
                checked_name(object)?,
                checked_id(id)?
            )),
            body: Some(&body),
            batch_size: None,
        })
        .await?;
        Ok(())
    }

    /// `DELETE …/sobjects/<object>/<id>`.
    async fn delete(&self, object: &str, id: &str) -> Result<(), SalesforceError> {
        self.send(Request {
            kind: ApiKind::Delete,
            method: Method::DELETE,
            path: self.client.data_path(&format!(
                "sobjects/{}/{}",
                checked_name(object)?,
                checked_id(id)?
            )),
            body: None,
            batch_size: None,
        })
        .await?;
        Ok(())
    }

    /// sObject Collections create, 200 records per request, `allOrNone: false`.
    /// Results are in input order: result `i` belongs to `records[i]`.
    async fn create_many(
        &self,
        records: &[NewRecord],
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let bodies = records
            .iter()
            .map(|r| with_type(r.object, None, &r.fields))
            .collect();
        self.collections(ApiKind::CollectionsCreate, Method::POST, bodies)
            .await
    }

    /// sObject Collections update, as [`Self::create_many`].
    async fn update_many(
        &self,
        records: &[RecordUpdate],
    ) -> Result<Vec<RecordResult>, SalesforceError> {
        let bodies = records
            .iter()
            .map(|r| with_type(r.object, Some(&r.id), &r.fields))
            .collect();
        self.collections(ApiKind::CollectionsUpdate, Method::PATCH, bodies)
            .await
    }

    /// Creates and updates together: each side in sObject Collections of 200, the
    /// collections sent as subrequests of one composite request (at most five:
    /// Salesforce's limit on collections and queries in a composite), so that a
    /// batch needing both costs one API call, not two. A lone collection goes
    /// alone. Each side answers its results in input order, or the error of a
    /// collection Salesforce refused as a whole (the whole side then: with the
    /// call logger's batches of at most 100, a side is one collection).
    async fn write_many(
        &self,
        creates: &[NewRecord],
        updates: &[RecordUpdate],
    ) -> Result<Written, SalesforceError> {
        let creates: Vec<Value> = creates
            .iter()
            .map(|r| with_type(r.object, None, &r.fields))
            .collect();
        let updates: Vec<Value> = updates
            .iter()
            .map(|r| with_type(r.object, Some(&r.id), &r.fields))
            .collect();
        let chunks: Vec<(Side, &[Value])> = creates
            .chunks(COLLECTION_LIMIT)
            .map(|c| (Side::Create, c))
            .chain(updates.chunks(COLLECTION_LIMIT).map(|c| (Side::Update, c)))
            .collect();
        if let [(side, records)] = chunks.as_slice() {
            let (kind, method) = match side {
                Side::Create => (ApiKind::CollectionsCreate, Method::POST),
                Side::Update => (ApiKind::CollectionsUpdate, Method::PATCH),
            };
            let results = self.collections(kind, method, records.to_vec()).await;
            return Ok(match side {
                Side::Create => Written {
                    created: results,
                    updated: Ok(Vec::new()),
                },
                Side::Update => Written {
                    created: Ok(Vec::new()),
                    updated: results,
                },
            });
        }
        let path = self.client.data_path("composite/sobjects");
        let mut written = Written {
            created: Ok(Vec::new()),
            updated: Ok(Vec::new()),
        };
        for group in chunks.chunks(COMPOSITE_COLLECTIONS_LIMIT) {
            let requests: Vec<SubRequest> = group
                .iter()
                .enumerate()
                .map(|(i, (side, records))| SubRequest {
                    method: match side {
                        Side::Create => "POST",
                        Side::Update => "PATCH",
                    }
                    .into(),
                    url: path.clone(),
                    reference_id: format!("collection{i}"),
                    body: Some(json!({ "allOrNone": false, "records": records })),
                    http_headers: BTreeMap::new(),
                })
                .collect();
            let mut responses = self.composite_by_reference(&requests).await?;
            for (request, (side, records)) in requests.iter().zip(group) {
                let rows = match responses.remove(&request.reference_id) {
                    Some(r) if (200..300).contains(&r.http_status_code) => {
                        serde_json::from_value::<Vec<RecordResult>>(r.body)
                            .map_err(|e| SalesforceError::Decode(e.to_string()))
                            .and_then(|rows| counted(rows, records.len()))
                    }
                    Some(r) => Err(SalesforceError::from_response(
                        r.http_status_code,
                        r.body.to_string().as_bytes(),
                    )),
                    None => Err(SalesforceError::Decode(
                        "the composite answer has no result for this collection".into(),
                    )),
                };
                let into = match side {
                    Side::Create => &mut written.created,
                    Side::Update => &mut written.updated,
                };
                match (into.as_mut(), rows) {
                    (Ok(all), Ok(rows)) => all.extend(rows),
                    (Ok(_), Err(e)) => *into = Err(e),
                    (Err(_), _) => {}
                }
            }
        }
        Ok(written)
    }

    /// Updates each record only if it was not modified after its
    /// `unmodified_since`: `If-Unmodified-Since` on each subrequest of composite
    /// requests, 25 records per API call. The REST API guide documents the header
    /// for sObject Rows ("Conditional Request Headers",
    /// api_rest/intro_rest_conditional_requests.htm; weak validation against
    /// `LastModifiedDate`, 412 when modified since), and a composite subrequest's
    /// `httpHeaders` carries any header its resource supports but Accept,
    /// Authorization and Content-Type ("Composite Request Body",
    /// api_rest/requests_composite.htm). Outcomes in input order. A record with an invalid id or object
    /// name fails alone, without a request. Sending again is safe: a request retried
    /// after a lost answer finds its own write and says `Modified` for that record,
    /// which a re-read shows already done.
    async fn update_if_unmodified(
        &self,
        updates: &[ConditionalUpdate],
    ) -> Result<Vec<ConditionalOutcome>, SalesforceError> {
        let mut outcomes: Vec<Option<ConditionalOutcome>> = Vec::with_capacity(updates.len());
        let mut valid = Vec::new();
        for (i, u) in updates.iter().enumerate() {
            match (checked_name(u.object), checked_id(&u.id)) {
                (Ok(object), Ok(id)) => {
                    outcomes.push(None);
                    valid.push((i, object, id));
                }
                (Err(e), _) | (_, Err(e)) => outcomes.push(Some(ConditionalOutcome::Failed(e))),
            }
        }
        for chunk in valid.chunks(COMPOSITE_LIMIT) {
            let requests: Vec<SubRequest> = chunk
                .iter()
                .map(|(i, object, id)| SubRequest {
                    method: "PATCH".into(),
                    url: self.client.data_path(&format!("sobjects/{object}/{id}")),
                    reference_id: format!("update{i}"),
                    body: Some(Value::Object(updates[*i].fields.clone())),
                    http_headers: BTreeMap::from([(
                        "If-Unmodified-Since".to_string(),
                        http_date(updates[*i].unmodified_since),
                    )]),
                })
                .collect();
            let mut by_reference = self.composite_by_reference(&requests).await?;
            for (i, _, _) in chunk {
                let outcome = match by_reference.remove(&format!("update{i}")) {
                    Some(r) if (200..300).contains(&r.http_status_code) => {
                        ConditionalOutcome::Updated
                    }
                    Some(r) if r.http_status_code == 412 => ConditionalOutcome::Modified,
                    Some(r) => ConditionalOutcome::Failed(SalesforceError::from_response(
                        r.http_status_code,
                        r.body.to_string().as_bytes(),
                    )),
                    None => ConditionalOutcome::Failed(SalesforceError::Decode(
                        "the composite answer has no result for this record".into(),
                    )),
                };
                outcomes[*i] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    ConditionalOutcome::Failed(SalesforceError::Decode("not sent".into()))
                })
            })
            .collect())
    }

    /// `POST …/composite` (≤ 25 subrequests, one API call).
    async fn composite(
        &self,
        all_or_none: bool,
        requests: &[SubRequest],
    ) -> Result<Vec<SubResponse>, SalesforceError> {
        if requests.len() > COMPOSITE_LIMIT {
            return Err(SalesforceError::Decode(format!(
                "{} composite subrequests (max 25)",
                requests.len()
            )));
        }
        let body = json!({ "allOrNone": all_or_none, "compositeRequest": requests });
        let bytes = self
            .send(Request {
                kind: ApiKind::Composite,
                method: Method::POST,
                path: self.client.data_path("composite"),
                body: Some(&body),
                batch_size: None,
            })
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Composite {
            composite_response: Vec<SubResponse>,
        }
        Ok(decode::<Composite>(&bytes)?.composite_response)
    }
}

fn with_type(object: &str, id: Option<&str>, fields: &Map<String, Value>) -> Value {
    let mut record = Map::with_capacity(fields.len() + 2);
    record.insert("attributes".into(), json!({ "type": object }));
    if let Some(id) = id {
        record.insert("Id".into(), Value::String(id.to_string()));
    }
    for (k, v) in fields {
        record.insert(k.clone(), v.clone());
    }
    Value::Object(record)
}

fn collection_results(bytes: &[u8], expected: usize) -> Result<Vec<RecordResult>, SalesforceError> {
    counted(decode(bytes)?, expected)
}

/// A collection's results, which must be one per record sent.
fn counted(
    results: Vec<RecordResult>,
    expected: usize,
) -> Result<Vec<RecordResult>, SalesforceError> {
    if results.len() != expected {
        return Err(SalesforceError::Decode(format!(
            "collections answered {} results for {expected} records",
            results.len()
        )));
    }
    Ok(results)
}

/// An HTTP-date (RFC 7231 IMF-fixdate), as conditional request headers take it:
/// `Tue, 10 Aug 2015 00:00:00 GMT`. Whole seconds, like Salesforce's audit dates.
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_dates_are_http_dates() {
        use chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2015, 8, 10, 7, 5, 9).unwrap();
        assert_eq!(http_date(at), "Mon, 10 Aug 2015 07:05:09 GMT");
        assert_eq!(
            http_date(at + chrono::Duration::milliseconds(999)),
            "Mon, 10 Aug 2015 07:05:09 GMT"
        );
    }

    #[test]
    fn records_carry_their_type() {
        let fields: Map<String, Value> = json!({"Subject": "Call"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            with_type("Task", Some("00T000000000001AAA"), &fields),
            json!({"attributes": {"type": "Task"}, "Id": "00T000000000001AAA", "Subject": "Call"})
        );
    }
}
