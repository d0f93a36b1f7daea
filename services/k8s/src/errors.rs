//! What a Kubernetes API error means to a writer, for every crate that writes: the API
//! server's 404, its 409 AlreadyExists (a create found the name taken) and its 409
//! Conflict (an update's resourceVersion is stale). kube's `Status` predicates read the
//! reason and fall back on the code, as client-go's `apierrors` do.

/// True when a kube error is the API server's 404 NotFound.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

/// True when a kube error is the API server's 409 AlreadyExists.
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

/// True when a kube error is a resourceVersion conflict (409, not AlreadyExists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict() && !s.is_already_exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: "m".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn status_reasons() {
        let cases = [
            (api(404, "NotFound"), (true, false, false)),
            (api(409, "AlreadyExists"), (false, true, false)),
            (api(409, "Conflict"), (false, false, true)),
            (api(403, "Forbidden"), (false, false, false)),
        ];
        for (e, want) in cases {
            let got = (is_not_found(&e), is_already_exists(&e), is_conflict(&e));
            assert_eq!(got, want, "{e}");
        }
    }
}
