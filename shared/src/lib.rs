//! The library shared by the Modjo ⇄ Salesforce Lambda functions: configuration,
//! telemetry, the error taxonomy, domain types, ports and their AWS adapters.

pub mod adapters;
pub mod api;
pub mod app;
pub mod aws;
pub mod batch;
pub mod calls;
pub mod comments;
pub mod config;
pub mod connect;
pub mod domain;
pub mod error;
pub mod permissions;
pub mod ports;
pub mod read;
pub mod salesforce;
pub mod sync;
pub mod telemetry;

mod secret_serde;
