//! The API's error type and its one mapping to gRPC status codes.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use wfe_core::FieldViolation;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid; every violated field is named.
    #[error("invalid request: {}", summary(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The execution does not exist.
    #[error("workflow execution {namespace}/{name} not found")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The request is valid but the state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A bad or missing credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid credential that may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The server is not ready yet (index not synced) or is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Too many conflicting writers; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    /// A bug or an impossible state.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn summary(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// One invalid field.
    pub fn field(field: &str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::InvalidArgument(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::NotFound { .. } => Status::not_found(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::Unavailable(_) => Status::unavailable(message),
            Error::Aborted(_) => Status::aborted(message),
            Error::Kube(kube::Error::Api(s)) if s.is_conflict() => Status::aborted(message),
            // The cluster API being unreachable or failing is a dependency outage, which
            // callers should retry, not a bug of ours.
            Error::Kube(_) => Status::unavailable(message),
            Error::Internal(_) => Status::internal(message),
        }
    }
}

pub use wfe_k8s::errors::{is_already_exists, is_conflict, is_not_found};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status: Status = Error::InvalidArgument(vec![
            FieldViolation::new("spec.target_resource", "required"),
            FieldViolation::new("namespace", "bad"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["spec.target_resource", "namespace"]);
    }

    #[test]
    fn not_found_code() {
        let status: Status = Error::NotFound {
            namespace: "a".into(),
            name: "b".into(),
        }
        .into();
        assert_eq!(status.code(), Code::NotFound);
    }
}
