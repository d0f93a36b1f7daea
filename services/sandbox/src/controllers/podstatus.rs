//! Building blocks of a Pod's status as the kubelet reports it: conditions,
//! container states and the identifiers (container IDs, IPs) a real node fills in.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The host IP of the simulated node.
pub const HOST_IP: &str = "10.0.0.10";

/// How one container ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Termination {
    /// Exit code of the process.
    pub exit_code: i32,
    /// `Completed`, `Error` or `OOMKilled`.
    pub reason: &'static str,
}

impl Termination {
    /// Exit 0.
    pub const COMPLETED: Self = Self {
        exit_code: 0,
        reason: "Completed",
    };
}

/// A condition's status, reason and message; `lastTransitionTime` moves only when
/// the status changes, as the kubelet does.
pub fn set_condition(
    status: &mut PodStatus,
    type_: &str,
    value: bool,
    reason: Option<&str>,
    message: Option<&str>,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let value = if value { "True" } else { "False" }.to_string();
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    let transition = match &existing {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Some(Time(now)),
    };
    let condition = PodCondition {
        type_: type_.to_string(),
        status: value,
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_transition_time: transition,
        ..Default::default()
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// True when the pod has condition `type_` with status `True`.
pub fn has_condition(pod: &Pod, type_: &str) -> bool {
    condition(pod, type_).is_some_and(|c| c.status == "True")
}

/// The pod condition of this type, if any.
pub fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// The pod's containers (empty for a pod without a spec).
pub fn containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
}

/// The container whose fate the behaviour decides: `workflow`, else the first.
pub fn main_container(containers: &[Container]) -> Option<&Container> {
    containers
        .iter()
        .find(|c| c.name == "workflow")
        .or_else(|| containers.first())
}

/// Sets every container to waiting with this reason (e.g. `ContainerCreating`).
pub fn waiting(pod: &Pod, reason: &str, message: Option<&str>) -> Vec<ContainerStatus> {
    states(pod, |_| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.map(str::to_string),
        }),
        ..Default::default()
    })
}

/// Sets every container to running since `started`.
pub fn running(pod: &Pod, started: Timestamp) -> Vec<ContainerStatus> {
    let mut statuses = states(pod, |_| ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(started)),
        }),
        ..Default::default()
    });
    for s in &mut statuses {
        s.ready = true;
        s.started = Some(true);
    }
    statuses
}

/// Terminates the main container as `main` says and the others with exit 0.
pub fn terminated(
    pod: &Pod,
    main: &Termination,
    started: Timestamp,
    finished: Timestamp,
) -> Vec<ContainerStatus> {
    let main_name = main_container(containers(pod)).map(|c| c.name.clone());
    let mut statuses = states(pod, |c| {
        let t = if Some(&c.name) == main_name.as_ref() {
            main
        } else {
            &Termination::COMPLETED
        };
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                reason: Some(t.reason.to_string()),
                started_at: Some(Time(started)),
                finished_at: Some(Time(finished)),
                container_id: Some(container_id(pod, &c.name)),
                ..Default::default()
            }),
            ..Default::default()
        }
    });
    for s in &mut statuses {
        s.started = Some(false);
    }
    statuses
}

fn states(pod: &Pod, state: impl Fn(&Container) -> ContainerState) -> Vec<ContainerStatus> {
    containers(pod)
        .iter()
        .map(|c| {
            let state = state(c);
            let created = state.waiting.is_none();
            ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: if created { image_id(c) } else { String::new() },
                container_id: created.then(|| container_id(pod, &c.name)),
                state: Some(state),
                ready: false,
                restart_count: 0,
                started: Some(false),
                ..Default::default()
            }
        })
        .collect()
}

/// A fresh status carrying the pod's IPs once it has been scheduled.
pub fn scheduled_status(pod: &Pod, now: Timestamp) -> PodStatus {
    let ip = pod_ip(pod);
    PodStatus {
        phase: Some("Pending".to_string()),
        host_ip: Some(HOST_IP.to_string()),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        qos_class: Some("BestEffort".to_string()),
        start_time: Some(Time(now)),
        ..Default::default()
    }
}

/// A stable pseudo container ID (`containerd://<hex>`), derived from pod and container.
pub fn container_id(pod: &Pod, container: &str) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    format!("containerd://{:016x}{:016x}", fnv(uid), fnv(container))
}

fn image_id(c: &Container) -> String {
    let image = c.image.as_deref().unwrap_or_default();
    let repo = image.split(['@', ':']).next().unwrap_or(image);
    format!("{repo}@sha256:{:016x}{:016x}", fnv(image), fnv(repo))
}

fn pod_ip(pod: &Pod) -> String {
    let h = fnv(pod.metadata.uid.as_deref().unwrap_or_default());
    format!("10.244.{}.{}", (h >> 8) % 250, h % 250 + 2)
}

/// FNV-1a: a tiny stable hash for made-up identifiers (not security relevant).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
