//! Jobs that outlive their session. A job running on a node when its
//! master stopped (or that a node names when it registers again before its
//! old session was seen to end) is not run again at once: it waits, for
//! [`REATTACH_WINDOW`], for its node to come back with it. The node then
//! goes on from the output the record holds, so the job runs once and its
//! output is recorded once. Past the window it goes back to the queue.

use super::{Inner, LiveState};
use crate::jobs::Phase;
use crate::model::{JobId, NodeId};
use crate::record::OutputExtent;
use grid_core::{AttemptEnd, JobReport, Outcome};
use std::time::{Duration, Instant};

/// How long a job waits for its node to come back with it.
pub const REATTACH_WINDOW: Duration = Duration::from_secs(15);
/// The most held jobs of one registration that are looked at.
pub const MAX_HELD: usize = 4096;

impl LiveState {
    /// Job `id`, taken back from the record as running on its node with
    /// `recorded` output, waits for that node.
    pub(super) fn await_recovered(&self, inner: &mut Inner, id: &str, recorded: OutputExtent) {
        if let Some(job) = inner.jobs.get_mut(id) {
            job.await_node(Some(recorded));
            inner.awaiting.insert(id.to_owned(), (Instant::now() + REATTACH_WINDOW, AttemptEnd::Restarted));
        }
    }

    /// The jobs of `old` (a session of the node now registering again)
    /// that the node names in `held` wait for the new session, rather than
    /// going back to the queue with the old one.
    pub(super) fn keep_held(&self, inner: &mut Inner, old: NodeId, held: &[(JobId, u64)]) {
        for (id, _) in held.iter().take(MAX_HELD) {
            let Inner { nodes, jobs, .. } = &mut *inner;
            let Some(n) = nodes.get_mut(&old) else { return };
            let Some(job) = jobs.get(id).filter(|_| n.running.contains(id)) else { continue };
            if job.verify.is_some() || job.cancel_requested {
                continue;
            }
            let spec = job.spec.clone();
            n.release(id, &spec, None);
            inner.stopped_running(id, None);
            if let Some(job) = inner.jobs.get_mut(id) {
                job.await_node(None);
            }
            inner.awaiting.insert(id.clone(), (Instant::now() + REATTACH_WINDOW, AttemptEnd::Lost));
        }
    }

    /// Node `node`, just registered, holds jobs `held` (each with the
    /// output bytes it has of it): those waiting for it run on with it.
    /// Returns each of those with the output bytes the record holds of it,
    /// from which the node goes on.
    pub(super) fn resume_held(&self, inner: &mut Inner, node: NodeId, held: &[(JobId, u64)]) -> Vec<(JobId, u64)> {
        let now = Instant::now();
        let mut resumed = Vec::new();
        // Jobs of this node it cannot go on with: they run again at once.
        let mut again = Vec::new();
        for (id, bytes) in held.iter().take(MAX_HELD) {
            let Some(n) = inner.nodes.get(&node) else { break };
            let Some(job) = inner.jobs.get(id) else { continue };
            if job.phase != Phase::Awaiting || job.node_name != n.reg.name || job.cancel_requested {
                continue;
            }
            let recorded = job.recorded.1 as u64;
            if *bytes < recorded {
                // Less than the record holds: not the run the record knows.
                tracing::warn!(job = %id, node = %n.reg.name, bytes, recorded, "a node came back with less of a job's output than was recorded; not taken back");
                again.push(id.clone());
                continue;
            }
            if !self.takes_on_trust(inner, job, n) {
                // Its result would have been checked by another replica
                // (the node is not trusted, or quarantined): it runs
                // again, verified as dispatch decides.
                tracing::info!(job = %id, node = %n.reg.name, "a node not trusted came back with a job; it runs again");
                again.push(id.clone());
                continue;
            }
            let Inner { nodes, jobs, awaiting, running, tenants, .. } = &mut *inner;
            let (Some(n), Some(job)) = (nodes.get_mut(&node), jobs.get_mut(id)) else { continue };
            awaiting.remove(id);
            job.resume_on(node);
            n.reserve(id, &job.spec);
            running.started(job.tenant());
            tenants.started(job.tenant(), job.spec.limits.fuel, now);
            tracing::info!(job = %id, node = %n.reg.name, from_byte = recorded, "the node came back with the job; it runs on");
            resumed.push((id.clone(), recorded));
        }
        for id in &again {
            let end = inner.awaiting.remove(id).map_or(AttemptEnd::Restarted, |(_, end)| end);
            self.run_again(inner, id, end);
        }
        resumed
    }

    /// Whether node `n`'s result for `job` is taken without a second
    /// replica's: the policy verifies nothing, the node is the tenant's own,
    /// or it has earned trust (and is not quarantined).
    fn takes_on_trust(&self, inner: &Inner, job: &crate::jobs::Job, n: &crate::nodes::Node) -> bool {
        if n.quarantined {
            return false;
        }
        !self.policy.verifies()
            || n.reg.owner.as_deref() == Some(job.tenant())
            || self.policy.trusted(&inner.history.standing(&n.reg.name))
    }

    /// Job `id`, which waited for its node in vain, runs again (or fails,
    /// with no attempts left); its attempt ends as `end`.
    fn run_again(&self, inner: &mut Inner, id: &str, end: AttemptEnd) {
        let Some(job) = inner.jobs.get_mut(id).filter(|j| j.phase == Phase::Awaiting) else { return };
        let name = job.node_name.clone();
        if job.attempts >= self.max_attempts {
            let msg = format!(
                "node `{name}` did not come back with the job (attempt {} of {})",
                job.attempts, self.max_attempts
            );
            let report = JobReport::before_start(Outcome::NodeError(msg), &name, &job.spec.limits);
            self.finish(inner, id, report, end);
            return;
        }
        tracing::info!(job = %id, node = %name, "its node did not come back with the job; running it again");
        if matches!(end, AttemptEnd::Lost) {
            job.lost_on.push(name);
        }
        job.requeue(true);
        let (attempts, priority, tenant) = (job.attempts, job.submission.priority, job.tenant().to_owned());
        self.store.requeued(id, attempts, end);
        inner.queue.push_front(id.to_owned(), priority, &tenant);
    }

    /// Jobs whose node did not come back within [`REATTACH_WINDOW`] run
    /// again (or fail, with no attempts left). Returns how many.
    pub fn expire_awaiting(&self, now: Instant) -> usize {
        let mut inner = self.lock();
        if inner.awaiting.is_empty() {
            return 0;
        }
        let due: Vec<(JobId, AttemptEnd)> = inner
            .awaiting
            .iter()
            .filter(|(_, (until, _))| *until <= now)
            .map(|(id, (_, end))| (id.clone(), *end))
            .collect();
        for (id, end) in &due {
            inner.awaiting.remove(id);
            self.run_again(&mut inner, id, *end);
        }
        if !due.is_empty() {
            self.dispatch(&mut inner);
        }
        due.len()
    }

    /// Cancels job `id`, which waits for its node: it ends at once (its
    /// node, if it comes back, is not given it).
    pub(super) fn cancel_awaiting(&self, inner: &mut Inner, id: &str) {
        inner.awaiting.remove(id);
        let Some(job) = inner.jobs.get(id) else { return };
        let report = JobReport::before_start(Outcome::Cancelled, &job.node_name, &job.spec.limits);
        self.finish(inner, id, report, AttemptEnd::Cancelled);
    }
}
