//! What kube-apiserver's registry does between the HTTP layer and storage: which resources are
//! served, the rules each one follows on create, update and delete, admission, and the
//! garbage collector that finishes deletes.

pub(crate) mod gc;
pub mod lifecycle;
pub mod objects;
pub mod quota;
pub mod resources;
pub mod schema;
pub mod strategy;

use std::sync::Arc;

use crate::storage::Store;

/// What the registry works on, and all the HTTP layer reaches through it: the objects, the
/// served resources and the admission state. Knows nothing of HTTP.
#[derive(Debug)]
pub struct Backend {
    /// Objects.
    pub store: Arc<Store>,
    /// Served resources.
    pub registry: Arc<resources::Registry>,
    /// ResourceQuota object counts, checked on create.
    pub quota: quota::QuotaAdmission,
}
