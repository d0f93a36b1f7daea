//! `wfe dev`: starts each component as a child process and supervises them
//! ([`crate::supervise`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::{Backend, DevArgs};
use crate::state::StateFiles;
use crate::supervise::{Component, RestartPolicy, stop_all, supervise};

/// Starts the stack, prints how to use it, restarts a component that dies, and stops
/// it on Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.fresh && args.state_dir.exists() {
        std::fs::remove_dir_all(&args.state_dir).context("clearing the state directory")?;
    }
    let files = crate::state::prepare(&args)?;
    let kubeconfig = path_str(&files.kubeconfig)?;
    let env = [("KUBECONFIG", kubeconfig.as_str())];

    let mut components = Vec::new();
    let cluster_args = cluster_args(&args, &files)?;
    let cluster_args: Vec<&str> = cluster_args.iter().map(String::as_str).collect();
    components.push(Component::spawn("kubernetes", &cluster_args, &env)?);
    wait_until_cluster_ready(&files.kubeconfig, &mut components).await?;

    let grpc = args.grpc_addr.to_string();
    let admin = args.admin_addr.to_string();
    let callers = path_str(&files.caller_tokens)?;
    let agents = path_str(&files.agent_tokens)?;
    let audit = path_str(&files.audit_log)?;
    let mut api_args = vec![
        "api",
        "--grpc-addr",
        &grpc,
        "--admin-addr",
        &admin,
        "--caller-tokens-file",
        &callers,
        "--agent-tokens-file",
        &agents,
        "--audit-file",
        &audit,
        "--instance-id",
        "workflow-api-dev",
    ];
    let api_tunings = args.tunings.api_args();
    api_args.extend(api_tunings.iter().map(String::as_str));
    components.push(Component::spawn("workflow-api", &api_args, &env)?);
    wait_until_up(args.grpc_addr, &mut components).await?;

    let api_url = format!("http://{}", args.grpc_addr);
    for (i, (name, engine)) in [("job-agent", "job"), ("tekton-agent", "tekton")]
        .into_iter()
        .enumerate()
    {
        let token = path_str(&files.agent_token(engine))?;
        let mut admin = args.admin_addr;
        admin.set_port(args.admin_addr.port() + 1 + i as u16);
        let admin = admin.to_string();
        let id = format!("{name}-dev");
        let mut agent_args = vec![
            name,
            "--api-url",
            &api_url,
            "--token-file",
            &token,
            "--admin-addr",
            &admin,
            "--agent-id",
            &id,
        ];
        let agent_tunings = args.tunings.agent_args();
        agent_args.extend(agent_tunings.iter().map(String::as_str));
        components.push(Component::spawn(name, &agent_args, &env)?);
    }

    crate::banner::print(&args, &files);
    let policy = RestartPolicy {
        base: args.restart_backoff,
        max: args.restart_backoff_max.max(args.restart_backoff),
    };
    let outcome = supervise(&mut components, policy).await;
    stop_all(&mut components).await;
    outcome
}

/// `wfe sandbox …` or `wfe real-cluster …`.
fn cluster_args(args: &DevArgs, files: &StateFiles) -> anyhow::Result<Vec<String>> {
    let listen = args.sandbox_addr.to_string();
    Ok(match args.backend {
        Backend::Sandbox => vec![
            "sandbox".into(),
            "--listen".into(),
            listen,
            "--data-dir".into(),
            path_str(&args.state_dir.join("sandbox"))?,
        ],
        Backend::Real => vec![
            "real-cluster".into(),
            "--listen".into(),
            listen,
            "--data-dir".into(),
            path_str(&files.real_cluster_dir)?,
            "--token-auth-file".into(),
            path_str(&files.kube_tokens)?,
        ],
    })
}

/// Waits until the cluster serves the execution namespace with its `default` service
/// account (on the real backend: CRDs installed, kube-controller-manager working),
/// failing early if a component exits.
async fn wait_until_cluster_ready(
    kubeconfig: &Path,
    components: &mut [Component],
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(client) = wfe_control_plane::kubeconfig::client(kubeconfig).await {
            let accounts: kube::Api<ServiceAccount> =
                kube::Api::namespaced(client, "kubernaut-workflows");
            if matches!(accounts.get_opt("default").await, Ok(Some(_))) {
                return Ok(());
            }
        }
        for c in components.iter_mut() {
            if let Some(status) = c.exited()? {
                bail!("{} exited during start-up ({status})", c.name);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the Kubernetes API did not become ready within 180 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn path_str(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(str::to_owned)
        .context("state directory path is not UTF-8")
}

/// Waits until `addr` accepts connections, failing early if a component exits.
async fn wait_until_up(
    addr: std::net::SocketAddr,
    components: &mut [Component],
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        for c in components.iter_mut() {
            if let Some(status) = c.exited()? {
                bail!("{} exited during start-up ({status})", c.name);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{addr} did not come up within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub use wfe_process::shutdown::signal as wait_for_shutdown_signal;
