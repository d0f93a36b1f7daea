//! The API side of the agent session protocol (docs/agent-protocol.md).
//!
//! ```text
//!  agent ──Session stream──► session::SessionService ──► registry (connected agents)
//!        ◄── Welcome/Assign/Cancel ──┐        │ reports ──► status::report (fencing, binding)
//!                                    │        │ acks ─────► Dispatcher::on_ack
//!  ExecuteWorkflow ── free agent here? persist Pending + assignment in one write → Assign
//!                                 Dispatcher (woken by index changes and a tick):
//!                                   Pending → pick agent → persist assignment → Assign
//!                                   unacked → resend;  agent lost → reassign (adopt)
//!                                   cancel requested → Cancel
//!                                   terminal + audited + retention → Release
//!  liveness: a Lease per connected agent, renewed by its replica and read by all, so a
//!  replica never calls another replica's agent lost, nor an engine agentless.
//! ```

pub mod commands;
pub mod dispatcher;
pub mod liveness;
pub mod plan;
pub mod registry;
pub mod release;
pub mod session;

pub use dispatcher::{Dispatcher, availability};
