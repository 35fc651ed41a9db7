//! Everything that talks to Salesforce: one client, one SOQL builder and escaper,
//! one SOSL escaper, one error type, host validation, the API budget, and text
//! lengths as Salesforce counts them.

pub mod cdc;
pub mod client;
pub mod error;
pub mod id;
pub mod instance;
pub mod keyset;
pub mod limits;
pub mod oauth;
pub mod pubsub;
pub mod soql;
pub mod sosl;
mod writes;

pub use client::{ApiCounters, ApiKind, QueryPage, SalesforceClient, Session, Usage};
pub use error::{ApiError, SalesforceError};
pub use instance::{HostPolicy, InstanceUrlError, SalesforceOrigin};
pub use keyset::{KeysetQuery, Position};
pub use writes::{
    ConditionalOutcome, ConditionalUpdate, NewRecord, RecordResult, RecordUpdate, SubRequest,
    SubResponse, Written,
};
