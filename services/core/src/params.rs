//! Workflow parameters: the declared-parameter allow-list (upstream #243 defense in depth)
//! and the names the executors inject themselves.

use std::collections::{BTreeMap, BTreeSet};

/// Names the executors set themselves (after filtering); a request may not use them.
/// `TARGET_RESOURCE` goes to both engines, `HOME` and `TMPDIR` (`/tmp`) to Jobs.
pub const RESERVED_PARAMETER_NAMES: [&str; 3] = ["TARGET_RESOURCE", "HOME", "TMPDIR"];

/// True when `name` is reserved for the executors.
pub fn is_reserved_parameter_name(name: &str) -> bool {
    RESERVED_PARAMETER_NAMES.contains(&name)
}

/// True when `name` is UPPER_SNAKE_CASE (`^[A-Z][A-Z0-9_]*$`), hence a portable env var name
/// and a valid Tekton param name.
pub fn is_parameter_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|c| c.is_ascii_uppercase())
        && bytes.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Keeps only declared parameters: `None` keeps everything, `Some(empty)` strips everything.
pub fn filter_declared_parameters(
    params: &BTreeMap<String, String>,
    declared: Option<&BTreeSet<String>>,
) -> BTreeMap<String, String> {
    match declared {
        None => params.clone(),
        Some(names) => params
            .iter()
            .filter(|(k, _)| names.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Names that [`filter_declared_parameters`] strips, for logging (never log the values).
pub fn undeclared_parameter_names<'a>(
    params: &'a BTreeMap<String, String>,
    declared: Option<&BTreeSet<String>>,
) -> Vec<&'a str> {
    match declared {
        None => Vec::new(),
        Some(names) => params
            .keys()
            .filter(|k| !names.contains(*k))
            .map(String::as_str)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn filter_table_from_reference() {
        let three = map(&[("TIMEOUT", "30s"), ("MODE", "fast"), ("SECRET_KEY", "x")]);
        let ns_rep = map(&[
            ("NAMESPACE", "prod"),
            ("REPLICAS", "3"),
            ("HALLUCINATED", "1"),
            ("INJECTED_KEY", "rm -rf"),
        ]);
        let declared_two = set(&["TIMEOUT", "MODE"]);
        let declared_ns = set(&["NAMESPACE", "REPLICAS"]);
        let all = set(&["NAMESPACE", "REPLICAS", "HALLUCINATED", "INJECTED_KEY"]);
        let empty = set(&[]);
        type Case<'a> = (
            &'a str,
            &'a BTreeMap<String, String>,
            Option<&'a BTreeSet<String>>,
            BTreeMap<String, String>,
        );
        let cases: Vec<Case> = vec![
            ("U-295 nil declared: unchanged", &three, None, three.clone()),
            (
                "U-296 declared subset",
                &three,
                Some(&declared_two),
                map(&[("TIMEOUT", "30s"), ("MODE", "fast")]),
            ),
            (
                "U-297 empty declared: strip all",
                &three,
                Some(&empty),
                map(&[]),
            ),
            ("U-298 all declared", &ns_rep, Some(&all), ns_rep.clone()),
            (
                "U-299 undeclared stripped",
                &ns_rep,
                Some(&declared_ns),
                map(&[("NAMESPACE", "prod"), ("REPLICAS", "3")]),
            ),
            (
                "U-300 nil declared: all pass",
                &ns_rep,
                None,
                ns_rep.clone(),
            ),
            ("U-301 {} declared", &ns_rep, Some(&empty), map(&[])),
        ];
        for (name, params, declared, want) in cases {
            assert_eq!(filter_declared_parameters(params, declared), want, "{name}");
        }
        let none = map(&[]);
        assert!(
            filter_declared_parameters(&none, Some(&declared_ns)).is_empty(),
            "U-302 empty params"
        );
        assert!(
            filter_declared_parameters(&none, Some(&empty)).is_empty(),
            "U-303 both empty"
        );
        assert!(
            filter_declared_parameters(&none, None).is_empty(),
            "U-304 nothing in, nothing out"
        );
    }

    #[test]
    fn undeclared_names_for_logging() {
        let params = map(&[("A", "1"), ("B", "2"), ("C", "3")]);
        assert_eq!(
            undeclared_parameter_names(&params, Some(&set(&["B"]))),
            ["A", "C"]
        );
        assert!(undeclared_parameter_names(&params, None).is_empty());
    }

    #[test]
    fn parameter_name_table() {
        let cases = [
            ("A", true),
            ("NAMESPACE", true),
            ("DEPLOYMENT_NAME_2", true),
            ("A_", true),
            ("", false),
            ("a", false),
            ("Namespace", false),
            ("_A", false),
            ("2A", false),
            ("A-B", false),
            ("A.B", false),
            ("A B", false),
            ("ÄB", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_parameter_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn reserved_names() {
        for name in ["TARGET_RESOURCE", "HOME", "TMPDIR"] {
            assert!(is_reserved_parameter_name(name));
        }
        assert!(!is_reserved_parameter_name("NAMESPACE"));
    }
}
