//! The real kubectl (v1.32, /usr/bin/kubectl or $KUBECTL) against the sandbox: apply a CRD,
//! create and get objects, printer columns, `kubectl wait --for=condition`, cascading delete.
//! kubectl is required: these tests fail (not skip) when it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use kube::api::{Patch, PatchParams};
use serde_json::json;

struct Kubectl {
    server: String,
    home: PathBuf,
}

impl Kubectl {
    fn new(sb: &wfe_sandbox::Sandbox) -> Self {
        let home = std::env::temp_dir().join(format!("sandbox-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&home).unwrap();
        Self {
            server: sb.url(),
            home,
        }
    }

    /// A kubectl command isolated from ~/.kube: own HOME, empty KUBECONFIG, own cache dir.
    fn cmd(&self, args: &[&str]) -> Command {
        let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let mut c = Command::new(bin);
        c.env("HOME", &self.home)
            .env("KUBECONFIG", self.home.join("kubeconfig-none"))
            .arg(format!("--server={}", self.server))
            .arg(format!("--cache-dir={}", self.home.join("cache").display()))
            .args(args);
        c
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl is installed (set KUBECTL to its path)");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Run and require success; returns stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout.into_owned()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

const WIDGET: &str = r#"
apiVersion: test.sandbox.io/v1
kind: Widget
metadata:
  name: w1
  labels: {app: demo}
spec:
  targetResource: default/deploy-a
  replicas: 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_crd_get_columns_and_wait_for_condition() {
    let sb = common::start().await;
    let k = Kubectl::new(&sb);
    let out = k.ok(&["apply", "-f", "-"], Some(common::WIDGETS_CRD));
    assert!(out.contains("widgets.test.sandbox.io created"), "{out}");
    k.ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.test.sandbox.io",
            "--timeout=10s",
        ],
        None,
    );
    assert!(
        k.ok(&["apply", "-f", "-"], Some(WIDGET))
            .contains("widget.test.sandbox.io/w1 created")
    );
    assert!(
        k.ok(&["apply", "-f", "-"], Some(WIDGET))
            .contains("unchanged")
    );

    // Invalid objects are rejected by the server with the field named.
    let bad = k.run(
        &["apply", "-f", "-"],
        Some(&WIDGET.replace("replicas: 2", "replicas: 99")),
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("spec.replicas"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // `kubectl wait` watches until a condition appears; set it from another client meanwhile.
    let waiter = k
        .cmd(&[
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=20s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let api = common::widgets(&sb.kube_client().unwrap(), "default");
    let status = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "reason": "AllGood"}]}});
    api.patch_status("w1", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || waiter.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl wait: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));

    let table = k.ok(&["get", "wdg"], None);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TARGET", "PHASE", "REASON", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["w1", "default/deploy-a", "Running", "AllGood"]);
    assert!(row[4].ends_with('s'), "age column: {table}");

    let by_label = k.ok(
        &[
            "get",
            "widgets",
            "-l",
            "app=demo",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    );
    assert_eq!(by_label, "w1");
    let yaml = k.ok(&["get", "widget.test.sandbox.io", "w1", "-o", "yaml"], None);
    assert!(
        yaml.contains("mode: fast"),
        "defaulted field visible: {yaml}"
    );
    sb.shutdown().await;
}

const JOB_AND_CM: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: j1}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1", b: "2"}
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: j1-pod
  ownerReferences: [{apiVersion: batch/v1, kind: Job, name: j1, uid: OWNER_UID, controller: true, blockOwnerDeletion: true}]
spec:
  containers: [{name: c, image: busybox}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_get_and_cascading_delete() {
    let sb = common::start().await;
    let k = Kubectl::new(&sb);
    let out = k.ok(&["create", "-f", "-"], Some(JOB_AND_CM));
    assert!(
        out.contains("job.batch/j1 created") && out.contains("configmap/settings created"),
        "{out}"
    );
    let cm_table = k.ok(&["get", "configmap", "settings"], None);
    assert!(
        cm_table.contains("DATA")
            && cm_table.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("2"),
        "{cm_table}"
    );
    let uid = k.ok(
        &["get", "job", "j1", "-o", "jsonpath={.metadata.uid}"],
        None,
    );
    k.ok(
        &["create", "-f", "-"],
        Some(&POD.replace("OWNER_UID", &uid)),
    );
    assert!(k.ok(&["get", "pods"], None).contains("j1-pod"));

    let dup = k.run(&["create", "-f", "-"], Some(JOB_AND_CM));
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("AlreadyExists"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );

    let out = k.ok(
        &[
            "delete",
            "job",
            "j1",
            "--cascade=foreground",
            "--timeout=20s",
        ],
        None,
    );
    assert!(out.contains("job.batch \"j1\" deleted"), "{out}");
    let pods = k.run(&["get", "pods", "-o", "name"], None);
    assert!(
        String::from_utf8_lossy(&pods.stdout).trim().is_empty(),
        "dependent pod deleted with its job"
    );
    let missing = k.run(&["get", "job", "j1"], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
    sb.shutdown().await;
}

const APP_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
    - name: main
      image: busybox:1
      env: [{name: A, value: "1"}]
    - name: side
      image: nginx:1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_client_side_apply_merges_containers_by_name() {
    let sb = common::start().await;
    let k = Kubectl::new(&sb);
    k.ok(&["apply", "-f", "-"], Some(APP_POD));
    let changed = APP_POD.replace("busybox:1", "busybox:2").replace(
        r#"env: [{name: A, value: "1"}]"#,
        r#"env: [{name: A, value: "1"}, {name: B, value: "2"}]"#,
    );
    assert!(
        k.ok(&["apply", "-f", "-"], Some(&changed))
            .contains("pod/app configured")
    );
    let images = k.ok(
        &[
            "get",
            "pod",
            "app",
            "-o",
            "jsonpath={.spec.containers[*].image}",
        ],
        None,
    );
    assert_eq!(images, "busybox:2 nginx:1");
    let env = k.ok(
        &[
            "get",
            "pod",
            "app",
            "-o",
            "jsonpath={.spec.containers[0].env[*].name}",
        ],
        None,
    );
    assert_eq!(env, "A B");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_typed_create_commands_send_protobuf_that_the_sandbox_reads() {
    let sb = common::start().await;
    let k = Kubectl::new(&sb);
    k.ok(&["create", "namespace", "team"], None);
    k.ok(
        &[
            "create",
            "configmap",
            "cfg",
            "-n",
            "team",
            "--from-literal=a=b",
        ],
        None,
    );
    k.ok(
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "team",
            "--from-literal=pw=hunter2",
        ],
        None,
    );
    assert_eq!(
        k.ok(
            &[
                "get",
                "configmap",
                "cfg",
                "-n",
                "team",
                "-o",
                "jsonpath={.data.a}"
            ],
            None
        ),
        "b"
    );
    let secret = k.ok(
        &[
            "get",
            "secret",
            "creds",
            "-n",
            "team",
            "-o",
            "jsonpath={.type} {.data.pw}",
        ],
        None,
    );
    assert_eq!(secret, "Opaque aHVudGVyMg==");
    sb.shutdown().await;
}
