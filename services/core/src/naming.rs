//! Deterministic names and Kubernetes name rules.
//!
//! Names derived here are part of the wire contract between processes and releases: the
//! agents find their primitives again after a restart by recomputing them. The tests pin
//! literal vectors so any change to a derivation fails loudly.

use sha2::{Digest, Sha256};

/// Prefix of every name this service derives.
pub const NAME_PREFIX: &str = "wfe-";

/// First `n` lowercase hex characters of sha256(input).
fn hash_hex(input: &str, n: usize) -> String {
    let digest = hex::encode(Sha256::digest(input.as_bytes()));
    digest[..n].to_owned()
}

/// A target as admission and the target lock know it: `target` in the local cluster,
/// `target@cluster` in another. The same `namespace/Kind/name` in two clusters is two
/// resources, so it is two targets: one does not hold, cool down or block the other.
/// `@` cannot occur in a target, so the form is unambiguous; local targets keep their
/// plain form (and their lock names).
pub fn qualified_target(cluster_id: &str, target: &str) -> String {
    if cluster_id.is_empty() {
        target.to_owned()
    } else {
        format!("{target}@{cluster_id}")
    }
}

/// Upstream's target lock name: `wfe-` + the first 16 hex characters of sha256(target).
///
/// Kept identical to upstream so names in existing clusters, issues and dashboards still match.
pub fn execution_resource_name(target: &str) -> String {
    format!("{NAME_PREFIX}{}", hash_hex(target, 16))
}

/// Name of the Job or PipelineRun for one attempt of one execution.
///
/// `wfe-` + 16 hex of sha256(`"<namespace>/<name>"`) + `-a<attempt>`. Kubernetes names
/// cannot contain `/`, so the hash input is unambiguous. At most 4 + 16 + 2 + 10 = 32
/// characters of `[a-z0-9-]`, so it is always a DNS-1123 label. A new attempt gets a new
/// name, so a stale primitive of an earlier attempt can never be mistaken for the current one.
pub fn primitive_name(execution_namespace: &str, execution_name: &str, attempt: u32) -> String {
    let id = hash_hex(&format!("{execution_namespace}/{execution_name}"), 16);
    format!("{NAME_PREFIX}{id}-a{attempt}")
}

/// Name of a WorkflowExecution generated from its idempotency key: `we-` + 16 hex of
/// sha256(key). A replay with the same key yields the same name, so creating it twice
/// collides instead of duplicating work. The `we-` prefix keeps executions apart from
/// primitives (`wfe-`).
pub fn execution_name(idempotency_key: &str) -> String {
    format!("we-{}", hash_hex(idempotency_key, 16))
}

/// True for a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends
/// (namespaces, most resource names that become hostnames or labels).
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len())
        && b.iter().all(|c| alnum(c) || *c == b'-')
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
}

/// True for a DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels
/// (service accounts, secrets, config maps and most object names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Maximum length of a label value.
pub const LABEL_VALUE_MAX: usize = 63;

/// True for a valid Kubernetes label value: empty, or at most 63 of `[A-Za-z0-9._-]`
/// beginning and ending with an alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    let allowed = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    b.is_empty()
        || (b.len() <= LABEL_VALUE_MAX
            && b.iter().all(allowed)
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric))
}

/// Turns any string into a valid label value, compatible with upstream for ordinary targets.
///
/// Like upstream: `/` becomes `__`, then truncate to 63. Unlike upstream, every other
/// disallowed character becomes `_`, and non-alphanumerics are trimmed from both ends after
/// truncation, so the result is always valid (`///` gives the empty value, not `______`).
/// The raw value belongs in an annotation; the label is for selection only.
pub fn sanitize_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '/' => out.push_str("__"),
            c if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') => out.push(c),
            _ => out.push('_'),
        }
    }
    // Only ASCII is pushed, so byte truncation is on a char boundary.
    out.truncate(LABEL_VALUE_MAX);
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_qualified_by_a_remote_cluster_only() {
        assert_eq!(
            qualified_target("", "ns/Deployment/web"),
            "ns/Deployment/web"
        );
        assert_eq!(
            qualified_target("east", "ns/Deployment/web"),
            "ns/Deployment/web@east"
        );
        assert_ne!(
            execution_resource_name(&qualified_target("east", "Node/n1")),
            execution_resource_name(&qualified_target("", "Node/n1"))
        );
    }

    #[test]
    fn execution_resource_name_vectors_from_reference() {
        let vectors = [
            ("default/deployment/my-app", "wfe-c00449355dfb987a"),
            ("payment/deployment/payment-api", "wfe-cf0cc089293b1165"),
            ("node/worker-node-1", "wfe-ac45b7d6911e97a5"),
            (
                "demo-memory-escalation/Deployment/ml-worker",
                "wfe-ddbe0470e383f1e8",
            ),
            (
                "demo-resource-contention/Deployment/contention-app",
                "wfe-23c754f41370434c",
            ),
        ];
        for (target, want) in vectors {
            assert_eq!(execution_resource_name(target), want, "{target}");
        }
    }

    #[test]
    fn execution_resource_name_shape() {
        let targets = [
            "default/deployment/nginx",
            "ns-1-2/deployment/app-1-2",
            &"x".repeat(500),
        ];
        for t in targets {
            let n = execution_resource_name(t);
            assert_eq!(n.len(), 20);
            assert!(is_dns1123_label(&n), "{n}");
        }
        assert_ne!(
            execution_resource_name("a/b"),
            execution_resource_name("a/c")
        );
    }

    #[test]
    fn primitive_name_vectors() {
        // Computed once; a change here breaks agents finding their primitives after upgrade.
        let vectors = [
            ("kubernaut-system", "we-1", 1, "wfe-246f8d3c74b23da5-a1"),
            ("kubernaut-system", "we-1", 2, "wfe-246f8d3c74b23da5-a2"),
            ("default", "restart-nginx", 1, "wfe-6394887e4792975b-a1"),
            (
                "default",
                "restart-nginx",
                u32::MAX,
                "wfe-6394887e4792975b-a4294967295",
            ),
        ];
        for (ns, name, attempt, want) in vectors {
            let got = primitive_name(ns, name, attempt);
            assert_eq!(got, want, "{ns}/{name}#{attempt}");
            assert!(is_dns1123_label(&got), "{got}");
        }
        assert_ne!(primitive_name("a", "b-c", 1), primitive_name("a-b", "c", 1));
    }

    #[test]
    fn execution_name_vectors() {
        let got = execution_name("rr-payment-1:attempt-1");
        assert_eq!(got, "we-6d10a842fab7d9be");
        assert_eq!(got, execution_name("rr-payment-1:attempt-1"));
        assert!(is_dns1123_label(&execution_name("")));
    }

    #[test]
    fn dns1123_label_table() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let cases = [
            ("a", true),
            ("my-ns", true),
            ("0abc", true),
            (long.as_str(), true),
            ("", false),
            (too_long.as_str(), false),
            ("-a", false),
            ("a-", false),
            ("My-ns", false),
            ("a.b", false),
            ("a_b", false),
        ];
        for (s, want) in cases {
            assert_eq!(is_dns1123_label(s), want, "{s:?}");
        }
    }

    #[test]
    fn dns1123_subdomain_table() {
        let label = "a".repeat(63);
        let long_ok = [label.as_str(); 4].join("."); // 255 > 253
        let cases = [
            ("sa", true),
            ("my.secret-1", true),
            ("a.b.c", true),
            ("", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("A", false),
            ("a_b", false),
            (long_ok.as_str(), false),
        ];
        for (s, want) in cases {
            assert_eq!(is_dns1123_subdomain(s), want, "{s:?}");
        }
    }

    #[test]
    fn sanitize_label_value_table() {
        let seventy = "a".repeat(70);
        let sixty_three = "a".repeat(63);
        let cases: &[(&str, &str)] = &[
            (
                "namespace/deployment/app-name",
                "namespace__deployment__app-name",
            ),
            (
                "payment/deployment/payment-api",
                "payment__deployment__payment-api",
            ),
            ("path//to///resource", "path____to______resource"),
            (&seventy, &sixty_three),
            (&sixty_three, &sixty_three),
            ("///", ""),
            ("ns/Kind/név", "ns__Kind__n_v"),
            ("-x-", "x"),
        ];
        for (input, want) in cases {
            let got = sanitize_label_value(input);
            assert_eq!(got, *want, "{input:?}");
            assert!(is_label_value(&got), "{got:?} must be a valid label value");
        }
    }

    #[test]
    fn sanitize_never_ends_in_underscore_after_truncation() {
        // 61 chars then '/' → "__" straddles the 63 boundary; upstream left a trailing '_'.
        let input = format!("{}/x", "a".repeat(62));
        let got = sanitize_label_value(&input);
        assert_eq!(got, "a".repeat(62));
        assert!(is_label_value(&got));
    }

    #[test]
    fn label_value_table() {
        let cases = [
            ("", true),
            ("a", true),
            ("a.b_c-d", true),
            ("_a", false),
            ("a_", false),
            ("a/b", false),
        ];
        for (s, want) in cases {
            assert_eq!(is_label_value(s), want, "{s:?}");
        }
    }
}
