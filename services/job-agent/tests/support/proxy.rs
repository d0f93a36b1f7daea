//! A TCP proxy between agent and API that a test can cut (close every connection and
//! refuse new ones), restore, and point at another upstream (a new API instance).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct State {
    upstream: SocketAddr,
    cut: bool,
    /// Cancelled on `cut`: ends every connection opened before it.
    generation: CancellationToken,
}

/// The proxy; dropping it stops accepting.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _accept: tokio_util::sync::DropGuard,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            upstream,
            cut: false,
            generation: CancellationToken::new(),
        }));
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, state.clone(), stop.clone()));
        Self {
            addr,
            state,
            _accept: stop.drop_guard(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open connection; new ones are closed at once until `restore`.
    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = true;
        s.generation.cancel();
        s.generation = CancellationToken::new();
    }

    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }

    pub fn retarget(&self, upstream: SocketAddr) {
        self.state.lock().unwrap().upstream = upstream;
    }
}

async fn accept(listener: TcpListener, state: Arc<Mutex<State>>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((down, _)) = accepted else { continue };
        let (cut, upstream, generation) = {
            let s = state.lock().unwrap();
            (s.cut, s.upstream, s.generation.clone())
        };
        if cut {
            drop(down);
            continue;
        }
        tokio::spawn(pipe(down, upstream, generation));
    }
}

async fn pipe(mut down: TcpStream, upstream: SocketAddr, generation: CancellationToken) {
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        () = generation.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
    }
}
