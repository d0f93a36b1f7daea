//! TLS on the gRPC port (`--tls-cert`/`--tls-key`): a caller and a real agent session
//! (`wfe_agent::session::open` with `--tls-ca`) verify the API's certificate; a plaintext
//! client is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use wfe_proto::v1;
use wfe_proto::v1::workflow_execution_service_client::WorkflowExecutionServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_and_agents_speak_tls_when_certificates_are_configured() {
    let env = Env::new().await;
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path, ca_path) = (
        env.dir.path().join("tls.crt"),
        env.dir.path().join("tls.key"),
        env.dir.path().join("ca.crt"),
    );
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(&ca_path, cert.cert.pem()).unwrap();
    let mut config = env.config();
    config.tls_cert = Some(cert_path);
    config.tls_key = Some(key_path);
    let api = env.start(config).await;
    let port = api.grpc_addr.port();

    // A caller that trusts the certificate.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(cert.cert.pem()))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("TLS handshake with the API");
    let mut c =
        WorkflowExecutionServiceClient::with_interceptor(channel, Bearer(CALLER_TOKEN.to_owned()));
    let res = c
        .execute_workflow(execute_req("default/Deployment/tls", "wf-1", ""))
        .await
        .expect("ExecuteWorkflow over TLS")
        .into_inner();
    assert_eq!(res.disposition, v1::Disposition::Created as i32);

    // The agent runtime's own dialer, with --tls-ca, opens a session and gets the work.
    let token = env.dir.path().join("agent-token");
    std::fs::write(&token, "job-local\n").unwrap();
    let dial = wfe_agent::session::Dial {
        url: format!("https://127.0.0.1:{port}"),
        token_file: Some(token),
        tls_ca: Some(ca_path),
    };
    let mut conn = wfe_agent::session::open(&dial, agent::hello("job-tls", "", "job", vec![]))
        .await
        .expect("agent session over TLS");
    let assigned = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let m = conn.rx.message().await.unwrap().unwrap().message.unwrap();
            if let wfe_proto::agent::session_response::Message::Assign(a) = m {
                return a;
            }
        }
    })
    .await
    .expect("an Assign within 10 s");
    assert_eq!(
        assigned.execution.unwrap().name,
        res.execution.unwrap().name
    );

    // Plaintext to the TLS port gets nowhere.
    let plain = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        let mut c =
            WorkflowExecutionServiceClient::with_interceptor(ch, Bearer(CALLER_TOKEN.to_owned()));
        let err = c
            .get_workflow_execution(v1::GetWorkflowExecutionRequest {
                name: "x".into(),
                namespace: String::new(),
            })
            .await
            .expect_err("plaintext refused on the TLS port");
        // NotFound would mean the call reached the service in plaintext.
        assert_ne!(err.code(), tonic::Code::NotFound, "{err:?}");
    }
    api.shutdown().await;
}
