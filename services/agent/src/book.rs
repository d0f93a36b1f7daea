//! Which status the API has seen: the latest report per execution, what was sent in this
//! session, and what must never be sent again. Pure bookkeeping; the runtime does I/O.

use std::collections::{HashMap, HashSet, VecDeque};

use wfe_proto::agent::{PrimitivePhase, StatusReport};

/// Released executions remembered, so late watch events about them are dropped.
const RELEASED_MEMORY: usize = 4096;

/// True for SUCCEEDED and FAILED.
pub fn is_terminal(r: &StatusReport) -> bool {
    matches!(
        PrimitivePhase::try_from(r.phase),
        Ok(PrimitivePhase::Succeeded | PrimitivePhase::Failed)
    )
}

/// The execution UID of a report (empty when missing).
pub fn uid_of(r: &StatusReport) -> &str {
    r.execution.as_ref().map(|k| k.uid.as_str()).unwrap_or("")
}

/// Two reports say the same thing (observation time aside).
fn same(a: &StatusReport, b: &StatusReport) -> bool {
    let mut a = a.clone();
    a.observed_at = b.observed_at;
    a == *b
}

/// Latest and sent reports by execution UID.
#[derive(Debug, Default)]
pub struct ReportBook {
    latest: HashMap<String, StatusReport>,
    sent: HashMap<String, StatusReport>,
    released: HashSet<String>,
    released_order: VecDeque<String>,
}

impl ReportBook {
    /// Records a report; returns it when it is news for the API. A terminal report is
    /// final: later reports with the same or an older fencing token are dropped (e.g. the
    /// Job's deletion after a cancel or its TTL).
    pub fn record(&mut self, r: StatusReport) -> Option<StatusReport> {
        let uid = uid_of(&r).to_owned();
        if uid.is_empty() || self.released.contains(&uid) {
            return None;
        }
        if let Some(prev) = self.latest.get(&uid) {
            if is_terminal(prev) && r.fencing_token <= prev.fencing_token {
                return None;
            }
            if r.fencing_token < prev.fencing_token {
                return None;
            }
        }
        self.latest.insert(uid.clone(), r.clone());
        if self.sent.get(&uid).is_some_and(|s| same(s, &r)) {
            return None;
        }
        Some(r)
    }

    /// Notes that `r` went out in this session.
    pub fn mark_sent(&mut self, r: &StatusReport) {
        self.sent.insert(uid_of(r).to_owned(), r.clone());
    }

    /// Starts a session: merges the cluster's inventory into the latest reports and
    /// returns everything the API must hear in Hello. Executions whose primitive vanished
    /// while disconnected keep their last report, so no terminal state is lost.
    pub fn inventory(&mut self, from_cluster: Vec<StatusReport>) -> Vec<StatusReport> {
        for r in from_cluster {
            // record() keeps terminal reports final and drops released executions.
            let _ = self.record(r);
        }
        self.sent.clear();
        let mut all: Vec<StatusReport> = self.latest.values().cloned().collect();
        all.sort_by(|a, b| uid_of(a).cmp(uid_of(b)));
        for r in &all {
            self.mark_sent(r);
        }
        all
    }

    /// Session ended: nothing counts as sent any more.
    pub fn disconnected(&mut self) {
        self.sent.clear();
    }

    /// The latest report of an execution.
    pub fn latest(&self, uid: &str) -> Option<&StatusReport> {
        self.latest.get(uid)
    }

    /// Re-send the latest report of `uid` (a redelivered Assign asks again).
    pub fn resend(&mut self, uid: &str) -> Option<StatusReport> {
        self.sent.remove(uid);
        let r = self.latest.get(uid)?.clone();
        self.mark_sent(&r);
        Some(r)
    }

    /// The execution was released: forget it and drop its future reports.
    pub fn release(&mut self, uid: &str) {
        self.latest.remove(uid);
        self.sent.remove(uid);
        if self.released.insert(uid.to_owned()) {
            self.released_order.push_back(uid.to_owned());
        }
        while self.released_order.len() > RELEASED_MEMORY {
            if let Some(old) = self.released_order.pop_front() {
                self.released.remove(&old);
            }
        }
    }

    /// Executions tracked.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfe_proto::agent::ExecutionKey;

    fn rep(uid: &str, phase: PrimitivePhase, token: u64, reason: &str) -> StatusReport {
        StatusReport {
            execution: Some(ExecutionKey {
                uid: uid.into(),
                ..Default::default()
            }),
            phase: phase as i32,
            fencing_token: token,
            reason: reason.into(),
            ..Default::default()
        }
    }

    #[test]
    fn unchanged_reports_are_sent_once() {
        let mut b = ReportBook::default();
        let r = rep("a", PrimitivePhase::Running, 1, "Running");
        let sent = b.record(r.clone()).expect("news");
        b.mark_sent(&sent);
        let mut again = r.clone();
        again.observed_at = Some(prost_types::Timestamp {
            seconds: 5,
            nanos: 0,
        });
        assert_eq!(b.record(again), None);
        assert!(
            b.record(rep("a", PrimitivePhase::Succeeded, 1, "Complete"))
                .is_some()
        );
    }

    #[test]
    fn terminal_is_final_for_its_token() {
        let mut b = ReportBook::default();
        b.record(rep("a", PrimitivePhase::Failed, 2, "Cancelled"));
        assert_eq!(
            b.record(rep("a", PrimitivePhase::Missing, 2, "Deleted")),
            None
        );
        assert_eq!(
            b.record(rep("a", PrimitivePhase::Running, 1, "Running")),
            None
        );
        assert!(
            b.record(rep("a", PrimitivePhase::Running, 3, "Running"))
                .is_some()
        );
    }

    #[test]
    fn inventory_keeps_vanished_terminal_reports_and_resets_sent() {
        let mut b = ReportBook::default();
        let done = rep("a", PrimitivePhase::Succeeded, 1, "Complete");
        let sent = b.record(done.clone()).expect("news");
        b.mark_sent(&sent);
        b.disconnected();
        let inv = b.inventory(vec![rep("b", PrimitivePhase::Running, 1, "Running")]);
        let uids: Vec<&str> = inv.iter().map(uid_of).collect();
        assert_eq!(uids, ["a", "b"]);
        // Both are now known to the API.
        assert_eq!(
            b.record(rep("b", PrimitivePhase::Running, 1, "Running")),
            None
        );
    }

    #[test]
    fn released_executions_stay_silent() {
        let mut b = ReportBook::default();
        b.record(rep("a", PrimitivePhase::Succeeded, 1, "Complete"));
        b.release("a");
        assert!(b.is_empty());
        assert_eq!(
            b.record(rep("a", PrimitivePhase::Missing, 9, "Deleted")),
            None
        );
        assert!(b.inventory(Vec::new()).is_empty());
    }
}
