use super::*;
use crate::controllers::behaviour::{DURATION_KEY, OUTCOME_KEY, TASKS_KEY};
use crate::controllers::tekton_status::{Param, PipelineRef, PipelineRunSpec, Timeouts};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn pr(params: &[(&str, &str)]) -> PipelineRunView {
    let mut all: Vec<Param> = params
        .iter()
        .map(|(n, v)| Param {
            name: (*n).into(),
            value: json!(v),
        })
        .collect();
    all.push(Param {
        name: "TARGET_RESOURCE".into(),
        value: json!("default/deployment/web"),
    });
    PipelineRunView {
        name: "wfe-1".into(),
        namespace: "ns".into(),
        uid: "pr-uid".into(),
        labels: Default::default(),
        spec: PipelineRunSpec {
            params: all,
            pipeline_ref: Some(PipelineRef {
                name: None,
                resolver: Some("bundles".into()),
                params: vec![
                    Param {
                        name: "bundle".into(),
                        value: json!("quay.io/wf/bundle:v1"),
                    },
                    Param {
                        name: "name".into(),
                        value: json!("workflow"),
                    },
                    Param {
                        name: "kind".into(),
                        value: json!("pipeline"),
                    },
                ],
            }),
            ..Default::default()
        },
        status: Value::Null,
    }
}

/// A tiny simulated cluster: applies steps the way the API server and watches would.
struct World {
    pr: PipelineRunView,
    taskruns: Vec<TaskRunView>,
    starts: HashMap<String, Timestamp>,
    events: Vec<EventDraft>,
}

impl World {
    fn new(pr: PipelineRunView) -> Self {
        Self {
            pr,
            taskruns: vec![],
            starts: HashMap::new(),
            events: vec![],
        }
    }

    fn tick(&mut self, now: Timestamp) -> PipelineRunStep {
        let behaviour = Behaviour::from_pairs(self.pr.spec.string_params(), self.pr.spec.bundle());
        let input = TektonInputs {
            behaviour: &behaviour,
            starts: &self.starts,
            missing: None,
            now,
        };
        let step = next_pipelinerun_step(&self.pr, &self.taskruns, input);
        for action in &step.actions {
            match action {
                TektonAction::CreateTaskRun(tr) => self.taskruns.push(TaskRunView {
                    name: tr["metadata"]["name"].as_str().unwrap_or_default().into(),
                    status: Value::Null,
                }),
                TektonAction::TaskRunStatus { name, status } => {
                    if let Some(tr) = self.taskruns.iter_mut().find(|t| &t.name == name) {
                        tr.status = status.clone();
                    }
                }
                TektonAction::Status(s) => self.pr.status = s.clone(),
            }
        }
        self.starts.extend(step.started.iter().cloned());
        self.events.extend(step.events.iter().cloned());
        step
    }

    fn run(&mut self, from: i64, to: i64) {
        for s in from..=to {
            for _ in 0..4 {
                self.tick(t(s));
            }
        }
    }

    fn reason(&self) -> (String, String, String) {
        let c = &self.pr.status["conditions"][0];
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        (s("status"), s("reason"), s("message"))
    }

    fn taskrun_reason(&self, i: usize) -> String {
        self.taskruns[i].status["conditions"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .into()
    }
}

#[test]
fn three_tasks_succeed_in_order_with_child_references() {
    let mut w = World::new(pr(&[(TASKS_KEY, "3"), (DURATION_KEY, "1s")]));
    w.tick(t(0));
    assert_eq!(w.taskruns.len(), 1);
    assert_eq!(
        w.reason().2,
        "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 3, Skipped: 0"
    );
    assert_eq!(w.reason().1, "Running");
    w.run(0, 5);
    assert_eq!(w.taskruns.len(), 3);
    assert_eq!(
        w.reason(),
        (
            "True".into(),
            "Succeeded".into(),
            "Tasks Completed: 3 (Failed: 0, Cancelled 0), Skipped: 0".into()
        )
    );
    let refs = w.pr.status["childReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(refs.len(), 3);
    assert_eq!(
        refs[1],
        json!({"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "name": "wfe-1-task-2", "pipelineTaskName": "task-2"})
    );
    assert!(w.pr.status["completionTime"].is_string());
    assert_eq!(
        w.taskruns[2].status["steps"][0]["terminated"]["exitCode"],
        json!(0)
    );
    assert_eq!(
        w.taskruns[2].status["steps"][0]["container"],
        json!("step-run")
    );
    assert!(w.events.iter().any(|e| e.reason == "Succeeded"));
}

#[test]
fn fail_task_skips_the_rest() {
    let mut w = World::new(pr(&[
        (TASKS_KEY, "3"),
        (DURATION_KEY, "0s"),
        (OUTCOME_KEY, "fail-task:1:5"),
    ]));
    w.run(0, 3);
    assert_eq!(
        w.reason(),
        (
            "False".into(),
            "Failed".into(),
            "Tasks Completed: 2 (Failed: 1, Cancelled 0), Skipped: 1".into()
        )
    );
    assert_eq!(w.taskruns.len(), 2);
    assert_eq!(w.taskrun_reason(1), "Failed");
    assert_eq!(
        w.taskruns[1].status["steps"][0]["terminated"]["exitCode"],
        json!(5)
    );
    assert_eq!(
        w.taskruns[1].status["conditions"][0]["message"],
        json!("\"step-run\" exited with code 5: Error")
    );
}

#[test]
fn fail_with_code_fails_the_last_task_and_oom_says_so() {
    let mut w = World::new(pr(&[(DURATION_KEY, "0s"), (OUTCOME_KEY, "fail:3")]));
    w.run(0, 1);
    assert_eq!(
        w.reason().2,
        "Tasks Completed: 1 (Failed: 1, Cancelled 0), Skipped: 0"
    );
    assert_eq!(
        w.taskruns[0].status["steps"][0]["terminated"]["exitCode"],
        json!(3)
    );
    let mut w = World::new(pr(&[(DURATION_KEY, "0s"), (OUTCOME_KEY, "oom")]));
    w.run(0, 1);
    assert_eq!(
        w.taskruns[0].status["steps"][0]["terminated"]["reason"],
        json!("OOMKilled")
    );
}

#[test]
fn timeout_cancels_running_taskrun() {
    let mut p = pr(&[(OUTCOME_KEY, "hang")]);
    p.spec.timeouts = Some(Timeouts {
        pipeline: Some("90s".into()),
    });
    let mut w = World::new(p);
    w.run(0, 1);
    assert_eq!(w.tick(t(2)).requeue, Some(Duration::from_secs(88)));
    w.run(90, 90);
    assert_eq!(
        w.reason(),
        (
            "False".into(),
            "PipelineRunTimeout".into(),
            "PipelineRun \"wfe-1\" failed to finish within \"1m30s\"".into()
        )
    );
    assert_eq!(w.taskrun_reason(0), "TaskRunCancelled");
}

#[test]
fn cancel_stops_the_run() {
    let mut w = World::new(pr(&[(OUTCOME_KEY, "hang")]));
    w.run(0, 1);
    w.pr.spec.status = Some("Cancelled".into());
    w.run(2, 2);
    assert_eq!(
        w.reason(),
        (
            "False".into(),
            "Cancelled".into(),
            "PipelineRun \"wfe-1\" was cancelled".into()
        )
    );
    assert_eq!(w.taskrun_reason(0), "TaskRunCancelled");
    let before = w.pr.status.clone();
    w.run(3, 3);
    assert_eq!(w.pr.status, before, "finished runs are left alone");
}

#[test]
fn unresolvable_bundle_is_couldnt_get_pipeline() {
    let mut w = World::new(pr(&[(OUTCOME_KEY, "bundle-not-found")]));
    w.tick(t(0));
    let (status, reason, message) = w.reason();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "CouldntGetPipeline")
    );
    assert!(
        message.starts_with("Error retrieving pipeline for pipelinerun ns/wfe-1: "),
        "{message}"
    );
    assert!(w.taskruns.is_empty());
    let mut no_ref = pr(&[]);
    no_ref.spec.pipeline_ref = None;
    let mut w = World::new(no_ref);
    w.tick(t(0));
    assert_eq!(w.reason().1, "CouldntGetPipeline");
}

#[test]
fn image_pull_error_fails_first_task_and_missing_secret_pends() {
    let mut w = World::new(pr(&[(OUTCOME_KEY, "image-pull-error")]));
    w.run(0, 1);
    assert_eq!(w.taskrun_reason(0), "TaskRunImagePullFailed");
    assert_eq!(w.reason().1, "Failed");
    let mut w = World::new(pr(&[(OUTCOME_KEY, "missing-secret")]));
    w.run(0, 5);
    assert_eq!(w.taskrun_reason(0), "Pending");
    assert_eq!(w.reason().1, "Running");
}

#[test]
fn pending_runs_wait() {
    let mut p = pr(&[]);
    p.spec.status = Some("PipelineRunPending".into());
    let mut w = World::new(p);
    w.tick(t(0));
    assert_eq!(w.reason().1, "PipelineRunPending");
    assert!(w.taskruns.is_empty());
    assert!(w.tick(t(1)).actions.is_empty(), "no rewrite when unchanged");
}
