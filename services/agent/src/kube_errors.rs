//! Classifying Kubernetes API errors met while creating a primitive (the NotFound /
//! AlreadyExists predicates every writer shares are [`wfe_k8s::errors`]'s).

use wfe_core::FailureReason;

pub use wfe_k8s::errors::{is_already_exists, is_not_found};

/// Refusals a create should be retried after, not failed on: the API server is
/// overloaded or briefly unavailable (429, 503, 504), or a ResourceQuota was created
/// so recently that its controller has not computed its usage yet (403 "status
/// unknown for quota": admission refuses rather than guess).
pub fn is_transient_create_refusal(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            matches!(s.code, 429 | 503 | 504)
                || (s.code == 403 && s.message.contains("status unknown for quota"))
        }
        _ => false,
    }
}

/// Creates with `create`, retrying transient refusals ([`is_transient_create_refusal`])
/// six times with doubling delays (250 ms to 8 s, about 16 s in all) before handing
/// back the last error.
pub async fn create_with_retries<T, F, Fut>(mut create: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = std::time::Duration::from_millis(250);
    for _ in 0..6 {
        match create().await {
            Err(e) if is_transient_create_refusal(&e) => {
                tracing::info!(error = %e, retry_in = ?delay, "create refused for now; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    create().await
}

/// The failure reason and message for a refused create: 403 with a quota message is
/// ResourceExhausted, other 403s Forbidden, 422/400 ConfigurationError, the rest Unknown.
pub fn create_failure(kind: &str, e: &kube::Error) -> (FailureReason, String) {
    let reason = match e {
        kube::Error::Api(s) if s.code == 403 && s.message.contains("exceeded quota") => {
            FailureReason::ResourceExhausted
        }
        kube::Error::Api(s) if s.code == 403 => FailureReason::Forbidden,
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => FailureReason::ConfigurationError,
        _ => FailureReason::Unknown,
    };
    let detail = match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    };
    (reason, format!("Failed to create {kind}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn create_errors_table() {
        let cases = [
            (
                api(
                    403,
                    "Forbidden",
                    "jobs.batch is forbidden: exceeded quota: q, requested: count/jobs.batch=1",
                ),
                FailureReason::ResourceExhausted,
            ),
            (
                api(
                    403,
                    "Forbidden",
                    "jobs.batch is forbidden: User cannot create",
                ),
                FailureReason::Forbidden,
            ),
            (
                api(422, "Invalid", "spec.template: Invalid value"),
                FailureReason::ConfigurationError,
            ),
            (
                api(500, "InternalError", "etcd down"),
                FailureReason::Unknown,
            ),
        ];
        for (e, want) in cases {
            let (got, msg) = create_failure("Job", &e);
            assert_eq!(got, want, "{e}");
            assert!(msg.starts_with("Failed to create Job: "), "{msg}");
        }
        assert!(is_transient_create_refusal(&api(
            403,
            "Forbidden",
            "jobs.batch \"x\" is forbidden: status unknown for quota: q, resource: count/jobs.batch"
        )));
        assert!(is_transient_create_refusal(&api(
            429,
            "TooManyRequests",
            "slow down"
        )));
        assert!(!is_transient_create_refusal(&api(
            403,
            "Forbidden",
            "exceeded quota: q"
        )));
        assert!(!is_transient_create_refusal(&api(422, "Invalid", "bad")));
    }

    /// A create that answers `refusals` 429s, then succeeds; counts its calls.
    fn refusing(
        refusals: usize,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        impl FnMut() -> std::future::Ready<Result<(), kube::Error>>,
    ) {
        use std::sync::atomic::Ordering;
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        let create = move || {
            let n = counted.fetch_add(1, Ordering::Relaxed);
            std::future::ready(if n < refusals {
                Err(api(429, "TooManyRequests", "slow down"))
            } else {
                Ok(())
            })
        };
        (calls, create)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_refusals_are_retried_with_doubling_delays() {
        use std::sync::atomic::Ordering;
        let start = tokio::time::Instant::now();
        let (calls, create) = refusing(2);
        assert!(create_with_retries(create).await.is_ok());
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        // 250 ms, then 500 ms.
        assert_eq!(start.elapsed(), std::time::Duration::from_millis(750));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_that_lasts_is_handed_back_after_about_sixteen_seconds() {
        use std::sync::atomic::Ordering;
        let start = tokio::time::Instant::now();
        let (calls, create) = refusing(usize::MAX);
        let Err(e) = create_with_retries(create).await else {
            panic!("a refusal that lasts succeeded");
        };
        assert!(is_transient_create_refusal(&e), "{e}");
        assert_eq!(calls.load(Ordering::Relaxed), 7);
        assert_eq!(start.elapsed(), std::time::Duration::from_millis(15_750));
    }
}
