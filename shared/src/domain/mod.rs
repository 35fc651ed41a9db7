//! Domain types. Pure data, no I/O.

pub mod block;
pub mod call_event;
mod calls;
mod comments;
mod connection;
pub mod hosts;
pub mod insights;
pub mod matching;
pub mod normalize;
pub mod note;
mod oauth;
pub mod permissions;
mod records;
pub mod retention;
mod sync;
mod tenant;
pub mod text;
mod users;

pub use calls::{
    Activity, CallNote, CallOutcome, CallState, LinkedRecord, ManualLink, MatchLevel, ModjoMatch,
    Rematch,
};
pub use comments::StoredComment;
pub use connection::{
    ApiUsage, AuditEntry, Connection, ConnectionStatus, DEFAULT_REMATCH_DAYS, RematchProgress,
    USAGE_FRESHNESS,
};
pub use oauth::{PendingAuthorization, SigningKeys};
pub use records::{CONTACT_PHONES, CrmRecord, IndexEntry, IndexKey, IndexKind, LEAD_PHONES};
pub use sync::{ChangeSource, Lease, SourceReason, SyncCursor, SyncState, SyncStatus};
pub use tenant::{Actor, InvalidTenantId, TenantId, validate_external_id};
pub use users::{MappingSource, ModjoUser, UserMapping};
