//! What a user may do through the API, as an org's admin grants it: object
//! permissions (profile or permission sets), the *API Enabled* system
//! permission, and the org's Notes setting. Everything is allowed until the
//! control API takes it away.
//!
//! How Salesforce shows each (and the emulator with it):
//! - Describe Global lists "the objects available in your org and available to
//!   the logged-in user" (REST API guide, "Get a List of Objects"): an object the
//!   user cannot read is absent; `createable`/`updateable` say what they may do.
//! - An object the user cannot read is unknown to the API: `INVALID_TYPE`
//!   "sObject type 'X' is not supported." (queries, collections), 404 on its
//!   `sobjects/X` resources.
//! - A write the user may not make is refused per record with
//!   `INSUFFICIENT_ACCESS_OR_READONLY` (a documented StatusCode; the exact code
//!   Salesforce uses for a missing object permission is unconfirmed).
//! - Without *API Enabled* every REST request is refused with HTTP 403
//!   `API_DISABLED_FOR_ORG` before it touches data, and is not counted.
//! - ContentNote: "Notes must be enabled" (its object reference, Special Access
//!   Rules): with Notes off the object is not available at all.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::schema::ObjectDef;
use crate::store::RecordId;

/// An object permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perm {
    Read,
    Create,
    Edit,
}

/// An org's access rules.
#[derive(Debug, Default, Clone)]
pub struct Access {
    /// Object permissions taken away, per user: (lower-case object name, permission).
    denied: HashMap<RecordId, BTreeSet<(String, Perm)>>,
    /// Users without *API Enabled*.
    api_disabled: HashSet<RecordId>,
    /// Setup → Notes Settings → *Enable Notes* unchecked.
    pub notes_disabled: bool,
}

impl Access {
    /// Whether the object exists for the org's API at all.
    pub fn available(&self, obj: &ObjectDef) -> bool {
        !(self.notes_disabled && obj.name == "ContentNote")
    }

    /// Whether `user` has `perm` on `obj` (read is needed for anything else).
    pub fn allows(&self, user: RecordId, obj: &ObjectDef, perm: Perm) -> bool {
        if !self.available(obj) {
            return false;
        }
        let Some(denied) = self.denied.get(&user) else {
            return true;
        };
        let name = obj.name.to_ascii_lowercase();
        let has = |p: Perm| !denied.contains(&(name.clone(), p));
        has(Perm::Read) && has(perm)
    }

    pub fn api_enabled(&self, user: RecordId) -> bool {
        !self.api_disabled.contains(&user)
    }

    /// Grants (`true`) or takes away an object permission of a user.
    pub fn set(&mut self, user: RecordId, object: &str, perm: Perm, granted: bool) {
        let entry = (object.to_ascii_lowercase(), perm);
        let denied = self.denied.entry(user).or_default();
        if granted {
            denied.remove(&entry);
        } else {
            denied.insert(entry);
        }
    }

    pub fn set_api_enabled(&mut self, user: RecordId, enabled: bool) {
        if enabled {
            self.api_disabled.remove(&user);
        } else {
            self.api_disabled.insert(user);
        }
    }
}

/// The control API's body for `POST /__control/orgs/<org>/access`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessChange {
    /// The user (id or username); needed for object permissions and API Enabled.
    #[serde(default)]
    pub user: Option<String>,
    /// Object permissions to grant or take away.
    #[serde(default)]
    pub objects: Vec<ObjectPermission>,
    #[serde(default)]
    pub api_enabled: Option<bool>,
    #[serde(default)]
    pub notes_enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPermission {
    pub object: String,
    pub permission: Perm,
    pub granted: bool,
}
