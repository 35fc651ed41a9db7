//! Notes through a [`Session`]: a call's `ContentNote` and its
//! `ContentDocumentLink`s to the call's Who and What, written in composite
//! requests (one API call for up to 25 subrequests). A new Note and its links go
//! together: each link names the Note by a reference to its create
//! (`@{noteN.id}`), so a call's Note costs no extra request for its links.
//! Facts and sources: `docs/notes.md`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::client::{Session, checked_id};
use crate::ports::{AccessRefusals, LeaseStore, SalesforceNotes, SalesforceWrites, SecretStore};
use crate::salesforce::error::{ApiError, SalesforceError};
use crate::salesforce::{COMPOSITE_LIMIT, NoteWrite, NoteWritten, SubRequest, SubResponse};

/// `ContentDocumentLink.ShareType` of our links: Viewer. `Visibility`: all
/// users who can see the record.
const SHARE_TYPE: &str = "V";
const VISIBILITY: &str = "AllUsers";

impl<S, D> Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    async fn note_chunk(
        &self,
        chunk: &[(usize, &NoteWrite)],
    ) -> Result<Vec<NoteWritten>, SalesforceError> {
        let data = |p: &str| self.client.data_path(p);
        let mut requests = Vec::new();
        for (i, w) in chunk {
            let note_ref = format!("note{i}");
            let (method, url, body, document) = match w {
                NoteWrite::Create { title, content, .. } => (
                    "POST",
                    data("sobjects/ContentNote/"),
                    Some(json!({ "Title": title, "Content": content })),
                    format!("@{{{note_ref}.id}}"),
                ),
                NoteWrite::Update {
                    id, title, content, ..
                } => (
                    "PATCH",
                    data(&format!("sobjects/ContentNote/{}", checked_id(id)?)),
                    Some(json!({ "Title": title, "Content": content })),
                    id.clone(),
                ),
                NoteWrite::Delete { id } => (
                    "DELETE",
                    data(&format!("sobjects/ContentNote/{}", checked_id(id)?)),
                    None,
                    id.clone(),
                ),
            };
            requests.push(SubRequest {
                method: method.into(),
                url,
                reference_id: note_ref,
                body,
                http_headers: BTreeMap::new(),
            });
            for (j, entity) in w.links().iter().enumerate() {
                requests.push(SubRequest {
                    method: "POST".into(),
                    url: data("sobjects/ContentDocumentLink/"),
                    reference_id: format!("link{i}_{j}"),
                    body: Some(json!({
                        "ContentDocumentId": document,
                        "LinkedEntityId": checked_id(entity)?,
                        "ShareType": SHARE_TYPE,
                        "Visibility": VISIBILITY,
                    })),
                    http_headers: BTreeMap::new(),
                });
            }
        }
        let mut responses: HashMap<String, SubResponse> = self
            .composite(false, &requests)
            .await?
            .into_iter()
            .map(|r| (r.reference_id.clone(), r))
            .collect();
        let mut out = Vec::with_capacity(chunk.len());
        for (i, w) in chunk {
            let note = responses.remove(&format!("note{i}"));
            let status = note.as_ref().map_or(0, |r| r.http_status_code);
            let errors = note.as_ref().map(errors_of).unwrap_or_else(|| {
                vec![ApiError {
                    message: "the composite answer has no result for the Note".into(),
                    code: "NO_RESULT".into(),
                    fields: Vec::new(),
                }]
            });
            let id = match w {
                NoteWrite::Create { .. } => note
                    .as_ref()
                    .and_then(|r| r.body.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                NoteWrite::Update { id, .. } | NoteWrite::Delete { id } => Some(id.clone()),
            };
            let unlinked = w
                .links()
                .iter()
                .enumerate()
                .filter_map(|(j, entity)| {
                    let r = responses.remove(&format!("link{i}_{j}"));
                    match r {
                        Some(r) if (200..300).contains(&r.http_status_code) => None,
                        Some(r) => Some((entity.clone(), errors_of(&r))),
                        None => Some((entity.clone(), Vec::new())),
                    }
                })
                .collect();
            out.push(NoteWritten {
                id,
                errors,
                status,
                unlinked,
            });
        }
        Ok(out)
    }
}

impl<S, D> SalesforceNotes for Session<'_, S, D>
where
    S: SecretStore,
    D: LeaseStore + AccessRefusals,
{
    /// Writes the Notes, a Note's subrequests always in the same composite
    /// request (`allOrNone: false`: one Note's refusal leaves the others).
    /// Results in input order.
    async fn write_notes(&self, writes: &[NoteWrite]) -> Result<Vec<NoteWritten>, SalesforceError> {
        let mut results = Vec::with_capacity(writes.len());
        let mut chunk: Vec<(usize, &NoteWrite)> = Vec::new();
        let mut size = 0;
        for (i, w) in writes.iter().enumerate() {
            let needs = 1 + w.links().len();
            if size + needs > COMPOSITE_LIMIT && !chunk.is_empty() {
                results.extend(self.note_chunk(&chunk).await?);
                chunk.clear();
                size = 0;
            }
            chunk.push((i, w));
            size += needs;
        }
        if !chunk.is_empty() {
            results.extend(self.note_chunk(&chunk).await?);
        }
        Ok(results)
    }
}

/// A subrequest's errors (none when it succeeded).
fn errors_of(r: &SubResponse) -> Vec<ApiError> {
    if (200..300).contains(&r.http_status_code) {
        return Vec::new();
    }
    serde_json::from_value::<Vec<ApiError>>(r.body.clone()).unwrap_or_else(|_| {
        vec![ApiError {
            message: r.body.to_string(),
            code: format!("HTTP_{}", r.http_status_code),
            fields: Vec::new(),
        }]
    })
}
