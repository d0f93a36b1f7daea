//! Go `time.Duration` strings (`"1h0m0s"`, `"90s"`, `"500ms"`), as Tekton and our
//! behaviour knobs write them.

use std::time::Duration;

/// Parses a Go duration string: an optional sign, then one or more decimal numbers
/// each followed by a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); a bare `"0"` is zero.
///
/// Negative durations are clamped to zero because every caller uses them as a wait.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        nanos += number * unit_nanos(&rest[..unit_len])?;
        rest = &rest[unit_len..];
    }
    if negative || !nanos.is_finite() {
        return Some(Duration::ZERO);
    }
    // Durations beyond ~292 years are not meaningful waits; saturate.
    Some(Duration::from_nanos(nanos.min(u64::MAX as f64) as u64))
}

fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Formats a duration as Go's `Duration.String()` does: `"1h0m0s"`, `"1m30s"`,
/// `"2.5s"`, `"500ms"`, `"0s"`. Tekton quotes timeouts in this form in its messages.
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / unit` as a decimal without trailing zeros (`1500, 1000` → `"1.5"`).
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        let cases = [
            ("0", Some(0)),
            ("0s", Some(0)),
            ("500ms", Some(500)),
            ("1.5s", Some(1_500)),
            ("1h0m0s", Some(3_600_000)),
            ("1m30s", Some(90_000)),
            ("90s", Some(90_000)),
            ("2h45m", Some(9_900_000)),
            ("-3s", Some(0)),
            ("", None),
            ("abc", None),
            ("10", None),
            ("5d", None),
            ("1.2.3s", None),
        ];
        for (text, want) in cases {
            let got = parse_go_duration(text).map(|d| d.as_millis() as u64);
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(2_500), "2.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_secs(5400), "1h30m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go_duration(d), want);
        }
    }
}
