//! Command ids of the session protocol: what the API sends an agent (Assign, Cancel,
//! Release) is named after the execution and the assignment's fencing token, so a repeat
//! has the same id and an acknowledgement names what it acknowledges.

use crate::store::ExecKey;

/// Prefix of the command ids of releases.
pub const RELEASE_PREFIX: &str = "release/";

/// Prefix of the command ids of cancels.
pub const CANCEL_PREFIX: &str = "cancel/";

/// Command id of an Assign: `<namespace>/<name>/<fencing token>`.
pub fn assignment_id(key: &ExecKey, token: u64) -> String {
    format!("{}/{}/{token}", key.namespace, key.name)
}

/// Command id of a Cancel: `cancel/<namespace>/<name>/<fencing token>`.
pub fn cancel_id(key: &ExecKey, token: u64) -> String {
    format!("{CANCEL_PREFIX}{}", assignment_id(key, token))
}

/// Command id of a Release: `release/<namespace>/<name>/<fencing token>`.
pub fn release_id(key: &ExecKey, token: u64) -> String {
    format!("{RELEASE_PREFIX}{}", assignment_id(key, token))
}

/// The execution and fencing token of an Assign's command id.
pub fn parse_assignment_id(id: &str) -> Option<(ExecKey, u64)> {
    let mut it = id.rsplitn(3, '/');
    let token = it.next()?.parse().ok()?;
    let name = it.next()?.to_owned();
    let namespace = it.next()?.to_owned();
    Some((ExecKey { namespace, name }, token))
}

/// The execution and fencing token of a Release's command id.
pub fn parse_release_id(id: &str) -> Option<(ExecKey, u64)> {
    id.strip_prefix(RELEASE_PREFIX)
        .and_then(parse_assignment_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let key = ExecKey {
            namespace: "ns".into(),
            name: "we-1".into(),
        };
        assert_eq!(
            parse_assignment_id(&assignment_id(&key, 7)),
            Some((key.clone(), 7))
        );
        assert_eq!(
            parse_release_id(&release_id(&key, 7)),
            Some((key.clone(), 7))
        );
        assert_eq!(cancel_id(&key, 2), "cancel/ns/we-1/2");
        assert_eq!(parse_assignment_id("garbage"), None);
    }
}
