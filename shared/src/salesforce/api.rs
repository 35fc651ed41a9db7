//! The values Salesforce's REST API takes and gives, as the Salesforce port
//! ([`crate::ports::SalesforceApi`]) speaks them: records to write and their
//! results, composite subrequests, conditional updates, query pages, Notes, the
//! API usage, the connected user's identity and the OAuth token grant. Pure data: the REST adapter
//! (`crate::adapters::salesforce`) turns them into requests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;
use url::Url;

use super::error::{ApiError, SalesforceError};
use super::keyset::Position;
use super::limits::Counter;
use crate::domain::ApiUsage;
use crate::domain::hosts::SalesforceOrigin;

/// sObject Collections take at most 200 records per request.
pub const COLLECTION_LIMIT: usize = 200;

/// A composite request takes at most 25 subrequests.
pub const COMPOSITE_LIMIT: usize = 25;

/// Query and sObject Collections subrequests per composite request.
pub const COMPOSITE_COLLECTIONS_LIMIT: usize = 5;

/// A record to create: its sObject type and fields.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub object: &'static str,
    pub fields: Map<String, Value>,
}

/// A record to update: its sObject type, id and the fields to set (`null` clears).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordUpdate {
    pub object: &'static str,
    pub id: String,
    pub fields: Map<String, Value>,
}

/// The result of one record in a collections request, in request order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecordResult {
    #[serde(default)]
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

/// What a collections write of both sides ([`crate::ports::SalesforceWrites::write_many`]) wrote: per side, one result per record in input
/// order, or why Salesforce refused that side.
#[derive(Debug)]
pub struct Written {
    pub created: Result<Vec<RecordResult>, SalesforceError>,
    pub updated: Result<Vec<RecordResult>, SalesforceError>,
}

/// A composite subrequest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubRequest {
    pub method: String,
    pub url: String,
    pub reference_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Headers of the subrequest (any the resource supports but `Accept`,
    /// `Authorization` and `Content-Type`, which come from the composite request).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubResponse {
    #[serde(default)]
    pub body: Value,
    pub http_status_code: u16,
    pub reference_id: String,
}

/// A record update applied only if the record was not modified after
/// `unmodified_since` (its `LastModifiedDate` when it was read).
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalUpdate {
    pub object: &'static str,
    pub id: String,
    pub fields: Map<String, Value>,
    pub unmodified_since: DateTime<Utc>,
}

/// What became of one [`ConditionalUpdate`].
#[derive(Debug)]
pub enum ConditionalOutcome {
    Updated,
    /// 412 Precondition Failed: the record changed after it was read. Nothing was
    /// written: read it again and rebuild the update.
    Modified,
    /// Refused for another reason, classified.
    Failed(SalesforceError),
}

/// One page of a keyset read, and the position after its last record.
#[derive(Debug, Clone)]
pub struct KeysetPage {
    pub records: Vec<Map<String, Value>>,
    /// Where the next read starts: the last record's `(SystemModstamp, Id)`.
    pub position: Option<Position>,
    pub done: bool,
}

/// One page of a query.
#[derive(Debug, Clone)]
pub struct QueryPage<T> {
    pub total_size: u64,
    pub done: bool,
    pub records: Vec<T>,
}

/// One Note write.
#[derive(Debug, Clone, PartialEq)]
pub enum NoteWrite {
    /// A new Note (`Content` already base64), linked to `link_to`.
    Create {
        title: String,
        content: String,
        link_to: Vec<String>,
    },
    /// New title and content for an existing Note; links added to `link_to`.
    Update {
        id: String,
        title: String,
        content: String,
        link_to: Vec<String>,
    },
    /// The Note removed; Salesforce removes its links with it.
    Delete { id: String },
}

impl NoteWrite {
    /// The records the Note is to be linked to.
    pub fn links(&self) -> &[String] {
        match self {
            NoteWrite::Create { link_to, .. } | NoteWrite::Update { link_to, .. } => link_to,
            NoteWrite::Delete { .. } => &[],
        }
    }
}

/// What became of one [`NoteWrite`].
#[derive(Debug, Clone, PartialEq)]
pub struct NoteWritten {
    /// The Note's id: the new one for a create, the given one otherwise.
    pub id: Option<String>,
    /// Why the Note itself was refused (empty: written).
    pub errors: Vec<ApiError>,
    /// HTTP status of the Note's subrequest.
    pub status: u16,
    /// Each link that was refused: the record, and why.
    pub unlinked: Vec<(String, Vec<ApiError>)>,
}

impl NoteWritten {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The last API usage seen for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The org's daily allocation (`api-usage`).
    pub used: u64,
    pub max: u64,
    /// The connected app's own cap (`per-app-api-usage`), when the org set one.
    pub per_app: Option<Counter>,
    /// When the response carrying it arrived.
    pub observed_at: Instant,
}

impl Usage {
    /// As stored and shown: observed at a wall-clock time.
    pub fn to_api_usage(self) -> ApiUsage {
        let age = chrono::Duration::from_std(self.observed_at.elapsed()).unwrap_or_default();
        ApiUsage {
            used: self.used,
            max: self.max,
            observed_at: Utc::now() - age,
        }
    }
}

/// The identity service's answer (the fields the product uses).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Identity {
    pub user_id: String,
    pub organization_id: String,
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub user_type: String,
}

/// What a successful token request gives, verified.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: SecretString,
    /// Present after the code exchange, and after a refresh when the app rotates tokens.
    pub refresh_token: Option<SecretString>,
    pub instance: SalesforceOrigin,
    /// `https://login.salesforce.com/id/<orgId>/<userId>`
    pub identity_url: Url,
    pub org_id: String,
    pub user_id: String,
    pub scope: Option<String>,
}
