//! The Salesforce adapter: the one REST client behind the Salesforce port
//! ([`crate::ports::SalesforceApi`]): its transport with retries and API
//! accounting (`client`, `counters`), the token lifecycle (`tokens`: cache,
//! refresh under lease, rotation), reads, writes and Notes, each its own file;
//! and the OAuth web-server flow (`oauth`) and the Pub/Sub API client (`pubsub`)
//! beside it.

pub mod client;
mod counters;
mod notes;
pub mod oauth;
pub mod pubsub;
mod queries;
mod tokens;
mod writes;

pub use client::{SalesforceClient, Session, Sessions};
pub use counters::{ApiCounters, ApiKind};
