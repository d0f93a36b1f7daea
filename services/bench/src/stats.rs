//! Percentiles of latency samples.

use std::time::Duration;

/// Sorted latency samples.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Sorts the samples.
    pub fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Self(v)
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q`-quantile (0..=1) by nearest rank; None without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0.get(rank.clamp(1, self.0.len()) - 1).copied()
    }

    /// The largest sample.
    pub fn max(&self) -> Option<Duration> {
        self.0.last().copied()
    }
}

/// Milliseconds with two decimals, or "-".
pub fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let s = Samples::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(s.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(s.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(s.quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(s.quantile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Samples::default().quantile(0.5), None);
    }
}
