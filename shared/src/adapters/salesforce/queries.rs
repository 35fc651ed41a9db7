//! A session's reads: queries (paged, or keyset-ordered to survive a dead
//! locator), lookups cut to Salesforce's URI limit, searches, record reads, limits,
//! Describe Global and the identity service.

use std::collections::HashSet;

use futures::Stream;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::client::{
    MAX_BATCH_SIZE, MAX_URI_BYTES, Request, Session, checked_id, checked_name, decode, transport,
};
use super::counters::ApiKind;
use crate::ports::{AccessRefusals, LeaseStore, SalesforceReads, SecretStore};
use crate::salesforce::error::SalesforceError;
use crate::salesforce::keyset::{KeysetQuery, Position};
use crate::salesforce::soql::Select;
use crate::salesforce::sosl::PhoneSearch;
use crate::salesforce::{Identity, KeysetPage, QueryPage};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawPage<T> {
    total_size: u64,
    done: bool,
    #[serde(default)]
    next_records_url: Option<String>,
    records: Vec<T>,
}

impl<S, D> Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    /// `GET …/query` (or `queryAll`, which includes deleted rows), one page at a time,
    /// following `nextRecordsUrl`. Memory holds one page whatever the result size.
    /// For large reads prefer [`Self::keyset_pages`], which survives a dead locator.
    pub fn query_pages<'s, T>(
        &'s self,
        soql: &str,
        all: bool,
    ) -> impl Stream<Item = Result<QueryPage<T>, SalesforceError>> + 's
    where
        T: DeserializeOwned + Send + 's,
    {
        let first = self.query_path(soql, all);
        futures::stream::try_unfold(Some(first), move |next| async move {
            let Some((path, kind)) = next else {
                return Ok(None);
            };
            let (page, next_url) = self.fetch_page::<T>(path, kind).await?;
            Ok(Some((page, next_url.map(|url| (url, ApiKind::QueryMore)))))
        })
    }

    /// The path of a first page, and its kind of call.
    fn query_path(&self, soql: &str, all: bool) -> (String, ApiKind) {
        let (endpoint, kind) = if all {
            ("queryAll", ApiKind::QueryAll)
        } else {
            ("query", ApiKind::Query)
        };
        let encoded: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        (
            self.client.data_path(&format!("{endpoint}?q={encoded}")),
            kind,
        )
    }

    /// One page, and the `nextRecordsUrl` to follow when there is more.
    async fn fetch_page<T: DeserializeOwned>(
        &self,
        path: String,
        kind: ApiKind,
    ) -> Result<(QueryPage<T>, Option<String>), SalesforceError> {
        let bytes = self
            .send(Request {
                kind,
                method: Method::GET,
                path,
                body: None,
                batch_size: Some(MAX_BATCH_SIZE),
            })
            .await?;
        let page: RawPage<T> = decode(&bytes)?;
        let next = match (page.done, page.next_records_url) {
            (false, Some(url)) => Some(checked_next_url(&url)?),
            (false, None) => {
                return Err(SalesforceError::Decode(
                    "done=false without nextRecordsUrl".into(),
                ));
            }
            (true, _) => None,
        };
        Ok((
            QueryPage {
                total_size: page.total_size,
                done: page.done,
                records: page.records,
            },
            next,
        ))
    }

    /// `GET path`, one API call of `kind`, its body decoded.
    async fn get<T: DeserializeOwned>(
        &self,
        kind: ApiKind,
        path: String,
    ) -> Result<T, SalesforceError> {
        let bytes = self
            .send(Request {
                kind,
                method: Method::GET,
                path,
                body: None,
                batch_size: None,
            })
            .await?;
        decode(&bytes)
    }

    fn search_path(&self, sosl: &str) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(sosl.as_bytes()).collect();
        self.client.data_path(&format!("search/?q={encoded}"))
    }
}

impl<S, D> SalesforceReads for Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    /// Reads `query` in `(SystemModstamp, Id)` order from just after `after`, one page
    /// at a time. When Salesforce drops the query locator (it belongs to the session,
    /// so a token refresh kills it; it also expires), the query is issued again from
    /// just after the last record returned: nothing is lost or repeated.
    fn keyset_pages(
        &self,
        query: KeysetQuery,
        after: Option<Position>,
    ) -> impl Stream<Item = Result<KeysetPage, SalesforceError>> + Send + '_ {
        struct State {
            query: KeysetQuery,
            last: Option<Position>,
            next: Option<String>,
            finished: bool,
            restarts: u32,
        }
        let state = State {
            query,
            last: after,
            next: None,
            finished: false,
            restarts: 0,
        };
        futures::stream::try_unfold(state, move |mut state| async move {
            loop {
                if state.finished {
                    return Ok(None);
                }
                let (path, kind) = match state.next.take() {
                    Some(url) => (url, ApiKind::QueryMore),
                    None => {
                        let soql = state.query.render(state.last.as_ref())?;
                        self.query_path(&soql, state.query.include_deleted)
                    }
                };
                let resumed = kind == ApiKind::QueryMore;
                let (page, next_url) = match self.fetch_page::<Map<String, Value>>(path, kind).await
                {
                    Ok(fetched) => fetched,
                    Err(e)
                        if resumed
                            && e.code() == Some("INVALID_QUERY_LOCATOR")
                            && state.restarts < 3 =>
                    {
                        state.restarts += 1;
                        tracing::info!(tenant_id = %self.tenant, object = state.query.object, "query locator gone; resuming from the last record");
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if let Some(last) = page.records.last() {
                    state.last = Some(Position::of(last).ok_or_else(|| {
                        SalesforceError::Decode("keyset record without Id or SystemModstamp".into())
                    })?);
                }
                state.finished = next_url.is_none();
                state.next = next_url;
                let out = KeysetPage {
                    records: page.records,
                    position: state.last.clone(),
                    done: state.finished,
                };
                return Ok(Some((out, state)));
            }
        })
    }

    /// Every record of a (small) query, all pages collected.
    async fn query_all_pages<T>(&self, soql: &str, all: bool) -> Result<Vec<T>, SalesforceError>
    where
        T: DeserializeOwned + Send,
    {
        use futures::TryStreamExt;
        let pages: Vec<QueryPage<T>> = self.query_pages(soql, all).try_collect().await?;
        Ok(pages.into_iter().flat_map(|p| p.records).collect())
    }

    /// Every record of `select`, in as few requests as Salesforce's URI limit
    /// allows: one query when the statement fits in [`MAX_URI_BYTES`] once
    /// encoded, else its `IN` lists cut across several (each one API call, counted
    /// and recorded like any other) and their rows merged, each record once (by Id).
    /// Rows come in no particular order across parts.
    async fn query_select(
        &self,
        select: &Select,
        all: bool,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let statements =
            select.render_within(|soql| self.query_path(soql, all).0.len() <= MAX_URI_BYTES)?;
        if statements.len() > 1 {
            tracing::info!(tenant_id = %self.tenant, queries = statements.len(), "a lookup cut into several queries to fit Salesforce's URI limit");
        }
        let mut rows = OncePerId::default();
        for soql in &statements {
            rows.extend(self.query_all_pages(soql, all).await?);
        }
        Ok(rows.found)
    }

    /// Every record a phone search finds, in as few SOSL requests as Salesforce's
    /// limits allow (URI length, and 4,000 characters of search query), each
    /// record once (by Id).
    async fn search_phones(
        &self,
        search: &PhoneSearch,
    ) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        let statements =
            search.render_within(|sosl| self.search_path(sosl).len() <= MAX_URI_BYTES)?;
        let mut found = OncePerId::default();
        for sosl in &statements {
            found.extend(self.search(sosl).await?);
        }
        Ok(found.found)
    }

    /// `GET …/search?q=` (SOSL): the found records, whichever object they belong to.
    /// Both shapes Salesforce answered over the versions are read: `searchRecords`,
    /// and the bare array of API 35.0 and before.
    async fn search(&self, sosl: &str) -> Result<Vec<Map<String, Value>>, SalesforceError> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum SearchShape {
            Wrapped {
                #[serde(rename = "searchRecords")]
                search_records: Vec<Map<String, Value>>,
            },
            Bare(Vec<Map<String, Value>>),
        }
        let shape: SearchShape = self.get(ApiKind::Search, self.search_path(sosl)).await?;
        Ok(match shape {
            SearchShape::Wrapped { search_records } => search_records,
            SearchShape::Bare(v) => v,
        })
    }

    /// `GET …/sobjects/<object>/<id>?fields=…`
    async fn read(
        &self,
        object: &str,
        id: &str,
        fields: &[&str],
    ) -> Result<Map<String, Value>, SalesforceError> {
        self.get(
            ApiKind::Read,
            self.client.data_path(&format!(
                "sobjects/{}/{}?fields={}",
                checked_name(object)?,
                checked_id(id)?,
                fields.join(",")
            )),
        )
        .await
    }

    /// `GET …/limits/` (costs one call).
    async fn limits(&self) -> Result<Value, SalesforceError> {
        self.get(ApiKind::Limits, self.client.data_path("limits/"))
            .await
    }

    /// `GET …/sobjects/` (Describe Global: the objects available to the connected
    /// user, with what they may do; costs one call).
    async fn describe_global(&self) -> Result<Value, SalesforceError> {
        self.get(ApiKind::Describe, self.client.data_path("sobjects/"))
            .await
    }

    /// Reads the identity service (`id` URL from the token response).
    async fn identity(&self, identity_url: &str) -> Result<Identity, SalesforceError> {
        let url = self.client.hosts().check_url(identity_url)?;
        let mut refreshed = false;
        loop {
            let token = self.tokens.current().await?;
            let response = self
                .client
                .http()
                .get(url.clone())
                .bearer_auth(token.access.expose_secret())
                .header("accept", "application/json")
                .timeout(self.remaining()?)
                .send()
                .await
                .map_err(transport)?;
            let status = response.status();
            let body = response.bytes().await.map_err(transport)?;
            if status.is_success() {
                return decode(&body);
            }
            // The identity service answers 403 (not 401) to a dead token.
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) && !refreshed
            {
                refreshed = true;
                self.tokens.refresh(Some(&token)).await?;
                continue;
            }
            return Err(SalesforceError::from_response(status.as_u16(), &body));
        }
    }
}

/// `nextRecordsUrl` is relative to the instance; anything else is refused.
/// Records gathered from the parts of a statement cut to fit Salesforce's
/// limits: each record once, by Id (a record without one is kept).
#[derive(Default)]
struct OncePerId {
    found: Vec<Map<String, Value>>,
    seen: HashSet<String>,
}

impl OncePerId {
    fn extend(&mut self, records: Vec<Map<String, Value>>) {
        for record in records {
            let first = match record.get("Id").and_then(Value::as_str) {
                Some(id) => self.seen.insert(id.to_string()),
                None => true,
            };
            if first {
                self.found.push(record);
            }
        }
    }
}

fn checked_next_url(url: &str) -> Result<String, SalesforceError> {
    let ok = url.starts_with("/services/data/")
        && !url.contains("..")
        && !url.contains("//")
        && !url.contains('\\')
        && url.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(url.to_string())
    } else {
        Err(SalesforceError::Decode(format!(
            "unexpected nextRecordsUrl {url:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_records_url_must_stay_on_the_instance() {
        assert!(checked_next_url("/services/data/v62.0/query/01gD0000000001-2000").is_ok());
        for bad in [
            "https://evil.com/services/data/v62.0/query/x",
            "//evil.com/services/data/",
            "/services/data/../../id",
            "/other",
            "/services/data/v62.0/query/x y",
        ] {
            assert!(checked_next_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_of_another_shape_is_not_mistaken_for_bad_json() {
        let shape = decode::<RawPage<Value>>(br#"{"records": []}"#);
        assert!(matches!(shape, Err(SalesforceError::Decode(_))));
    }
}
