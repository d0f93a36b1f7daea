//! Opening one session: dial, authenticate, send Hello, wait for Welcome.

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use wfe_proto::agent::agent_session_service_client::AgentSessionServiceClient;
use wfe_proto::agent::{
    Hello, SessionRequest, SessionResponse, Welcome, session_request, session_response,
};

/// Outbound messages queued per session before backpressure.
const OUTBOUND_CAPACITY: usize = 256;
/// How long the API may take to answer Hello.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session could not be opened or ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Bad URL, unreadable token or CA file.
    #[error("configuration: {0}")]
    Config(String),
    /// Could not connect.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The API ended the stream with a status.
    #[error("api: {0}")]
    Status(#[from] tonic::Status),
    /// The stream closed.
    #[error("stream closed: {0}")]
    Closed(&'static str),
}

/// Where and how to dial.
#[derive(Debug, Clone)]
pub struct Dial {
    /// API URL.
    pub url: String,
    /// Bearer token file.
    pub token_file: Option<std::path::PathBuf>,
    /// CA bundle; enables TLS.
    pub tls_ca: Option<std::path::PathBuf>,
}

/// An open session.
#[derive(Debug)]
pub struct Conn {
    /// Messages to the API.
    pub tx: mpsc::Sender<SessionRequest>,
    /// Messages from the API.
    pub rx: Streaming<SessionResponse>,
    /// The API's answer to Hello.
    pub welcome: Welcome,
}

/// Dials, sends `hello` and waits for Welcome.
pub async fn open(dial: &Dial, hello: Hello) -> Result<Conn, SessionError> {
    let channel = endpoint(dial).await?.connect().await?;
    let mut client = AgentSessionServiceClient::new(channel);
    let (tx, out_rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let hello = SessionRequest {
        message: Some(session_request::Message::Hello(hello)),
    };
    tx.send(hello)
        .await
        .map_err(|_| SessionError::Closed("outbound queue"))?;
    let mut request = tonic::Request::new(ReceiverStream::new(out_rx));
    if let Some(token) = read_token(dial.token_file.as_deref()).await? {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| SessionError::Config("token is not valid header text".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    let mut rx = client.session(request).await?.into_inner();
    let first = tokio::time::timeout(WELCOME_TIMEOUT, rx.message())
        .await
        .map_err(|_| SessionError::Closed("no Welcome in time"))??;
    match first.and_then(|m| m.message) {
        Some(session_response::Message::Welcome(welcome)) => Ok(Conn { tx, rx, welcome }),
        Some(_) => Err(SessionError::Closed("first message was not Welcome")),
        None => Err(SessionError::Closed("closed before Welcome")),
    }
}

async fn endpoint(dial: &Dial) -> Result<Endpoint, SessionError> {
    let mut ep = Endpoint::from_shared(dial.url.clone())
        .map_err(|e| SessionError::Config(format!("api url {:?}: {e}", dial.url)))?
        .connect_timeout(Duration::from_secs(5))
        // HTTP/2 pings notice a half-open connection even when no message flows.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true);
    if let Some(ca) = &dial.tls_ca {
        let pem = tokio::fs::read(ca)
            .await
            .map_err(|e| SessionError::Config(format!("tls ca {}: {e}", ca.display())))?;
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        ep = ep.tls_config(tls)?;
    }
    Ok(ep)
}

async fn read_token(path: Option<&Path>) -> Result<Option<String>, SessionError> {
    let Some(path) = path else { return Ok(None) };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| SessionError::Config(format!("token file {}: {e}", path.display())))?;
    Ok(Some(text.trim().to_owned()))
}

/// The heartbeat interval a Welcome asks for (2 s when absent or nonsensical).
pub fn heartbeat_interval(welcome: &Welcome) -> Duration {
    welcome
        .heartbeat_interval
        .as_ref()
        .and_then(|d| {
            let secs = u64::try_from(d.seconds).ok()?;
            let nanos = u32::try_from(d.nanos).ok()?;
            Some(Duration::new(secs, nanos))
        })
        .filter(|d| *d >= Duration::from_millis(10))
        .unwrap_or(Duration::from_secs(2))
}
