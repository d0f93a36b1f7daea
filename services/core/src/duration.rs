//! Go-style duration strings (`time.Duration.String()`), because audit payloads and
//! summaries are read by people and tools that already expect `2m30s`, `45s`, `1m0s`.

use std::time::Duration;

/// Formats a duration exactly like Go's `time.Duration.String()`.
///
/// `0s`, `750ms`, `1.5µs`, `45s`, `1m0s`, `2m30s`, `1h0m0s`, `26h3m4.5s`.
pub fn format_go(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
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
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let seconds = fraction(
        u128::from(s) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{m}m{seconds}s"),
        _ => format!("{h}h{m}m{seconds}s"),
    }
}

/// Rounds a duration to whole seconds (half up), as upstream does for `status.duration`.
pub fn round_to_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() >= 500_000_000);
    Duration::from_secs(secs)
}

/// `value / unit` with the remainder as decimals, trailing zeros trimmed (Go's fmtFrac).
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
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_micros(1_100), "1.1ms"),
            (Duration::from_millis(750), "750ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(150), "2m30s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3661), "1h1m1s"),
            (Duration::from_millis(93_784_500), "26h3m4.5s"),
            (Duration::from_nanos(60_000_000_001), "1m0.000000001s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_go(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn rounds_half_up_to_seconds() {
        let cases = [(1_499, 1), (1_500, 2), (0, 0), (59_999, 60)];
        for (millis, secs) in cases {
            assert_eq!(
                round_to_seconds(Duration::from_millis(millis)),
                Duration::from_secs(secs)
            );
        }
    }
}
