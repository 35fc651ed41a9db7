//! Salesforce's language, without I/O: the API's values (`api`), the one SOQL
//! builder and escaper (`soql`), the SOSL escaper (`sosl`), keyset reads, record
//! ids, change events, the Pub/Sub API's requests and failures, the error type
//! with its classification, and the API budget. The Salesforce port ([`crate::ports::SalesforceApi`]) speaks it; the
//! REST client that implements the port is in `crate::adapters::salesforce`.

pub mod api;
pub mod cdc;
pub mod error;
pub mod id;
pub mod keyset;
pub mod limits;
pub mod pubsub;
pub mod soql;
pub mod sosl;

pub use api::{
    COLLECTION_LIMIT, COMPOSITE_COLLECTIONS_LIMIT, COMPOSITE_LIMIT, ConditionalOutcome,
    ConditionalUpdate, Identity, KeysetPage, NewRecord, NoteWrite, NoteWritten, QueryPage,
    RecordResult, RecordUpdate, SubRequest, SubResponse, TokenGrant, Usage, Written,
};
pub use error::{ApiError, SalesforceError};
pub use keyset::{KeysetQuery, Position};
