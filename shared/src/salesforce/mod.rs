//! Everything that talks to Salesforce: one client, one SOQL builder and escaper,
//! one SOSL escaper, one error type, host validation and the API budget.

pub mod cdc;
pub mod client;
mod counters;
pub mod error;
pub mod id;
pub mod keyset;
pub mod limits;
mod notes;
pub mod oauth;
pub mod pubsub;
mod queries;
pub mod soql;
pub mod sosl;
mod tokens;
mod writes;

pub use client::{SalesforceClient, Session, Sessions};
pub use counters::{ApiCounters, ApiKind, Usage};
pub use error::{ApiError, SalesforceError};
pub use keyset::{KeysetQuery, Position};
pub use notes::{NoteWrite, NoteWritten};
pub use queries::{KeysetPage, QueryPage};
pub use writes::{
    ConditionalOutcome, ConditionalUpdate, NewRecord, RecordResult, RecordUpdate, SubRequest,
    SubResponse, Written,
};
