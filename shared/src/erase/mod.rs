//! Erasing a person (GDPR) and a tenant's purge (issue 19). How long stored
//! calls are kept is the domain's [`crate::domain::retention`].
//!
//! - [`service::Eraser`] erases a person from Modjo's store: index entries, stored
//!   records and email-timeline items go; stored calls are kept with the person
//!   redacted from their message and outcome. Salesforce is not touched.
//! - [`tombstones::without_erased`] is the sync's check that an erased person does
//!   not come back.
//! - [`purge`] removes every item of a tenant but its audit trail.

pub mod person;
pub mod purge;
pub mod redact;
pub mod service;
pub mod tombstones;

pub use crate::ports::{ErasureStore, PurgeProgress};
pub use person::{EraseInput, Identifier, IdentifierError};
