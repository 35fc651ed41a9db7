//! The library shared by the Modjo ⇄ Salesforce Lambda functions.
//!
//! # Map
//!
//! Dependencies point one way, down this table; adapters implement ports and
//! are wired in each function's `main.rs` through `app`.
//!
//! | layer | modules | holds |
//! |---|---|---|
//! | wiring | `app` | `App`: the configuration and one adapter per port, built by each `main.rs`; it builds the use cases |
//! | handlers | `calls::handler`, `comments::handler`, `sync::handler`, `api`, `batch` | Lambda events in, responses and metrics out; the SQS batch frame |
//! | use cases | `connect`, `sync`, `calls`, `comments`, `erase`, `read`, `work` | what the product does (`work`: what they share, their error and the connection's read-modify-write). [`connect::Connect`], [`calls::CallLogger`], [`comments::CommentSync`], [`sync::Syncer`] and [`erase::service::Eraser`] hold only what they touch: the storage ports they use (one named set per use case, e.g. [`calls::CallLoggerStore`]), the Salesforce port ([`ports::SalesforceSessions`], which opens a tenant's [`ports::SalesforceApi`] session; connect also holds [`ports::SalesforceLogin`], the OAuth flow), the budget, their queues; `App` builds each with only its ports, and only the integration API's router, which serves them all, asks for the combined [`app::Store`] |
//! | ports | `ports` | the traits the use cases need, the refusals of a tenant's Salesforce access among them (connect decides what they mean), and Salesforce's (`ports/salesforce.rs`: REST, Pub/Sub, OAuth); `ports::fake` is a scripted Salesforce for unit tests |
//! | adapters | `adapters` (DynamoDB, Secrets Manager, SQS, Salesforce), `aws` | one per external system; the one Salesforce REST client (transport, token lifecycle, reads, writes, Notes), the OAuth flow, the Pub/Sub client |
//! | Salesforce's language | `salesforce` | pure: the API's values, the one SOQL builder and escaper, SOSL, keyset reads, ids, change events, the error type, the API budget |
//! | domain | `domain` | pure types and rules: tenants, connections, records, the Salesforce hosts the product may talk to (no SSRF), the call contract, the matching policy, the managed Task block and its insights, Salesforce's text limits, the permissions report |
//! | foundations | `config`, `error`, `telemetry`, `backoff` | configuration from the environment (one place), the error classes and the storage error, JSON logs and EMF metrics, the one back-off |
//!
//! The domain, `config`, `error` and `ports` import nothing above them (`config`
//! validates the Salesforce hosts it is given with the domain's host policy, so
//! that a bad value stops the function at cold start). No use case names an
//! adapter: the one place that does is `app`. Use cases reuse one another one
//! way, without a cycle (connect → sync → calls → comments; the sync → erase).
//!
//! # Where to start reading, per function
//!
//! | function | entry point |
//! |---|---|
//! | `integration-api` | [`api::routes::handle`] |
//! | `oauth-callback` | [`api::callback::handle`] |
//! | `scheduled-sync` | [`sync::handler::handle`], then [`sync::Syncer`] |
//! | `call-logger` | [`calls::handler::handle`], then [`calls::CallLogger`] (its phases are listed in [`calls`]) |
//! | `comment-sync` | [`comments::handler::handle`], then [`comments::CommentSync`] |

pub mod adapters;
pub mod api;
pub mod app;
pub mod aws;
pub mod backoff;
pub mod batch;
pub mod calls;
pub mod comments;
pub mod config;
pub mod connect;
pub mod domain;
pub mod erase;
pub mod error;
pub mod ports;
pub mod read;
pub mod salesforce;
pub mod sync;
pub mod telemetry;
pub mod work;

mod secret_serde;
