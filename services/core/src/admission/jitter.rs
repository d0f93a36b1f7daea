//! Jitter sources for the backoff schedule. The core never draws randomness itself.

use sha2::{Digest, Sha256};

/// A source of jitter factors in [-1, 1]; the backoff delay moves by `factor × jitter_percent`.
pub trait Jitter {
    /// The next factor; values outside [-1, 1] are clamped and NaN counts as 0.
    fn factor(&mut self) -> f64;
}

/// Always the same factor: for tests and for callers that want no jitter (`FixedJitter(0.0)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedJitter(pub f64);

impl Jitter for FixedJitter {
    fn factor(&mut self) -> f64 {
        self.0
    }
}

/// A deterministic factor sequence derived from a seed string. Seed it with the target:
/// Preflight and ExecuteWorkflow then promise the same clear time (a fresh random draw per
/// call would make the promised time move), while different targets still spread out.
#[derive(Debug, Clone)]
pub struct SeededJitter {
    seed: String,
    draws: u64,
}

impl SeededJitter {
    /// A jitter source for `seed`.
    pub fn new(seed: impl Into<String>) -> Self {
        Self {
            seed: seed.into(),
            draws: 0,
        }
    }
}

impl Jitter for SeededJitter {
    fn factor(&mut self) -> f64 {
        let mut h = Sha256::new();
        h.update(self.seed.as_bytes());
        h.update(self.draws.to_be_bytes());
        self.draws += 1;
        let digest = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // 53 bits give an exactly representable uniform value in [0, 1).
        let unit = (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64;
        unit * 2.0 - 1.0
    }
}

/// Clamps a factor to [-1, 1]; NaN becomes 0 so a broken source cannot poison a delay.
pub(crate) fn sanitize(factor: f64) -> f64 {
    if factor.is_nan() {
        0.0
    } else {
        factor.clamp(-1.0, 1.0)
    }
}
