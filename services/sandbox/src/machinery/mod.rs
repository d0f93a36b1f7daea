//! Vocabulary every layer shares, as k8s.io/apimachinery is for kube-apiserver: API errors
//! (metav1.Status), object metadata helpers, label and field selectors, JSONPath, patches.

pub mod error;
pub mod jsonpath;
pub mod meta;
pub mod patch;
pub mod selector;
