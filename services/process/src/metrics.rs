//! `/metrics` in the format the scraper asks for: OpenMetrics for who sends
//! `Accept: application/openmetrics-text` (Prometheus does), the Prometheus text format
//! 0.0.4 otherwise (promtool, curl, older scrapers). `prometheus-client` encodes
//! OpenMetrics only; [`to_prometheus_text`] derives the other.

use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

/// Content type of OpenMetrics.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the request's `Accept` asks for OpenMetrics.
pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// The response to `GET /metrics` for an OpenMetrics exposition.
pub fn negotiated(headers: &HeaderMap, openmetrics: String) -> Response {
    if wants_openmetrics(headers) {
        ([(header::CONTENT_TYPE, OPENMETRICS)], openmetrics).into_response()
    } else {
        let text = to_prometheus_text(&openmetrics);
        ([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
    }
}

/// The Prometheus text format 0.0.4 of an OpenMetrics exposition (`promtool check
/// metrics` reads a counter family `x` with samples `x_total` as two families). Counter
/// families take their `_total` name; `# EOF` and `# UNIT` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const OM: &str = "# HELP a_sessions Sessions.\n# TYPE a_sessions counter\n\
        a_sessions_total 1\n# HELP a_secs Seconds.\n# TYPE a_secs gauge\n# UNIT a_secs seconds\n\
        a_secs 2\n# EOF\n";

    #[test]
    fn counters_take_their_total_name_and_eof_goes() {
        assert_eq!(
            to_prometheus_text(OM),
            "# HELP a_sessions_total Sessions.\n# TYPE a_sessions_total counter\n\
             a_sessions_total 1\n# HELP a_secs Seconds.\n# TYPE a_secs gauge\na_secs 2\n"
        );
    }

    #[test]
    fn content_type_follows_accept() {
        let cases = [
            (None, PROMETHEUS_TEXT),
            (Some("text/plain"), PROMETHEUS_TEXT),
            (
                Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
                OPENMETRICS,
            ),
        ];
        for (accept, want) in cases {
            let mut h = HeaderMap::new();
            if let Some(a) = accept {
                h.insert(header::ACCEPT, a.parse().unwrap());
            }
            let r = negotiated(&h, OM.to_owned());
            assert_eq!(r.headers()[header::CONTENT_TYPE], want, "{accept:?}");
        }
    }
}
