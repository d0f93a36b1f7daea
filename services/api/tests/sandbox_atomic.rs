//! The target lock relies on the API server's create being atomic: check the sandbox's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_succeed_once() {
    let env = common::Env::new().await;
    let api: Api<Lease> = Api::namespaced(env.sandbox.kube_client().unwrap(), "default");
    let mut handles = Vec::new();
    for i in 0..50 {
        let api = api.clone();
        handles.push(tokio::spawn(async move {
            let mut l = Lease::default();
            l.metadata.name = Some("one".into());
            l.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(format!("h{i}")),
                ..Default::default()
            });
            api.create(&PostParams::default(), &l).await.is_ok()
        }));
    }
    let mut ok = 0;
    for h in handles {
        ok += usize::from(h.await.unwrap());
    }
    assert_eq!(ok, 1);
}
