//! Domain types. Pure data, no I/O.

mod calls;
mod comments;
mod connection;
pub mod normalize;
mod oauth;
mod records;
mod sync;
mod tenant;
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
pub use records::{CrmRecord, IndexEntry, IndexKey, IndexKind};
pub use sync::{ChangeSource, Lease, SourceReason, SyncCursor, SyncState, SyncStatus};
pub use tenant::{InvalidTenantId, TenantId, validate_external_id};
pub use users::{MappingSource, ModjoUser, UserMapping};
