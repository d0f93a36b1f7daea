//! `wfe`: the local stack in one command.
//!
//! `wfe dev` starts every component as a child process of this same binary
//! (`wfe sandbox`, …), wires them together, prints where to connect, restarts one
//! that dies, and stops them all on Ctrl-C. Each component is the same library its production binary
//! runs; only the wiring is local.

use clap::Parser;

mod banner;
mod cli;
mod components;
mod dev;
mod real_cluster;
mod sandbox;
mod state;
mod supervise;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::Cli::parse().run().await
}
