//! Kubernetes resource names and quantities, checked here so a bad value fails the request
//! instead of the agent's Job creation later.

use crate::naming::is_dns1123_subdomain;

const SUFFIXES: [&str; 15] = [
    "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
];

/// True for a non-negative Kubernetes quantity: `[+]<number>[suffix]` where number is
/// digits with at most one `.`, and suffix is a binary or decimal SI suffix or an
/// exponent `e<int>` / `E<int>`.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    is_number(number) && is_suffix(suffix)
}

fn is_number(n: &str) -> bool {
    n.bytes().any(|c| c.is_ascii_digit()) && n.bytes().filter(|&c| c == b'.').count() <= 1
}

fn is_suffix(s: &str) -> bool {
    if s.is_empty() || SUFFIXES.contains(&s) {
        return true;
    }
    let Some(exp) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
    !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
}

/// True for a resource name: a qualified name `[prefix/]name`, where prefix is a DNS-1123
/// subdomain and name is 1–63 of `[A-Za-z0-9_.-]` with alphanumeric ends (`cpu`,
/// `ephemeral-storage`, `nvidia.com/gpu`).
pub fn is_resource_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain)
        && !name.is_empty()
        && crate::naming::is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_table() {
        let ok = [
            "1",
            "100m",
            "0.5",
            ".5",
            "1.",
            "256Mi",
            "2Gi",
            "1e3",
            "1E-2",
            "+1",
            "128974848",
            "129M",
            "1k",
        ];
        for q in ok {
            assert!(is_quantity(q), "{q} should be valid");
        }
        let bad = [
            "", "-1", "1.2.3", "Mi", "1MB", "1mi", "1e", "1e+", "abc", " 1", "1 ", "1Kii",
        ];
        for q in bad {
            assert!(!is_quantity(q), "{q:?} should be invalid");
        }
    }

    #[test]
    fn resource_name_table() {
        let cases = [
            ("cpu", true),
            ("memory", true),
            ("ephemeral-storage", true),
            ("nvidia.com/gpu", true),
            ("", false),
            ("/gpu", false),
            ("Nvidia.com/gpu", false),
            ("nvidia.com/", false),
            ("a b", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_resource_name(name), want, "{name:?}");
        }
    }
}
