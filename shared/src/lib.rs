//! The library shared by the Modjo ⇄ Salesforce Lambda functions.
//!
//! # Map
//!
//! | layer | modules | holds |
//! |---|---|---|
//! | handlers | `calls::handler`, `comments::handler`, `sync::handler`, `api`, `batch` | Lambda events in, responses and metrics out; the SQS batch protocol |
//! | use cases | `connect`, `sync`, `calls`, `comments`, `read` | what the product does, over the ports |
//! | Salesforce | `salesforce` | the one client: tokens, queries, writes, limits, SOQL/SOSL escaping |
//! | wiring | `app` | `App`: the configuration and one adapter per port, built by each `main.rs` |
//! | ports | `ports` | the traits the use cases need |
//! | adapters | `adapters` (DynamoDB, Secrets Manager, SQS), `aws` | the AWS side of the ports |
//! | domain | `domain` | tenants, connections, records, calls, comments: types with no I/O |
//! | foundations | `config`, `error`, `telemetry`, `backoff` | configuration from the environment (one place), the error classes, JSON logs and EMF metrics, retries |
//!
//! The domain, `error` and `ports` import nothing above them. The rest is not
//! yet strictly layered: the use cases take the whole `App` rather than the
//! ports each one uses, `config` names two Salesforce types (the instance host
//! policy and the Pub/Sub endpoint), and `calls` and `comments` share the
//! Task's rendering.
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

mod secret_serde;
