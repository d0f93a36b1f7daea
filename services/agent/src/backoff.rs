//! Reconnect backoff: exponential with full jitter (AWS architecture blog, "Exponential
//! Backoff And Jitter"). Pure, so the schedule has table tests; the caller passes the
//! jitter source, production uses [`RandomJitter`].

use std::time::Duration;

/// Backoff parameters. The protocol's defaults (docs/agent-protocol.md) are 100 ms base and
/// a 10 s cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry.
    pub base: Duration,
    /// No delay is ever longer than this.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        }
    }
}

/// Draws a uniformly distributed value in `0..=max` (milliseconds).
pub trait JitterSource {
    /// A value in `0..=max`.
    fn draw(&mut self, max: u64) -> u64;
}

/// Jitter from the thread-local RNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomJitter;

impl JitterSource for RandomJitter {
    fn draw(&mut self, max: u64) -> u64 {
        rand::random_range(0..=max)
    }
}

/// Always the same fraction of `max` (per mille), for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub u64);

impl JitterSource for FixedJitter {
    fn draw(&mut self, max: u64) -> u64 {
        max.saturating_mul(self.0.min(1000)) / 1000
    }
}

impl Backoff {
    /// The ceiling for retry number `attempt` (0-based): `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // 2^31 already exceeds any sane cap; clamping keeps the shift defined.
        let factor = 1u64 << attempt.min(31);
        let base_ms = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let cap_ms = u64::try_from(self.cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(base_ms.saturating_mul(factor).min(cap_ms))
    }

    /// Full jitter: a uniform delay in `0..=ceiling(attempt)`.
    pub fn delay(&self, attempt: u32, jitter: &mut impl JitterSource) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(jitter.draw(ceiling).min(ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_until_cap() {
        let b = Backoff::default();
        let cases = [
            (0, 100),
            (1, 200),
            (2, 400),
            (6, 6_400),
            (7, 10_000),
            (40, 10_000),
            (u32::MAX, 10_000),
        ];
        for (attempt, ms) in cases {
            assert_eq!(
                b.ceiling(attempt),
                Duration::from_millis(ms),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay(3, &mut FixedJitter(0)), Duration::ZERO);
        assert_eq!(
            b.delay(3, &mut FixedJitter(500)),
            Duration::from_millis(400)
        );
        assert_eq!(
            b.delay(3, &mut FixedJitter(1000)),
            Duration::from_millis(800)
        );
        assert_eq!(b.delay(50, &mut FixedJitter(1000)), Duration::from_secs(10));
    }

    #[test]
    fn random_jitter_stays_in_range() {
        let b = Backoff::default();
        for attempt in 0..12 {
            let d = b.delay(attempt, &mut RandomJitter);
            assert!(d <= b.ceiling(attempt));
        }
    }
}
