//! API calls counted by kind, and the API usage Salesforce reports on its
//! responses (`Sforce-Limit-Info`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of API call, counted separately (DESIGN §6: frugality is measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiKind {
    Query,
    QueryAll,
    QueryMore,
    Search,
    Create,
    Read,
    Update,
    Delete,
    CollectionsCreate,
    CollectionsUpdate,
    CollectionsRetrieve,
    Composite,
    Limits,
    Describe,
}

impl ApiKind {
    const ALL: [ApiKind; 14] = [
        ApiKind::Query,
        ApiKind::QueryAll,
        ApiKind::QueryMore,
        ApiKind::Search,
        ApiKind::Create,
        ApiKind::Read,
        ApiKind::Update,
        ApiKind::Delete,
        ApiKind::CollectionsCreate,
        ApiKind::CollectionsUpdate,
        ApiKind::CollectionsRetrieve,
        ApiKind::Composite,
        ApiKind::Limits,
        ApiKind::Describe,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::Query => "query",
            ApiKind::QueryAll => "queryAll",
            ApiKind::QueryMore => "queryMore",
            ApiKind::Search => "search",
            ApiKind::Create => "create",
            ApiKind::Read => "read",
            ApiKind::Update => "update",
            ApiKind::Delete => "delete",
            ApiKind::CollectionsCreate => "collectionsCreate",
            ApiKind::CollectionsUpdate => "collectionsUpdate",
            ApiKind::CollectionsRetrieve => "collectionsRetrieve",
            ApiKind::Composite => "composite",
            ApiKind::Limits => "limits",
            ApiKind::Describe => "describe",
        }
    }
}

/// API calls made, by kind. Every request that reached Salesforce's REST API counts,
/// whatever its answer (token and identity calls are not API calls).
#[derive(Debug, Default)]
pub struct ApiCounters {
    counts: [AtomicU64; 14],
}

impl ApiCounters {
    pub(super) fn add(&self, kind: ApiKind) {
        if let Some(i) = ApiKind::ALL.iter().position(|k| *k == kind) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, kind: ApiKind) -> u64 {
        ApiKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map(|i| self.counts[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Non-zero counts by kind name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        ApiKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.get(*k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_by_kind() {
        let c = ApiCounters::default();
        c.add(ApiKind::Query);
        c.add(ApiKind::QueryMore);
        c.add(ApiKind::QueryMore);
        assert_eq!(c.total(), 3);
        assert_eq!(c.get(ApiKind::QueryMore), 2);
        assert_eq!(c.snapshot().get("queryMore"), Some(&2));
        assert!(!c.snapshot().contains_key("search"));
    }
}
