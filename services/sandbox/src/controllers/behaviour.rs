//! What a simulated workload does, chosen by the workload itself.
//!
//! A Job's container env (container `workflow`, else the first container) or a
//! PipelineRun's `spec.params` carry `SANDBOX_*` keys; when they are absent the image
//! (or Tekton bundle) tag may carry `sandbox-<outcome>` (e.g. `:sandbox-fail-3`), so a
//! workflow whose parameters are filtered can still pick its fate. See the crate README.

use std::time::Duration;

use super::duration::parse_go_duration;

/// Env var / param naming the outcome.
pub const OUTCOME_KEY: &str = "SANDBOX_OUTCOME";
/// Env var / param naming how long the workload (or each Tekton task) runs.
pub const DURATION_KEY: &str = "SANDBOX_DURATION";
/// Param naming the Tekton pipeline tasks: a count (`3`) or names (`clone,build`).
pub const TASKS_KEY: &str = "SANDBOX_TASKS";
/// Env var: the outcome applies to the first N pods of a Job; later pods succeed.
pub const FAILING_ATTEMPTS_KEY: &str = "SANDBOX_FAILING_ATTEMPTS";
/// Image tag prefix that carries an outcome when no env var / param does.
pub const TAG_PREFIX: &str = "sandbox-";

/// How long a workload runs when `SANDBOX_DURATION` is absent or invalid.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(1);

/// The fate of a simulated workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Succeed,
    /// Exit with this non-zero code (terminated reason `Error`).
    Fail(i32),
    /// Killed by the OOM killer: exit 137, terminated reason `OOMKilled`.
    Oom,
    /// The image cannot be pulled: `ErrImagePull` / `ImagePullBackOff`, never starts.
    ImagePullError,
    /// A referenced Secret is missing: `FailedMount` or `CreateContainerConfigError`.
    MissingSecret,
    /// Runs until killed (deadline, timeout or cancel).
    Hang,
    /// The pod is evicted: condition `DisruptionTarget`, exit 137.
    Disrupt,
    /// Tekton: the bundle cannot be resolved (`CouldntGetPipeline`).
    BundleNotFound,
    /// Tekton: the task at this index fails with this exit code.
    FailTask { index: usize, code: i32 },
}

/// A parsed behaviour plus the problems met while parsing (logged by callers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// What happens at the end.
    pub outcome: Outcome,
    /// Running time of the workload, or of each Tekton task.
    pub duration: Duration,
    /// Tekton pipeline task names (default one task, `task-1`).
    pub tasks: Vec<String>,
    /// The outcome applies to the first N attempts only (`None`: to all).
    pub failing_attempts: Option<u32>,
    /// Values that could not be understood, for a warning log.
    pub problems: Vec<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            outcome: Outcome::Succeed,
            duration: DEFAULT_DURATION,
            tasks: vec!["task-1".to_string()],
            failing_attempts: None,
            problems: Vec::new(),
        }
    }
}

impl Behaviour {
    /// Builds a behaviour from `(key, value)` pairs, falling back to the outcome
    /// carried by an image/bundle reference tag.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        image: Option<&str>,
    ) -> Self {
        let mut b = Self::default();
        let mut outcome_seen = false;
        for (key, value) in pairs {
            match key {
                OUTCOME_KEY => {
                    outcome_seen = true;
                    b.set_outcome(value);
                }
                DURATION_KEY => match parse_go_duration(value) {
                    Some(d) => b.duration = d,
                    None => b.problems.push(format!("{DURATION_KEY}={value:?}")),
                },
                TASKS_KEY => b.set_tasks(value),
                FAILING_ATTEMPTS_KEY => match value.trim().parse() {
                    Ok(n) => b.failing_attempts = Some(n),
                    Err(_) => b.problems.push(format!("{FAILING_ATTEMPTS_KEY}={value:?}")),
                },
                _ => {}
            }
        }
        if !outcome_seen
            && let Some(spec) = image
                .and_then(image_tag)
                .and_then(|t| t.strip_prefix(TAG_PREFIX))
        {
            b.set_outcome(&tag_to_outcome_text(spec));
        }
        b
    }

    /// The outcome for the attempt with this zero-based index.
    pub fn outcome_for_attempt(&self, attempt: u32) -> &Outcome {
        match self.failing_attempts {
            Some(n) if attempt >= n => &Outcome::Succeed,
            _ => &self.outcome,
        }
    }

    fn set_outcome(&mut self, value: &str) {
        match parse_outcome(value) {
            Some(o) => self.outcome = o,
            None => {
                self.problems.push(format!("{OUTCOME_KEY}={value:?}"));
                self.outcome = Outcome::Succeed;
            }
        }
    }

    fn set_tasks(&mut self, value: &str) {
        let value = value.trim();
        if let Ok(n) = value.parse::<usize>() {
            // Zero tasks would make an empty pipeline; Tekton needs at least one.
            let n = n.clamp(1, 64);
            self.tasks = (1..=n).map(|i| format!("task-{i}")).collect();
            return;
        }
        let names: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if names.is_empty() {
            self.problems.push(format!("{TASKS_KEY}={value:?}"));
        } else {
            self.tasks = names;
        }
    }
}

/// Parses an outcome value (`succeed`, `fail`, `fail:3`, `oom`, `fail-task:1`, ...).
pub fn parse_outcome(value: &str) -> Option<Outcome> {
    let value = value.trim().to_ascii_lowercase();
    let (head, arg) = match value.split_once(':') {
        Some((h, a)) => (h.to_string(), Some(a.to_string())),
        None => (value.clone(), None),
    };
    let outcome = match (head.as_str(), arg.as_deref()) {
        ("" | "succeed" | "success" | "succeeded", None) => Outcome::Succeed,
        ("fail" | "failure" | "failed", None) => Outcome::Fail(1),
        ("fail" | "failure" | "failed", Some(code)) => Outcome::Fail(exit_code(code)?),
        ("oom" | "oomkilled", None) => Outcome::Oom,
        ("image-pull-error" | "imagepullbackoff" | "errimagepull", None) => Outcome::ImagePullError,
        ("missing-secret", None) => Outcome::MissingSecret,
        ("hang", None) => Outcome::Hang,
        ("disrupt" | "evict", None) => Outcome::Disrupt,
        ("bundle-not-found", None) => Outcome::BundleNotFound,
        ("fail-task", Some(arg)) => parse_fail_task(arg)?,
        _ => return None,
    };
    Some(outcome)
}

/// `"<index>"` or `"<index>:<code>"`.
fn parse_fail_task(arg: &str) -> Option<Outcome> {
    let (index, code) = match arg.split_once(':') {
        Some((i, c)) => (i, exit_code(c)?),
        None => (arg, 1),
    };
    Some(Outcome::FailTask {
        index: index.trim().parse().ok()?,
        code,
    })
}

/// A failing exit code: 1..=255 (0 is not a failure; shells cap at 255).
fn exit_code(text: &str) -> Option<i32> {
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|c| (1..=255).contains(c))
}

/// The tag of an image reference (`repo/name:tag@digest` → `tag`).
fn image_tag(image: &str) -> Option<&str> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Tags cannot hold `:`, so `fail-3` stands for `fail:3` and `fail-task-1` for `fail-task:1`.
fn tag_to_outcome_text(spec: &str) -> String {
    if let Some(code) = spec.strip_prefix("fail-task-") {
        return format!("fail-task:{}", code.replacen('-', ":", 1));
    }
    match spec.strip_prefix("fail-") {
        Some(code) if code.chars().all(|c| c.is_ascii_digit()) => format!("fail:{code}"),
        _ => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(&str, &str)], image: Option<&str>) -> Behaviour {
        Behaviour::from_pairs(pairs.iter().copied(), image)
    }

    #[test]
    fn outcomes_parse() {
        let cases = [
            ("succeed", Some(Outcome::Succeed)),
            ("fail", Some(Outcome::Fail(1))),
            ("fail:3", Some(Outcome::Fail(3))),
            ("FAIL:42", Some(Outcome::Fail(42))),
            ("fail:0", None),
            ("fail:x", None),
            ("oom", Some(Outcome::Oom)),
            ("image-pull-error", Some(Outcome::ImagePullError)),
            ("missing-secret", Some(Outcome::MissingSecret)),
            ("hang", Some(Outcome::Hang)),
            ("disrupt", Some(Outcome::Disrupt)),
            ("bundle-not-found", Some(Outcome::BundleNotFound)),
            ("fail-task:2", Some(Outcome::FailTask { index: 2, code: 1 })),
            (
                "fail-task:0:7",
                Some(Outcome::FailTask { index: 0, code: 7 }),
            ),
            ("explode", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_outcome(text), want, "{text}");
        }
    }

    #[test]
    fn defaults_and_problems() {
        let d = b(&[], None);
        assert_eq!(d.outcome, Outcome::Succeed);
        assert_eq!(d.duration, DEFAULT_DURATION);
        assert_eq!(d.tasks, vec!["task-1"]);
        let bad = b(&[(OUTCOME_KEY, "explode"), (DURATION_KEY, "soon")], None);
        assert_eq!(bad.outcome, Outcome::Succeed);
        assert_eq!(bad.duration, DEFAULT_DURATION);
        assert_eq!(bad.problems.len(), 2);
    }

    #[test]
    fn env_wins_over_tag_and_tag_is_a_fallback() {
        let img = Some("registry.local/wf/restart:sandbox-fail-3");
        assert_eq!(b(&[], img).outcome, Outcome::Fail(3));
        assert_eq!(b(&[(OUTCOME_KEY, "oom")], img).outcome, Outcome::Oom);
        assert_eq!(b(&[], Some("x/y:sandbox-hang")).outcome, Outcome::Hang);
        assert_eq!(
            b(&[], Some("x/y:sandbox-fail-task-1-4")).outcome,
            Outcome::FailTask { index: 1, code: 4 }
        );
        assert_eq!(b(&[], Some("localhost:5000/y")).outcome, Outcome::Succeed);
        assert_eq!(b(&[], Some("y:v1@sha256:abc")).outcome, Outcome::Succeed);
    }

    #[test]
    fn tasks_and_attempts() {
        let t = b(&[(TASKS_KEY, "3"), (DURATION_KEY, "0s")], None);
        assert_eq!(t.tasks, vec!["task-1", "task-2", "task-3"]);
        assert_eq!(t.duration, Duration::ZERO);
        assert_eq!(
            b(&[(TASKS_KEY, "clone, build")], None).tasks,
            vec!["clone", "build"]
        );
        assert_eq!(b(&[(TASKS_KEY, "0")], None).tasks.len(), 1);
        let a = b(&[(OUTCOME_KEY, "oom"), (FAILING_ATTEMPTS_KEY, "2")], None);
        assert_eq!(a.outcome_for_attempt(1), &Outcome::Oom);
        assert_eq!(a.outcome_for_attempt(2), &Outcome::Succeed);
    }
}
