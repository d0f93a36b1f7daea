//! What kube-apiserver's registry does between the HTTP layer and storage: which resources are
//! served, the rules each one follows on create, update and delete, admission, and the
//! garbage collector that finishes deletes.

pub(crate) mod gc;
pub mod lifecycle;
pub mod objects;
pub mod quota;
pub mod resources;
pub mod schema;
