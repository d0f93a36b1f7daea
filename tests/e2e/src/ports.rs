//! Free loopback ports for components that need a known address before they start.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;

use anyhow::Context;

/// Ports handed out in this process, so parallel tests never get the same one even
/// before its component has bound it.
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback address whose port was free a moment ago and was not handed out before.
///
/// Components must keep their address across restarts (the kubeconfig and the
/// agents' `--api-url` name it), so the harness picks ports rather than using port 0.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
        let addr = l.local_addr().context("reading the bound port")?;
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(addr.port()) {
            return Ok(addr);
        }
    }
}
