//! OCI image and Tekton bundle references pinned by digest:
//! `[registry[:port]/]path[/path…][:tag]@sha256:<64 lowercase hex>`, following the
//! distribution/reference grammar (path components `[a-z0-9]+` joined by `.`, `_`, `__` or
//! runs of `-`).

/// A parsed digest-pinned reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// Registry host with optional port, when the first component names one.
    pub registry: Option<String>,
    /// Repository path without registry, e.g. `kubernaut/workflows/restart`.
    pub repository: String,
    /// Tag, informational only: the digest decides what runs.
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: String,
}

/// Why a reference is not digest-pinned OCI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageReferenceError {
    /// Empty string.
    #[error("is required")]
    Empty,
    /// No `@sha256:` digest.
    #[error("must be pinned by digest: <repository>[:tag]@sha256:<64 lowercase hex>")]
    MissingDigest,
    /// The digest is not sha256 with 64 lowercase hex characters.
    #[error("digest {0:?} must be sha256: followed by 64 lowercase hex characters")]
    InvalidDigest(String),
    /// Tag not `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
    #[error("tag {0:?} is invalid: up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    InvalidTag(String),
    /// Registry host or port malformed.
    #[error("registry {0:?} is not a valid host[:port]")]
    InvalidRegistry(String),
    /// A repository path component is malformed.
    #[error(
        "repository path component {0:?} is invalid: lowercase letters and digits separated by '.', '_', '__' or '-'"
    )]
    InvalidPathComponent(String),
    /// Repository name longer than 255 characters.
    #[error("repository name is {0} characters long; at most 255 are allowed")]
    NameTooLong(usize),
}

const SHA256_PREFIX: &str = "sha256:";

/// Parses a digest-pinned reference.
pub fn parse_pinned_reference(s: &str) -> Result<ImageReference, ImageReferenceError> {
    if s.is_empty() {
        return Err(ImageReferenceError::Empty);
    }
    let (name_and_tag, digest) = s
        .split_once('@')
        .ok_or(ImageReferenceError::MissingDigest)?;
    check_digest(digest)?;
    let (name, tag) = split_tag(name_and_tag);
    if let Some(t) = tag {
        check_tag(t)?;
    }
    if name.len() > 255 {
        return Err(ImageReferenceError::NameTooLong(name.len()));
    }
    let (registry, repository) = split_registry(name);
    if let Some(r) = registry {
        check_registry(r)?;
    }
    for component in repository.split('/') {
        check_path_component(component)?;
    }
    Ok(ImageReference {
        registry: registry.map(str::to_owned),
        repository: repository.to_owned(),
        tag: tag.map(str::to_owned),
        digest: digest.to_owned(),
    })
}

fn check_digest(digest: &str) -> Result<(), ImageReferenceError> {
    let hex = digest.strip_prefix(SHA256_PREFIX);
    let ok = hex.is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    });
    if ok {
        Ok(())
    } else {
        Err(ImageReferenceError::InvalidDigest(digest.to_owned()))
    }
}

/// A `:` after the last `/` separates the tag; an earlier one is a registry port.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], Some(&s[last_slash + i + 1..])),
        None => (s, None),
    }
}

fn check_tag(tag: &str) -> Result<(), ImageReferenceError> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = tag.as_bytes();
    let ok = (1..=128).contains(&b.len())
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(ImageReferenceError::InvalidTag(tag.to_owned()))
    }
}

/// Docker's rule: the first component is a registry when it has a `.` or `:` or is
/// `localhost`, and more components follow.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_registry(registry: &str) -> Result<(), ImageReferenceError> {
    let (host, port) = match registry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()));
    if port_ok && host.split('.').all(is_domain_component) {
        Ok(())
    } else {
        Err(ImageReferenceError::InvalidRegistry(registry.to_owned()))
    }
}

fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `[a-z0-9]+` runs joined by exactly `.`, `_`, `__` or one or more `-`.
fn check_path_component(c: &str) -> Result<(), ImageReferenceError> {
    let err = || ImageReferenceError::InvalidPathComponent(c.to_owned());
    let alnum = |x: char| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut rest = c;
    loop {
        let run = rest.find(|x: char| !alnum(x)).unwrap_or(rest.len());
        if run == 0 {
            return Err(err());
        }
        rest = &rest[run..];
        if rest.is_empty() {
            return Ok(());
        }
        let sep = rest.find(alnum).ok_or_else(err)?;
        let s = &rest[..sep];
        if !(s == "." || s == "_" || s == "__" || s.bytes().all(|x| x == b'-')) {
            return Err(err());
        }
        rest = &rest[sep..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_pinned_references() {
        let cases = [
            (
                format!("ghcr.io/kubernaut/workflows/restart:v1.0.0@{D}"),
                Some("ghcr.io"),
                "kubernaut/workflows/restart",
                Some("v1.0.0"),
            ),
            (
                format!("quay.io/org/app@{D}"),
                Some("quay.io"),
                "org/app",
                None,
            ),
            (
                format!("localhost:5000/wf@{D}"),
                Some("localhost:5000"),
                "wf",
                None,
            ),
            (
                format!("localhost/wf:latest@{D}"),
                Some("localhost"),
                "wf",
                Some("latest"),
            ),
            (format!("busybox@{D}"), None, "busybox", None),
            (
                format!("library/my_app__x.y-z--w:1_0@{D}"),
                None,
                "library/my_app__x.y-z--w",
                Some("1_0"),
            ),
            (
                format!("registry.example.com:443/a/b/c:V1.2-rc.1@{D}"),
                Some("registry.example.com:443"),
                "a/b/c",
                Some("V1.2-rc.1"),
            ),
        ];
        for (s, registry, repo, tag) in &cases {
            let r = parse_pinned_reference(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(
                (
                    r.registry.as_deref(),
                    r.repository.as_str(),
                    r.tag.as_deref()
                ),
                (*registry, *repo, *tag),
                "{s}"
            );
            assert_eq!(r.digest, D);
        }
    }

    #[test]
    fn rejects_malformed_references() {
        use ImageReferenceError::*;
        let upper = D.to_uppercase().replace("SHA256", "sha256");
        let cases: Vec<(String, ImageReferenceError)> = vec![
            (String::new(), Empty),
            ("ghcr.io/kubernaut/restart:v1".into(), MissingDigest),
            (
                "ghcr.io/kubernaut/restart@sha256:abc".into(),
                InvalidDigest("sha256:abc".into()),
            ),
            (format!("ghcr.io/k/r@{upper}"), InvalidDigest(upper.clone())),
            (
                format!("ghcr.io/k/r@sha512:{}", &D[7..]),
                InvalidDigest(format!("sha512:{}", &D[7..])),
            ),
            (
                format!("ghcr.io/k/r@{D}@{D}"),
                InvalidDigest(format!("{D}@{D}")),
            ),
            (format!("ghcr.io/k/r:-bad@{D}"), InvalidTag("-bad".into())),
            (format!("ghcr.io/k/r:@{D}"), InvalidTag(String::new())),
            (
                format!("ghcr.io/k/r:{}@{D}", "a".repeat(129)),
                InvalidTag("a".repeat(129)),
            ),
            (
                format!("ghcr.io/Kubernaut/r@{D}"),
                InvalidPathComponent("Kubernaut".into()),
            ),
            (
                format!("ghcr.io/k//r@{D}"),
                InvalidPathComponent(String::new()),
            ),
            (
                format!("ghcr.io/k/r.@{D}"),
                InvalidPathComponent("r.".into()),
            ),
            (
                format!("ghcr.io/k/a..b@{D}"),
                InvalidPathComponent("a..b".into()),
            ),
            (
                format!("ghcr.io/k/a___b@{D}"),
                InvalidPathComponent("a___b".into()),
            ),
            (
                format!("ghcr.io/k/a b@{D}"),
                InvalidPathComponent("a b".into()),
            ),
            (
                format!("ghcr.io:port/k@{D}"),
                InvalidRegistry("ghcr.io:port".into()),
            ),
            (
                format!("-ghcr.io/k@{D}"),
                InvalidRegistry("-ghcr.io".into()),
            ),
            (
                format!("ghcr..io/k@{D}"),
                InvalidRegistry("ghcr..io".into()),
            ),
            (format!("{}@{D}", "a".repeat(256)), NameTooLong(256)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_pinned_reference(&s), Err(want), "{s}");
        }
    }
}
