//! Process plumbing every binary of the product shares, written once: the shutdown
//! signal ([`shutdown`]), the admin port ([`admin`]: `/livez`, `/readyz`, `/metrics`)
//! with its format negotiation ([`metrics`]), and durations on the command line
//! ([`duration`]).
//!
//! ```text
//!  GET /readyz ─► admin::router(probe) ─► probe.readiness() ─► 200 | 503 + why
//!  SIGTERM / Ctrl-C ─► shutdown::on_signals() ─► CancellationToken ─► every task drains
//!  GET /metrics (Accept) ─► metrics::negotiated(openmetrics) ─► OpenMetrics | Prometheus 0.0.4
//!  --lease-duration 5s ─► duration::parse ─► std::time::Duration
//! ```
//!
//! It depends on none of our crates, so any binary may use it; the sandbox deliberately
//! does not (the test bed shares no code with what it tests).

pub mod admin;
pub mod duration;
pub mod metrics;
pub mod shutdown;
