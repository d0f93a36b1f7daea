use super::*;
use serde_json::json;
use wfe_k8s::labels;

fn event(kind: &str, name: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.1"), "namespace": "ns"},
        "involvedObject": {"kind": kind, "name": name},
    }))
    .expect("valid event")
}

/// The scan the index replaces: which events `events_of(job)` returned.
fn scanned(job: &str, e: &Event) -> bool {
    let o = &e.involved_object;
    match (o.kind.as_deref(), o.name.as_deref()) {
        (Some("Job"), Some(n)) => n == job,
        (Some("Pod"), Some(n)) => n.starts_with(&format!("{job}-")),
        _ => false,
    }
}

#[test]
fn event_keys_match_the_prefix_scan() {
    let events = [
        event("Job", "wfe-a1"),
        event("Pod", "wfe-a1-x7k2p"),
        event("Pod", "wfe-a1-b-x7k2p"),
        event("Pod", "nodash"),
        event("Node", "wfe-a1-x7k2p"),
    ];
    let jobs = ["wfe", "wfe-a1", "wfe-a1-b", "nodash", "x7k2p", "other"];
    for e in &events {
        let keys = jobs_of_event(e);
        for job in jobs {
            let name = e.involved_object.name.as_deref();
            assert_eq!(
                keys.iter().any(|k| k == job),
                scanned(job, e),
                "job {job}, event about {name:?}"
            );
        }
    }
    assert_eq!(jobs_of_event(&events[1]), ["wfe", "wfe-a1"]);
}

#[test]
fn pods_and_jobs_are_keyed_by_job_name_and_execution() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "wfe-a1-x7k2p", "labels": {"batch.kubernetes.io/job-name": "wfe-a1"}},
    }))
    .expect("valid pod");
    assert_eq!(job_of_pod(&pod), ["wfe-a1"]);
    let legacy: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "labels": {"job-name": "old"}},
    }))
    .expect("valid pod");
    assert_eq!(job_of_pod(&legacy), ["old"]);
    assert!(job_of_pod(&Pod::default()).is_empty());

    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "wfe-a1", "labels": {labels::WORKFLOW_EXECUTION_UID: "uid-1"}},
    }))
    .expect("valid job");
    assert_eq!(execution_of_job(&job), ["uid-1"]);
    assert!(execution_of_job(&Job::default()).is_empty());
}
