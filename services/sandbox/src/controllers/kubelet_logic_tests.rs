use super::*;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodSpec, SecretKeySelector, SecretVolumeSource, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const TIMING: KubeletTiming = KubeletTiming {
    startup: Duration::ZERO,
    retry: Duration::from_secs(2),
    pull_backoff: Duration::from_secs(3),
};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn pod(volumes: Vec<Volume>, env: Vec<EnvVar>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("job-abcde".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "workflow".into(),
                image: Some("quay.io/wf/restart:v1".into()),
                env: Some(env),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        status: None,
    }
}

fn secret_volume(name: &str) -> Volume {
    Volume {
        name: format!("secret-{name}"),
        secret: Some(SecretVolumeSource {
            secret_name: Some(name.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn secret_env(name: &str) -> EnvVar {
    EnvVar {
        name: "TOKEN".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: name.into(),
                key: "k".into(),
                optional: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Applies a step's status to the pod, as the API server would.
fn apply(mut pod: Pod, step: &PodStep) -> Pod {
    if let Some(s) = &step.status {
        pod.status = Some(s.clone());
    }
    pod
}

fn step(
    p: &Pod,
    outcome: &Outcome,
    dur: u64,
    started: Option<Timestamp>,
    now: Timestamp,
) -> PodStep {
    let blocker = find_blocker(p, outcome, |_, _| true);
    next_pod_step(
        p,
        outcome,
        Duration::from_secs(dur),
        blocker.as_ref(),
        started,
        TIMING,
        now,
    )
}

fn main_state(p: &Pod) -> k8s_openapi::api::core::v1::ContainerState {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .and_then(|c| c.first().cloned())
        .and_then(|c| c.state)
        .unwrap_or_default()
}

fn reasons(step: &PodStep) -> Vec<&str> {
    step.events.iter().map(|e| e.reason.as_str()).collect()
}

#[test]
fn success_walks_scheduled_running_succeeded() {
    let p = pod(vec![], vec![]);
    let s1 = step(&p, &Outcome::Succeed, 2, None, t(0));
    assert_eq!(reasons(&s1), vec!["Scheduled"]);
    let p = apply(p, &s1);
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let s2 = step(&p, &Outcome::Succeed, 2, None, t(0));
    assert_eq!(reasons(&s2), vec!["Pulled", "Created", "Started"]);
    assert_eq!(s2.started, Some(t(0)));
    let p = apply(p, &s2);
    assert!(has_condition(&p, "Ready"));
    let s3 = step(&p, &Outcome::Succeed, 2, s2.started, t(1));
    assert_eq!(s3.requeue, Some(Duration::from_secs(1)));
    assert!(s3.status.is_none());
    let s4 = step(&p, &Outcome::Succeed, 2, s2.started, t(2));
    let p = apply(p, &s4);
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    let term = main_state(&p).terminated.unwrap_or_default();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(
        step(&p, &Outcome::Succeed, 2, None, t(9)),
        PodStep::default()
    );
}

fn run_to_end(outcome: &Outcome) -> Pod {
    let mut p = pod(vec![], vec![]);
    let mut started = None;
    for _ in 0..4 {
        let s = step(&p, outcome, 0, started, t(0));
        started = s.started.or(started);
        p = apply(p, &s);
    }
    p
}

#[test]
fn failures_and_oom_and_disruption_terminate_with_codes() {
    let p = run_to_end(&Outcome::Fail(3));
    let term = main_state(&p).terminated.unwrap_or_default();
    assert_eq!((term.exit_code, term.reason.as_deref()), (3, Some("Error")));
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed")
    );
    let p = run_to_end(&Outcome::Oom);
    let term = main_state(&p).terminated.unwrap_or_default();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (137, Some("OOMKilled"))
    );
    let p = run_to_end(&Outcome::Disrupt);
    assert!(has_condition(&p, "DisruptionTarget"));
}

#[test]
fn hang_never_finishes() {
    let p = run_to_end(&Outcome::Hang);
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Running")
    );
    let s = step(&p, &Outcome::Hang, 0, None, t(10_000));
    assert!(s.status.is_none() && s.requeue.is_none());
}

#[test]
fn missing_volume_secret_fails_mount_and_retries() {
    let p = pod(vec![secret_volume("creds")], vec![]);
    let p = apply(p.clone(), &step(&p, &Outcome::Succeed, 0, None, t(0)));
    let blocker = find_blocker(&p, &Outcome::Succeed, |k, n| {
        !(k == RefKind::Secret && n == "creds")
    });
    assert_eq!(
        blocker,
        Some(Blocker::Mount {
            volume: "secret-creds".into(),
            kind: RefKind::Secret,
            name: "creds".into()
        })
    );
    let s = next_pod_step(
        &p,
        &Outcome::Succeed,
        Duration::ZERO,
        blocker.as_ref(),
        None,
        TIMING,
        t(1),
    );
    assert_eq!(s.events[0].reason, "FailedMount");
    assert_eq!(
        s.events[0].message,
        "MountVolume.SetUp failed for volume \"secret-creds\" : secret \"creds\" not found"
    );
    assert_eq!(s.requeue, Some(TIMING.retry));
    let p = apply(p, &s);
    assert_eq!(
        main_state(&p).waiting.and_then(|w| w.reason).as_deref(),
        Some("ContainerCreating")
    );
    let again = next_pod_step(
        &p,
        &Outcome::Succeed,
        Duration::ZERO,
        blocker.as_ref(),
        None,
        TIMING,
        t(3),
    );
    assert!(again.status.is_none(), "unchanged status is not rewritten");
    assert_eq!(again.events.len(), 1);
}

#[test]
fn missing_secret_outcome_pretends_and_env_refs_give_config_errors() {
    let p = pod(vec![secret_volume("creds")], vec![]);
    assert!(matches!(
        find_blocker(&p, &Outcome::MissingSecret, |_, _| true),
        Some(Blocker::Mount { .. })
    ));
    let p = pod(vec![], vec![]);
    assert!(matches!(
        find_blocker(&p, &Outcome::MissingSecret, |_, _| true),
        Some(Blocker::Mount { .. })
    ));
    let p = pod(vec![], vec![secret_env("api")]);
    let blocker = find_blocker(&p, &Outcome::Succeed, |_, _| false);
    assert_eq!(
        blocker,
        Some(Blocker::Config {
            kind: RefKind::Secret,
            name: "api".into()
        })
    );
    let p = apply(p.clone(), &step(&p, &Outcome::Succeed, 0, None, t(0)));
    let s = next_pod_step(
        &p,
        &Outcome::Succeed,
        Duration::ZERO,
        blocker.as_ref(),
        None,
        TIMING,
        t(0),
    );
    let p = apply(p, &s);
    let w = main_state(&p).waiting.unwrap_or_default();
    assert_eq!(w.reason.as_deref(), Some("CreateContainerConfigError"));
    assert_eq!(w.message.as_deref(), Some("secret \"api\" not found"));
    assert!(
        s.events
            .iter()
            .any(|e| e.reason == "Failed" && e.message == "Error: secret \"api\" not found")
    );
}

#[test]
fn image_pull_alternates_err_and_backoff() {
    let p = pod(vec![], vec![]);
    let p = apply(
        p.clone(),
        &step(&p, &Outcome::ImagePullError, 0, None, t(0)),
    );
    let s1 = step(&p, &Outcome::ImagePullError, 0, None, t(0));
    assert_eq!(reasons(&s1), vec!["Pulling", "Failed", "Failed"]);
    assert!(s1.events[1].message.contains("manifest unknown"));
    let p = apply(p, &s1);
    assert_eq!(
        main_state(&p).waiting.and_then(|w| w.reason).as_deref(),
        Some("ErrImagePull")
    );
    let s2 = step(&p, &Outcome::ImagePullError, 0, None, t(3));
    assert_eq!(reasons(&s2), vec!["BackOff", "Failed"]);
    assert_eq!(
        s2.events[0].message,
        "Back-off pulling image \"quay.io/wf/restart:v1\""
    );
    let p = apply(p, &s2);
    assert_eq!(
        main_state(&p).waiting.and_then(|w| w.reason).as_deref(),
        Some("ImagePullBackOff")
    );
    assert_eq!(s2.requeue, Some(TIMING.pull_backoff));
}

#[test]
fn pod_without_containers_does_not_panic() {
    let mut p = pod(vec![], vec![]);
    p.spec = None;
    let mut started = None;
    for i in 0..4 {
        let s = step(&p, &Outcome::Succeed, 0, started, t(i));
        started = s.started.or(started);
        p = apply(p, &s);
    }
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
}

#[test]
fn startup_delay_requeues() {
    let p = pod(vec![], vec![]);
    let p = apply(p.clone(), &step(&p, &Outcome::Succeed, 0, None, t(0)));
    let timing = KubeletTiming {
        startup: Duration::from_secs(5),
        ..TIMING
    };
    let s = next_pod_step(
        &p,
        &Outcome::Succeed,
        Duration::ZERO,
        None,
        None,
        timing,
        t(2),
    );
    assert_eq!(s.requeue, Some(Duration::from_secs(3)));
}
