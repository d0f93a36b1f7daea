//! The dispatcher's decisions, as data: what one execution needs from the dispatcher now,
//! given what the index says of it, what this replica knows of the agents, and the clock.
//!
//! Pure: no I/O, no clock of its own. [`super::Dispatcher`] gathers the view, asks
//! [`plan`], and carries the commands out (writes, sends); every rule is table-tested
//! below.
//!
//! ```text
//!  no status        ── older than the recovery grace ─► Admit      (else wait: being accepted)
//!  Running + cancel ── its agent connected, cancel due ► Cancel
//!  Pending, unassigned ───────────────────────────────► Assign
//!  assigned, its session here ── unacked, resend due ──► Resend
//!  assigned, its agent here on a newer session ────────► Resume (it reconnected)
//!                          on an older session ────────► wait (a newer one holds it)
//!  assigned, agent not here ── within a lease of start ► wait (agents reconnect)
//!                           ── alive at another replica ► wait (that one dispatches)
//!                           ── otherwise ─────────────► Reassign (lost)
//! ```

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use wfe_core::conditions::DispatchState;
use wfe_core::{Engine, Phase};
use wfe_k8s::WorkflowExecution;
use wfe_k8s::workflow_execution as k8s;

use super::commands;
use crate::store::{ExecKey, phase_of};

/// What the dispatcher does for one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Finish accepting it: it has had no initial status for the recovery grace.
    Admit,
    /// Send (again) the Cancel of the assignment with this fencing token.
    Cancel {
        /// The assignment's fencing token.
        token: u64,
    },
    /// Assign it to a free agent: it is Pending and nobody holds it.
    Assign,
    /// Send the Assign of this fencing token again (the agent has not acknowledged it).
    Resend {
        /// The assignment's fencing token.
        token: u64,
    },
    /// Assign it to another agent, adopting what the lost one created.
    Reassign {
        /// The agent that was lost.
        lost: String,
    },
    /// Assign it anew (next fencing token, same attempt, adopting) to the session its agent
    /// has here now: the agent reconnected (it or this API restarted), and only the
    /// session an execution is assigned to may report on it.
    Resume {
        /// The agent, connected here on another session than the assignment's.
        agent: String,
    },
    /// Nothing now, and why.
    Wait(Why),
}

/// Why the dispatcher leaves an execution alone for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Terminal, or running with nothing due.
    NothingDue,
    /// ExecuteWorkflow is still writing its initial status (or died less than the
    /// recovery grace ago).
    BeingAccepted,
    /// The API started less than a lease ago: its agents are still reconnecting.
    AgentsReconnecting,
    /// Its agent is connected to another replica, which dispatches it.
    HandledElsewhere,
    /// Its agent's session here is older than the assignment, which names a newer session
    /// of it (at another replica, or gone): taking the execution back would only make the
    /// two replicas take turns until this session's lease runs out.
    SupersededHere,
}

/// An agent's current session with this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHere {
    /// Its id.
    pub id: String,
    /// When it was opened.
    pub connected_at: Timestamp,
}

/// What this replica knows of the agents and of the commands it sent.
pub trait AgentView {
    /// The agent's current session with this replica, if it has one.
    fn session_here(&self, agent_id: &str) -> Option<SessionHere>;
    /// Whether the agent's Lease says it is connected to another replica.
    fn alive_elsewhere(&self, agent_id: &str) -> bool;
    /// Whether a command is due: never sent, or unacknowledged past the ack timeout.
    fn due(&self, command_id: &str) -> bool;
}

/// The timing rules of dispatch.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long an agent counts as connected without a message (also the grace after start).
    pub lease_duration: Duration,
    /// How long an execution may stay without its initial status before it is admitted here.
    pub accept_recovery_grace: Duration,
}

/// The clock of one pass.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now.
    pub now: Timestamp,
    /// How long this API process has been dispatching.
    pub since_start: Duration,
}

/// What one execution needs now.
pub fn plan(
    obj: &WorkflowExecution,
    view: &impl AgentView,
    policy: Policy,
    clock: Clock,
) -> Vec<Command> {
    let key = ExecKey::of(obj);
    let Some(status) = &obj.status else {
        return vec![admit_if_abandoned(obj, policy, clock)];
    };
    let phase = phase_of(obj);
    if phase.is_terminal() {
        return vec![Command::Wait(Why::NothingDue)];
    }
    let mut commands = Vec::new();
    // Only to the assigned session: another would report the cancellation under an
    // assignment it does not hold (refused), and then be assigned a deleted primitive.
    if let (Phase::Running, Some(a), Some(_)) = (phase, &status.assignment, &status.cancel_request)
        && view
            .session_here(&a.agent_id)
            .is_some_and(|s| s.id == a.session_id)
        && view.due(&commands::cancel_id(&key, a.fencing_token))
    {
        commands.push(Command::Cancel {
            token: a.fencing_token,
        });
    }
    commands.push(match &status.assignment {
        None if phase == Phase::Pending => Command::Assign,
        None => Command::Wait(Why::NothingDue),
        Some(a) => assigned(&key, a, view, policy, clock),
    });
    commands
}

fn admit_if_abandoned(obj: &WorkflowExecution, policy: Policy, clock: Clock) -> Command {
    let abandoned = obj.metadata.creation_timestamp.as_ref().is_some_and(|c| {
        let age = clock.now.duration_since(c.0);
        age.is_positive() && age.unsigned_abs() >= policy.accept_recovery_grace
    });
    if abandoned {
        Command::Admit
    } else {
        Command::Wait(Why::BeingAccepted)
    }
}

fn assigned(
    key: &ExecKey,
    a: &k8s::Assignment,
    view: &impl AgentView,
    policy: Policy,
    clock: Clock,
) -> Command {
    match view.session_here(&a.agent_id) {
        Some(s) if s.id == a.session_id => {}
        // assignedAt has whole seconds: a session opened within the second of the
        // assignment counts as newer (the agent reconnected right after it).
        Some(s) if s.connected_at >= a.assigned_at.0 => {
            return Command::Resume {
                agent: a.agent_id.clone(),
            };
        }
        Some(_) => return Command::Wait(Why::SupersededHere),
        None => return unattended(a, view, policy, clock),
    }
    if !a.acknowledged && view.due(&commands::assignment_id(key, a.fencing_token)) {
        Command::Resend {
            token: a.fencing_token,
        }
    } else {
        Command::Wait(Why::NothingDue)
    }
}

/// An assignment whose agent has no session here.
fn unattended(a: &k8s::Assignment, view: &impl AgentView, policy: Policy, clock: Clock) -> Command {
    if clock.since_start < policy.lease_duration {
        return Command::Wait(Why::AgentsReconnecting);
    }
    if view.alive_elsewhere(&a.agent_id) {
        return Command::Wait(Why::HandledElsewhere);
    }
    Command::Reassign {
        lost: a.agent_id.clone(),
    }
}

/// An assignment to an agent's session. Every Assignment is built here: at accept (token
/// 1), by a dispatcher pass, and on reassignment or resumption (the next token).
pub fn assignment(
    agent_id: &str,
    session_id: &str,
    fencing_token: u64,
    now: Timestamp,
) -> k8s::Assignment {
    k8s::Assignment {
        agent_id: agent_id.to_owned(),
        session_id: session_id.to_owned(),
        fencing_token,
        assigned_at: Time(now),
        acknowledged: false,
    }
}

/// The Dispatched state of an execution no agent can take now: `lost` names the agent it
/// had; `any_agent` is whether some agent of its engine and cluster is connected to any
/// replica (then it waits for a free slot).
pub fn no_agent(
    engine: Engine,
    cluster: &str,
    lost: Option<&str>,
    any_agent: bool,
) -> (DispatchState, String) {
    let shown = if cluster.is_empty() { "local" } else { cluster };
    match (lost, any_agent) {
        (Some(agent), _) => (
            DispatchState::AgentLost,
            format!(
                "agent {agent} was lost and no other {engine} agent of cluster {shown} can take over"
            ),
        ),
        (None, true) => (
            DispatchState::AwaitingAgent,
            format!("waiting for a free {engine} agent of cluster {shown}"),
        ),
        (None, false) => (
            DispatchState::NoAgentAvailable,
            format!("no {engine} agent of cluster {shown} is connected"),
        ),
    }
}

/// The Dispatched message of a committed assignment.
pub fn assigned_state(agent_id: &str, lost: Option<&str>) -> (DispatchState, String) {
    match lost {
        Some(lost) => (
            DispatchState::AgentLost,
            format!("agent {lost} was lost; reassigned to agent {agent_id}"),
        ),
        None => (
            DispatchState::Assigned,
            format!("assigned to agent {agent_id}"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use wfe_k8s::WorkflowExecutionStatus;

    use super::*;

    /// Agents connected here (their session and when it opened), agents alive elsewhere,
    /// commands not due.
    #[derive(Default)]
    struct View {
        here: HashMap<&'static str, (&'static str, i64)>,
        elsewhere: HashSet<&'static str>,
        not_due: HashSet<String>,
    }

    impl AgentView for View {
        fn session_here(&self, agent_id: &str) -> Option<SessionHere> {
            self.here.get(agent_id).map(|(id, at)| SessionHere {
                id: (*id).to_owned(),
                connected_at: Timestamp::from_second(*at).unwrap(),
            })
        }
        fn alive_elsewhere(&self, agent_id: &str) -> bool {
            self.elsewhere.contains(agent_id)
        }
        fn due(&self, command_id: &str) -> bool {
            !self.not_due.contains(command_id)
        }
    }

    const POLICY: Policy = Policy {
        lease_duration: Duration::from_secs(15),
        accept_recovery_grace: Duration::from_secs(30),
    };

    fn at(secs: i64, since_start: u64) -> Clock {
        Clock {
            now: Timestamp::from_second(secs).unwrap(),
            since_start: Duration::from_secs(since_start),
        }
    }

    fn execution(
        phase: Option<&str>,
        agent: Option<(&str, bool)>,
        cancel: bool,
    ) -> WorkflowExecution {
        let mut w = WorkflowExecution::new("we-1", Default::default());
        w.metadata.namespace = Some("ns".into());
        w.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1_000).unwrap()));
        w.status = phase.map(|p| WorkflowExecutionStatus {
            phase: Some(Phase::parse(p).unwrap()),
            assignment: agent.map(|(id, acked)| k8s::Assignment {
                acknowledged: acked,
                ..assignment(id, "s-1", 3, Timestamp::from_second(1_000).unwrap())
            }),
            cancel_request: cancel.then(|| k8s::CancelRequest {
                requested_by: "operator".into(),
                reason: "stop".into(),
                requested_at: Time(Timestamp::from_second(1_000).unwrap()),
            }),
            ..Default::default()
        });
        w
    }

    /// Agents here on the session the executions are assigned to ("s-1", opened before
    /// the assignment at 1 000 s).
    fn view(here: &[&'static str], elsewhere: &[&'static str]) -> View {
        View {
            here: here.iter().map(|a| (*a, ("s-1", 900))).collect(),
            elsewhere: elsewhere.iter().copied().collect(),
            ..Default::default()
        }
    }

    /// Agent `a` here on another session than the assigned one, opened at `at`.
    fn on_session(a: &'static str, at: i64) -> View {
        View {
            here: [(a, ("s-2", at))].into(),
            ..Default::default()
        }
    }

    /// Agent `a` reconnected here after the assignment (at 1 000 s).
    fn reconnected(a: &'static str) -> View {
        on_session(a, 1_005)
    }

    #[test]
    fn each_situation_gets_its_command() {
        use Command::*;
        let lost = |a: &str| Reassign { lost: a.into() };
        #[rustfmt::skip]
        let table: Vec<(&str, WorkflowExecution, View, Clock, Vec<Command>)> = vec![
            ("no status yet: being accepted",
             execution(None, None, false), view(&[], &[]), at(1_010, 60), vec![Wait(Why::BeingAccepted)]),
            ("no status past the grace: admit here",
             execution(None, None, false), view(&[], &[]), at(1_030, 60), vec![Admit]),
            ("pending, unassigned: assign",
             execution(Some("Pending"), None, false), view(&[], &[]), at(1_001, 0), vec![Assign]),
            ("assigned, agent here, unacknowledged: resend",
             execution(Some("Pending"), Some(("a", false)), false), view(&["a"], &[]), at(1_001, 60), vec![Resend { token: 3 }]),
            ("assigned, agent here, acknowledged: nothing",
             execution(Some("Running"), Some(("a", true)), false), view(&["a"], &[]), at(1_001, 60), vec![Wait(Why::NothingDue)]),
            ("agent gone right after a restart: wait a lease",
             execution(Some("Running"), Some(("a", true)), false), view(&[], &[]), at(1_001, 14), vec![Wait(Why::AgentsReconnecting)]),
            ("agent at another replica: that one dispatches",
             execution(Some("Running"), Some(("a", true)), false), view(&[], &["a"]), at(1_001, 60), vec![Wait(Why::HandledElsewhere)]),
            ("agent gone a lease after start: reassign",
             execution(Some("Running"), Some(("a", true)), false), view(&[], &[]), at(1_001, 15), vec![lost("a")]),
            ("pending, assigned to a lost agent: reassign",
             execution(Some("Pending"), Some(("a", false)), false), view(&["b"], &[]), at(1_001, 60), vec![lost("a")]),
            ("cancel requested, agent here: cancel",
             execution(Some("Running"), Some(("a", true)), true), view(&["a"], &[]), at(1_001, 60), vec![Cancel { token: 3 }, Wait(Why::NothingDue)]),
            ("cancel requested, agent lost: reassign first (the new agent gets the cancel)",
             execution(Some("Running"), Some(("a", true)), true), view(&[], &[]), at(1_001, 60), vec![lost("a")]),
            ("agent here on a new session (it reconnected): resume",
             execution(Some("Running"), Some(("a", true)), false), reconnected("a"), at(1_001, 60), vec![Resume { agent: "a".into() }]),
            ("unacknowledged, agent reconnected: resume, not resend",
             execution(Some("Pending"), Some(("a", false)), false), reconnected("a"), at(1_001, 60), vec![Resume { agent: "a".into() }]),
            ("reconnected right after a restart of the API: resume at once",
             execution(Some("Running"), Some(("a", true)), false), reconnected("a"), at(1_001, 1), vec![Resume { agent: "a".into() }]),
            ("reconnected within the second of the assignment (whole seconds): resume",
             execution(Some("Running"), Some(("a", true)), false), on_session("a", 1_000), at(1_001, 60), vec![Resume { agent: "a".into() }]),
            ("agent here on a session older than the assignment (a newer one holds it): wait",
             execution(Some("Running"), Some(("a", true)), false), on_session("a", 990), at(1_001, 60), vec![Wait(Why::SupersededHere)]),
            ("cancel requested, agent reconnected: resume first (the new session gets the cancel)",
             execution(Some("Running"), Some(("a", true)), true), reconnected("a"), at(1_001, 60), vec![Resume { agent: "a".into() }]),
            ("terminal: nothing",
             execution(Some("Completed"), Some(("a", true)), true), view(&[], &[]), at(1_001, 60), vec![Wait(Why::NothingDue)]),
        ];
        for (case, obj, view, clock, want) in table {
            assert_eq!(plan(&obj, &view, POLICY, clock), want, "{case}");
        }
    }

    #[test]
    fn a_command_sent_within_the_ack_timeout_is_not_repeated() {
        let key = ExecKey {
            namespace: "ns".into(),
            name: "we-1".into(),
        };
        let mut v = view(&["a"], &[]);
        v.not_due.insert(commands::assignment_id(&key, 3));
        v.not_due.insert(commands::cancel_id(&key, 3));
        let unacked = execution(Some("Running"), Some(("a", false)), true);
        assert_eq!(
            plan(&unacked, &v, POLICY, at(1_001, 60)),
            vec![Command::Wait(Why::NothingDue)]
        );
    }

    #[test]
    fn no_agent_says_whether_one_may_come_free() {
        let (state, msg) = no_agent(Engine::Job, "", None, true);
        assert_eq!(state, DispatchState::AwaitingAgent);
        assert_eq!(msg, "waiting for a free job agent of cluster local");
        let (state, msg) = no_agent(Engine::Tekton, "east", None, false);
        assert_eq!(state, DispatchState::NoAgentAvailable);
        assert_eq!(msg, "no tekton agent of cluster east is connected");
        let (state, msg) = no_agent(Engine::Job, "east", Some("a-1"), true);
        assert_eq!(state, DispatchState::AgentLost);
        assert!(msg.starts_with("agent a-1 was lost"), "{msg}");
    }
}
