//! Durations on the command line, parsed by `jiff`: `500ms`, `2s`, `5m`, `1h`, `1.5s`,
//! `1h 30m`, ISO 8601 `PT2S`, and a bare number of seconds (`7`, `0.5`) as the flags
//! always accepted. Days and longer are refused: they are not a fixed length.

use std::time::Duration;

/// Parses a duration flag (for clap's `value_parser`).
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|e| format!("invalid duration {s:?}: {e}"));
    }
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?} (use ms, s, m or h): {e}"))?;
    Duration::try_from(d).map_err(|_| format!("invalid duration {s:?}: negative"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_the_flags_accept() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("7", Duration::from_secs(7)),
            ("0.5", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            (" 30s ", Duration::from_secs(30)),
            ("1h 30m", Duration::from_secs(5400)),
            ("PT2S", Duration::from_secs(2)),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn refusals() {
        for s in ["5d", "x", "", "-2s", "-1", "2 parsecs"] {
            assert!(parse(s).is_err(), "{s} parsed");
        }
    }
}
