//! The live state's transitions for verified jobs: replicas placed on
//! distinct nodes, their results digested as they end, and the quorum's
//! decision acted on (more replicas, the agreed result, or no quorum), with
//! each node's standing moved by how its result stood.

use super::{Inner, LiveState};
use crate::jobs::{Job, Phase};
use crate::model::{NodeId, now_ms};
use crate::nodes::Node;
use crate::quorum::{self, Decision};
use crate::spool::Spool;
use crate::trust::VerifyPolicy;
use crate::watch::CHUNK;
use grid_core::units::{format_fuel, format_size};
use grid_core::{AttemptEnd, JobReport, Outcome, Verdict};

/// Whether an end is a result of the job's own (one a replica can agree
/// on, or a node earn credit for): not a cancel, not the node's own error.
pub(super) fn is_result(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Cancelled | Outcome::NodeError(_) | Outcome::NoQuorum(_))
}

impl LiveState {
    /// Whether `job`, about to be placed on `node`, is to be verified by
    /// replicas: the policy verifies, the node is not the job's tenant's
    /// own, and the node's standing does not let it run the job alone.
    /// A trusted node's job picked for a check runs alone when no other
    /// node could check it: the check is a sample, and waiting for a node
    /// that may never come would cost the job.
    pub(super) fn wants_verifying(&self, inner: &Inner, job: &Job, node: &Node) -> bool {
        if job.verify.is_some() || !self.policy.verifies() || node.reg.owner.as_deref() == Some(job.tenant()) {
            return false;
        }
        let standing = inner.history.standing(&node.reg.name);
        if self.policy.runs_alone(&standing, fastrand::u64(..)) {
            return false;
        }
        !self.policy.trusted(&standing) || crate::dispatch::independent(&inner.nodes, job) >= 2
    }

    /// Node `name`'s standing may have changed: its sessions take on its
    /// quarantine and its share of slots, and parked jobs come back for a
    /// node let out of quarantine.
    pub(super) fn restand(&self, inner: &mut Inner, name: &str) {
        let standing = inner.history.standing(name);
        let quarantined = standing.quarantined;
        let Inner { queue, jobs, nodes, .. } = inner;
        for (id, n) in nodes.iter_mut().filter(|(_, n)| n.reg.name == name) {
            // A private node runs its owner's jobs, on its owner's trust.
            n.slot_cap = if n.reg.owner.is_some() { None } else { self.policy.slot_cap(&standing) };
            let released = n.quarantined && !quarantined;
            n.quarantined = quarantined;
            if released {
                crate::dispatch::unpark_for(queue, jobs, *id, n);
            }
        }
    }

    /// Output of the replica of `id` on `node`: kept aside, up to the job's
    /// output limit. Past it the replica ends as `output limit` (as every
    /// honest replica of a deterministic job would) and its node is told to
    /// stop.
    pub(super) fn replica_output(
        &self,
        inner: &mut Inner,
        node: NodeId,
        id: &str,
        stream: grid_core::OutputStream,
        data: &[u8],
    ) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        let spec = job.spec.clone();
        let Some(r) = job.verify.as_mut().and_then(|v| v.running_on(node)) else { return };
        let room = spec.limits.output.saturating_sub(r.spool.bytes());
        let over = data.len() as u64 > room;
        r.spool.write(stream, &data[..data.len().min(room as usize)]);
        if !over {
            return;
        }
        let name = r.name.clone();
        tracing::warn!(job = id, node = %name, "a replica wrote past the job's output limit; it ends there");
        inner.stop_over_output(node, id);
        self.replica_ended(inner, node, id, JobReport::before_start(Outcome::OutputLimit, &name, &spec.limits));
        self.dispatch(inner);
    }

    /// The replica of `id` on `node` ended with `report` (checked, its node
    /// already released): a result is digested and the quorum decides; an
    /// end that is no result makes the replica void.
    pub(super) fn replica_ended(&self, inner: &mut Inner, node: NodeId, id: &str, report: JobReport) {
        let Some(r) = inner.jobs.get_mut(id).and_then(|j| j.verify.as_mut()).and_then(|v| v.running_on(node)) else {
            return;
        };
        if let Some(why) = r.spool.failed.clone() {
            // Its output is lost: no result of it can be delivered.
            self.void_replica(inner, node, id, AttemptEnd::Finished, &why);
            return;
        }
        match quorum::digest(&report, &r.spool) {
            Some(digest) => {
                r.ended = Some((now_ms(), AttemptEnd::Finished));
                self.store.replica(id, r.number, Some(AttemptEnd::Finished), Some(&digest), None);
                r.done = Some((digest, report));
                self.decide(inner, id);
            }
            None => {
                let why = report.outcome.to_string();
                self.void_replica(inner, node, id, AttemptEnd::of(&report.outcome), &why);
            }
        }
    }

    /// The replica of `id` on `node` came to nothing (its node was lost,
    /// handed it back, held it past its deadline, or reported no result):
    /// another takes its place, unless so many went void that the job
    /// fails. The caller has released the node.
    pub(super) fn void_replica(&self, inner: &mut Inner, node: NodeId, id: &str, end: AttemptEnd, why: &str) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        let Some(v) = job.verify.as_mut() else { return };
        let Some(at) = v.replicas.iter().position(|r| r.node == node && r.running()) else { return };
        let mut r = v.replicas.remove(at);
        r.ended = Some((now_ms(), end));
        self.store.replica(id, r.number, Some(end), None, None);
        v.void.push(r.attempt());
        let voided = v.void.len() as u32;
        if voided >= self.max_attempts {
            let msg = format!("{voided} of its replicas ended without a result, the last on node `{}`: {why}", r.name);
            let limits = job.spec.limits;
            self.end_verified(inner, id, JobReport::before_start(Outcome::NodeError(msg), &r.name, &limits), None);
            return;
        }
        self.metrics.retried();
        self.want_more(inner, id, 1);
    }

    /// `more` replicas of `id` are to start: it waits in the queue for them
    /// (at the front: it has waited already).
    fn want_more(&self, inner: &mut Inner, id: &str, more: u32) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        let Some(v) = job.verify.as_mut() else { return };
        let queued = v.wanted > 0;
        v.wanted += more;
        job.phase = Phase::Queued;
        if !queued {
            let (priority, tenant) = (job.submission.priority, job.tenant().to_owned());
            inner.queue.push_front(id.to_owned(), priority, &tenant);
        }
    }

    /// The quorum's decision on `id` after one of its replicas finished.
    fn decide(&self, inner: &mut Inner, id: &str) {
        let Some(v) = inner.jobs.get(id).and_then(|j| j.verify.as_deref()) else { return };
        let done: Vec<quorum::Result<'_>> = v
            .replicas
            .iter()
            .filter_map(|r| {
                let (digest, report) = r.done.as_ref()?;
                let gave = format!(
                    "{}, {} of stdout, fuel {}",
                    report.outcome,
                    format_size(r.spool.lengths.0),
                    format_fuel(report.fuel_used)
                );
                Some(quorum::Result { digest, node: &r.name, gave })
            })
            .collect();
        let running = v.running() + v.wanted;
        let started = v.replicas.len() as u32 + v.wanted;
        let most = self.policy.max_replicas.max(v.quorum);
        let decision = quorum::decide(v.quorum, &done, running, started, most);
        drop(done);
        match decision {
            Decision::Wait => {}
            Decision::Start(more) => self.want_more(inner, id, more),
            Decision::Accept(digest) => self.accept(inner, id, &digest),
            Decision::Fail(why) => {
                tracing::warn!(job = id, why = %why, "no quorum: the job fails");
                let limits = inner.jobs[id].spec.limits;
                self.end_verified(inner, id, JobReport::before_start(Outcome::NoQuorum(why), "", &limits), None);
            }
        }
    }

    /// `digest` is the result of `id` that a quorum agreed on: agreeing
    /// replicas gain trust and earn the agreed fuel, the others take a
    /// strike, replicas still running stop, and the job ends with the first
    /// agreeing replica's result and output.
    fn accept(&self, inner: &mut Inner, id: &str, digest: &str) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        let tenant = job.tenant().to_owned();
        let Some(v) = job.verify.as_mut() else { return };
        let mut winner: Option<(Spool, JobReport)> = None;
        // Per judged replica: its node, verdict, whether its outcome was a
        // timeout, and whether a node not of the job's tenant agreed
        // besides it.
        let mut judged = Vec::new();
        let agreeing: Vec<(String, Option<String>)> = v
            .replicas
            .iter()
            .filter(|r| r.done.as_ref().is_some_and(|(d, _)| d == digest))
            .map(|r| (r.name.clone(), r.owner.clone()))
            .collect();
        for r in v.replicas.iter_mut() {
            let Some((d, report)) = &r.done else { continue };
            let verdict = if d == digest { Verdict::Agreed } else { Verdict::Disagreed };
            if verdict == Verdict::Disagreed {
                self.metrics.disagreed();
            }
            r.verdict = Some(verdict);
            self.store.replica(id, r.number, None, None, Some(verdict));
            let checked = agreeing.iter().any(|(name, owner)| *name != r.name && owner.as_deref() != Some(&tenant));
            judged.push((r.name.clone(), verdict, report.outcome == Outcome::Timeout, checked));
            if verdict == Verdict::Agreed && winner.is_none() {
                winner = Some((std::mem::take(&mut r.spool), report.clone()));
            }
        }
        let (spool, report) = winner.expect("a quorum agreed");
        let timed_out = report.outcome == Outcome::Timeout;
        for (name, verdict, timeout, checked) in judged {
            // How long a job takes is the host's, not the node's word: a
            // timeout on either side moves no standing.
            if timed_out || timeout {
                continue;
            }
            match verdict {
                // Agreement earns trust only when someone independent of
                // the job's tenant agreed: a tenant's own node vouches for
                // no one.
                Verdict::Agreed if checked => {
                    inner.history.update_standing(&name, |s| VerifyPolicy::agreed(s, report.fuel_used))
                }
                Verdict::Agreed => {
                    inner.history.update_standing(&name, |s| VerifyPolicy::accepted(s, report.fuel_used))
                }
                Verdict::Disagreed => {
                    tracing::warn!(job = id, node = %name, "a replica's result disagreed with the quorum");
                    if inner.history.update_standing(&name, |s| self.policy.struck(s)) {
                        tracing::warn!(node = %name, "node quarantined: its results disagreed too often");
                    }
                    self.recheck(inner, &name);
                }
            }
            self.restand(inner, &name);
        }
        // A timeout delivers its outcome alone: nothing else was compared.
        let spool = (!timed_out).then_some(spool);
        self.end_verified(inner, id, quorum::delivered(report), spool);
    }

    /// Node `name` was caught out: the jobs it runs alone, on trust, go
    /// back to the queue to be run again with a check, so that no result
    /// of its reaches a user unchecked from now on.
    fn recheck(&self, inner: &mut Inner, name: &str) {
        let running: Vec<(NodeId, String)> = inner
            .nodes
            .iter()
            .filter(|(_, n)| n.reg.name == name)
            .flat_map(|(nid, n)| n.running.iter().map(move |id| (*nid, id.clone())))
            .filter(|(_, id)| inner.jobs.get(id).is_some_and(|j| j.verify.is_none() && !j.cancel_requested))
            .collect();
        for (node, id) in running {
            let Some(job) = inner.jobs.get(&id) else { continue };
            if inner.nodes.get(&node).is_some_and(|n| n.reg.owner.as_deref() == Some(job.tenant())) {
                continue;
            }
            inner.stop_on(node, &id);
            tracing::warn!(job = %id, node = %name, "running it again with a check: its node was caught out");
            let job = inner.jobs.get_mut(&id).expect("checked above");
            // Not on that node again: its stopped run may still be ending.
            job.avoid(node);
            job.requeue(job.recorded.0 > 0);
            job.verify(2);
            let (attempts, priority, tenant) = (job.attempts, job.submission.priority, job.tenant().to_owned());
            self.store.requeued(&id, attempts, AttemptEnd::HandedBack);
            inner.queue.push_front(id, priority, &tenant);
        }
    }

    /// Ends verified job `id` with `report`: replicas still running stop,
    /// what every replica that ran burned is billed to its tenant in the
    /// record, and with `spool` (the accepted result's output) watchers and
    /// the record get that output before the end.
    pub(super) fn end_verified(&self, inner: &mut Inner, id: &str, report: JobReport, spool: Option<Spool>) {
        let Some(job) = inner.jobs.get_mut(id) else { return };
        let Some(v) = job.verify.as_mut() else { return };
        let now = now_ms();
        let mut stopped = Vec::new();
        let (mut runs, mut fuel) = (0u64, 0u64);
        for r in v.replicas.iter_mut() {
            match (&r.done, r.running()) {
                (Some((_, rep)), _) => {
                    runs += 1;
                    fuel = fuel.saturating_add(rep.fuel_used);
                }
                (None, true) => {
                    r.ended = Some((now, AttemptEnd::NotNeeded));
                    self.store.replica(id, r.number, Some(AttemptEnd::NotNeeded), None, None);
                    stopped.push(r.node);
                }
                (None, false) => {}
            }
        }
        if v.wanted > 0 {
            v.wanted = 0;
            inner.queue.remove(id);
        }
        for node in stopped {
            inner.stop_on(node, id);
        }
        let ran = spool.is_some();
        if let Some(spool) = spool {
            let job = inner.jobs.get_mut(id).expect("checked above");
            job.node_name.clone_from(&report.node);
            // The accepted result's own run and fuel are counted by its end.
            runs = runs.saturating_sub(1);
            fuel = fuel.saturating_sub(report.fuel_used);
            let replayed = spool.replay(CHUNK, |stream, data| {
                let seq = job.output(stream, data.clone());
                self.store.output(id, seq, stream, data);
            });
            if let Err(e) = replayed {
                tracing::error!(job = id, error = %e, "the accepted replica's output was lost");
            }
        }
        if runs > 0
            && let Some(job) = inner.jobs.get(id)
        {
            self.store.billed(&job.submission.tenant, runs, fuel);
        }
        let end = if report.outcome == Outcome::Cancelled { AttemptEnd::Cancelled } else { AttemptEnd::Finished };
        self.finish_ran(inner, id, report, end, ran);
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{events, node, output, spec};
    use crate::model::{NodeId, ToNode};
    use crate::record::{JobStore, MemoryStore};
    use crate::state::LiveState;
    use crate::trust::{VerifyMode, VerifyPolicy};
    use grid_core::{JobReport, JobSpec, JobState, Limits, Outcome, OutputStream, Submission, Verdict};
    use std::sync::Arc;
    use tokio::sync::mpsc::UnboundedReceiver;

    fn live(policy: VerifyPolicy) -> (Arc<LiveState>, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        (Arc::new(LiveState::new(store.clone(), 3).with_policy(policy)), store)
    }

    fn replicated(n: u32) -> JobSpec {
        JobSpec { replicas: n, ..spec(&["app"]) }
    }

    /// The jobs sent to a node so far, with whether each was to run
    /// deterministically.
    fn sent(rx: &mut UnboundedReceiver<ToNode>) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        while let Ok(order) = rx.try_recv() {
            if let ToNode::Assign(id, spec) = order {
                out.push((id, spec.deterministic));
            }
        }
        out
    }

    /// The node answers job `id` with `text` on stdout, exit 0 and `fuel`.
    fn answer(live: &LiveState, node: NodeId, id: &str, text: &str, fuel: u64) {
        live.job_output(node, id, OutputStream::Stdout, text.as_bytes().to_vec());
        let report =
            JobReport { fuel_used: fuel, ..JobReport::before_start(Outcome::Exited(0), "", &Limits::default()) };
        live.job_finished(node, id, report);
    }

    fn standing(live: &LiveState, name: &str) -> crate::model::Standing {
        live.lock().history.standing(name)
    }

    #[tokio::test]
    async fn agreeing_replicas_give_the_job_its_result_and_output_once() {
        let (live, store) = live(VerifyPolicy::off());
        let (a, mut ra) = live.register_node(node("a")).unwrap();
        let (b, mut rb) = live.register_node(node("b")).unwrap();
        let id = live.submit(replicated(2), Submission::default()).await.unwrap();
        assert_eq!(sent(&mut ra), [(id.clone(), true)], "each replica runs deterministically");
        assert_eq!(sent(&mut rb), [(id.clone(), true)]);
        answer(&live, a, &id, "hello\n", 100);
        let summary = live.summary(&id).unwrap();
        assert_eq!(summary.state, JobState::Running, "one replica is no quorum");
        assert!(store.output_of(&id).unwrap().is_empty(), "a replica's output reached the record before the quorum");
        answer(&live, b, &id, "hello\n", 100);
        let summary = live.summary(&id).unwrap();
        assert_eq!(summary.state, JobState::Succeeded);
        assert_eq!(summary.quorum, 2);
        assert!(summary.replicas.iter().all(|r| r.verdict == Some(Verdict::Agreed)));
        assert_eq!(output(&events(&live, &id).await), b"hello\n");
        for name in ["a", "b"] {
            assert_eq!(standing(&live, name).streak, 1);
            assert_eq!(standing(&live, name).credit, 100, "node `{name}` earned not the agreed fuel");
        }
        live.store().flush().await.unwrap();
        let attempts = store.attempts(&id).unwrap();
        assert_eq!(attempts.len(), 2);
        assert!(attempts.iter().all(|a| a.verdict == Some(Verdict::Agreed) && a.digest.is_some()));
        assert_eq!(store.tenant_use().unwrap()[0].jobs_run, 2, "the tenant is billed both runs");
        assert_eq!(store.tenant_use().unwrap()[0].fuel_burned, 200);
    }

    #[tokio::test]
    async fn a_forger_is_outvoted_by_another_replica_and_loses_its_trust() {
        let (live, _store) = live(VerifyPolicy::off());
        let (f, mut rf) = live.register_node(node("forger")).unwrap();
        let (h1, mut r1) = live.register_node(node("h1")).unwrap();
        let id = live.submit(replicated(2), Submission::default()).await.unwrap();
        assert_eq!(sent(&mut rf).len() + sent(&mut r1).len(), 2);
        answer(&live, f, &id, "forged\n", 7);
        answer(&live, h1, &id, "honest\n", 100);
        assert_eq!(live.summary(&id).unwrap().state, JobState::Queued, "a third replica waits for a node");
        assert!(live.summary(&id).unwrap().waiting.unwrap().contains("distinct node"));
        let (h2, mut r2) = live.register_node(node("h2")).unwrap();
        assert_eq!(sent(&mut r2).len(), 1, "the third replica went to the new node");
        answer(&live, h2, &id, "honest\n", 100);
        let summary = live.summary(&id).unwrap();
        assert_eq!(summary.state, JobState::Succeeded);
        assert_eq!(output(&events(&live, &id).await), b"honest\n");
        let verdicts: Vec<_> = summary.replicas.iter().map(|r| (r.node.as_str(), r.verdict)).collect();
        assert_eq!(
            verdicts,
            [("forger", Some(Verdict::Disagreed)), ("h1", Some(Verdict::Agreed)), ("h2", Some(Verdict::Agreed))]
        );
        let forger = standing(&live, "forger");
        assert_eq!((forger.streak, forger.strikes, forger.credit), (0, 1, 0));
        assert_eq!(standing(&live, "h2").credit, 100);
    }

    #[tokio::test]
    async fn agreeing_forgers_short_of_the_quorum_fail_the_job_with_no_quorum() {
        let policy = VerifyPolicy { max_replicas: 3, ..VerifyPolicy::off() };
        let (live, store) = live(policy);
        let nodes: Vec<_> = ["f1", "f2", "h"].iter().map(|n| live.register_node(node(n)).unwrap()).collect();
        let id = live.submit(replicated(3), Submission::default()).await.unwrap();
        for (i, (n, _)) in nodes.iter().enumerate() {
            answer(&live, *n, &id, if i < 2 { "forged\n" } else { "honest\n" }, 5);
        }
        let summary = live.summary(&id).unwrap();
        assert_eq!(summary.state, JobState::Failed);
        let Some(Outcome::NoQuorum(why)) = summary.result.map(|r| r.outcome) else { panic!("not a no-quorum end") };
        assert!(why.contains("2 different results") && why.contains("`f1`") && why.contains("`h`"), "{why}");
        assert!(output(&events(&live, &id).await).is_empty(), "a rejected replica's output reached a watcher");
        assert!(store.output_of(&id).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_new_node_s_job_waits_for_a_second_node_to_check_it() {
        let (live, _store) = live(VerifyPolicy::default());
        let (a, mut ra) = live.register_node(node("a")).unwrap();
        let id = live.submit(spec(&["app"]), Submission::default()).await.unwrap();
        // No replica starts before a quorum's worth of nodes is there: none
        // waits in the master holding its result.
        assert!(sent(&mut ra).is_empty(), "a new node ran a job no other node could check");
        let summary = live.summary(&id).unwrap();
        assert_eq!(summary.state, JobState::Queued);
        let waiting = summary.waiting.unwrap();
        assert!(
            waiting.contains("2 replicas on distinct nodes must agree") && waiting.contains("1 connected node"),
            "{waiting}"
        );
        let (b, mut rb) = live.register_node(node("b")).unwrap();
        assert_eq!(sent(&mut ra), [(id.clone(), true)], "a verified job runs deterministically");
        assert_eq!(sent(&mut rb).len(), 1);
        answer(&live, a, &id, "out\n", 10);
        answer(&live, b, &id, "out\n", 10);
        assert_eq!(live.summary(&id).unwrap().state, JobState::Succeeded);
    }

    #[tokio::test]
    async fn a_trusted_node_runs_alone_and_a_private_node_for_its_owner() {
        let policy = VerifyPolicy { trust_after: 1, ..VerifyPolicy::default() };
        let (live, _store) = live(policy);
        let (_a, mut ra) = live.register_node(node("a")).unwrap();
        live.lock().history.update_standing("a", |s| s.streak = u32::MAX);
        let id = live.submit(spec(&["app"]), Submission::default()).await.unwrap();
        assert_eq!(sent(&mut ra), [(id.clone(), false)], "a trusted node's job was verified");
        assert_eq!(live.summary(&id).unwrap().quorum, 0);
        let mut own = node("own");
        own.owner = Some("alice".into());
        let (_o, mut ro) = live.register_node(own).unwrap();
        let alice = Submission { tenant: "alice".into(), ..Submission::default() };
        let id = live.submit(spec(&["app"]), alice).await.unwrap();
        assert_eq!(sent(&mut ro), [(id, false)], "a tenant's own node was not trusted by it");
    }

    #[tokio::test]
    async fn a_quarantined_node_gets_nothing_and_a_new_one_a_bounded_share() {
        let policy = VerifyPolicy { mode: VerifyMode::Adaptive, untrusted_slots: 2, ..VerifyPolicy::default() };
        let (live, _store) = live(policy);
        let mut greedy = node("greedy");
        greedy.capacity.slots = 64;
        let (g, mut rg) = live.register_node(greedy).unwrap();
        let mut other = node("other");
        other.capacity.slots = 64;
        let (_o, _ro) = live.register_node(other).unwrap();
        for _ in 0..10 {
            live.submit(spec(&["app"]), Submission::default()).await.unwrap();
        }
        assert_eq!(sent(&mut rg).len(), 2, "a node with no streak took more than its share");
        assert_eq!(live.nodes().iter().find(|n| n.name == "greedy").unwrap().slots_used, 2);
        live.lock().history.update_standing("greedy", |s| s.quarantined = true);
        {
            let mut inner = live.lock();
            live.restand(&mut inner, "greedy");
        }
        live.drop_node_named("greedy", "test");
        let (_g2, mut rg2) = live.register_node(node("greedy")).unwrap();
        let _ = g;
        assert!(sent(&mut rg2).is_empty(), "a quarantined node got a job");
    }

    #[tokio::test]
    async fn cancelling_a_verified_job_stops_every_replica() {
        let (live, _store) = live(VerifyPolicy::off());
        let (_a, mut ra) = live.register_node(node("a")).unwrap();
        let (_b, mut rb) = live.register_node(node("b")).unwrap();
        let id = live.submit(replicated(2), Submission::default()).await.unwrap();
        assert!(live.cancel(&id).unwrap());
        for rx in [&mut ra, &mut rb] {
            let mut cancelled = false;
            while let Ok(order) = rx.try_recv() {
                cancelled |= matches!(order, ToNode::Cancel(j) if j == id);
            }
            assert!(cancelled, "a replica was not stopped");
        }
        assert_eq!(live.summary(&id).unwrap().state, JobState::Cancelled);
        assert!(live.nodes().iter().all(|n| n.slots_used == 0));
    }

    #[tokio::test]
    async fn agreeing_timeouts_deliver_only_the_outcome_and_move_no_standing() {
        let (live, _store) = live(VerifyPolicy::off());
        let (a, _ra) = live.register_node(node("a")).unwrap();
        let (b, _rb) = live.register_node(node("b")).unwrap();
        let id = live.submit(replicated(2), Submission::default()).await.unwrap();
        for (n, text) in [(a, "forged\n"), (b, "other\n")] {
            live.job_output(n, &id, OutputStream::Stdout, text.as_bytes().to_vec());
            let mut report = JobReport::before_start(Outcome::Timeout, "", &Limits::default());
            report.fuel_used = 999;
            report.dirs.push(grid_core::MappedDir { guest_path: "/out".into(), archive: b"forged".to_vec() });
            live.job_finished(n, &id, report);
        }
        let summary = live.summary(&id).unwrap();
        let result = summary.result.unwrap();
        assert_eq!((result.outcome, result.fuel_used), (Outcome::Timeout, 0));
        assert!(result.dirs.is_empty());
        assert!(output(&events(&live, &id).await).is_empty(), "a timeout's unchecked output was delivered");
        assert_eq!(standing(&live, "a"), Default::default());
    }

    #[tokio::test]
    async fn a_node_caught_out_has_its_unchecked_jobs_run_again_with_a_check() {
        let policy = VerifyPolicy { trust_after: 1, ..VerifyPolicy::default() };
        let (live, _store) = live(policy);
        let mut big = node("liar");
        big.capacity.slots = 4;
        let (liar, mut rl) = live.register_node(big).unwrap();
        live.lock().history.update_standing("liar", |s| s.streak = u32::MAX);
        {
            let mut inner = live.lock();
            live.restand(&mut inner, "liar");
        }
        let alone = live.submit(spec(&["alone"]), Submission::default()).await.unwrap();
        assert_eq!(sent(&mut rl), [(alone.clone(), false)], "a trusted node's job was checked");
        let (h1, mut r1) = live.register_node(node("h1")).unwrap();
        let checked = live.submit(replicated(2), Submission::default()).await.unwrap();
        assert_eq!(sent(&mut rl), [(checked.clone(), true)]);
        assert_eq!(sent(&mut r1), [(checked.clone(), true)]);
        answer(&live, liar, &checked, "forged\n", 5);
        answer(&live, h1, &checked, "honest\n", 5);
        let (h2, mut r2) = live.register_node(node("h2")).unwrap();
        assert_eq!(sent(&mut r2), [(checked.clone(), true)], "the third replica went elsewhere");
        answer(&live, h2, &checked, "honest\n", 5);
        assert_eq!(output(&events(&live, &checked).await), b"honest\n");
        assert_eq!(standing(&live, "liar").strikes, 1);
        // Its job running alone went back, to run again with a check.
        let summary = live.summary(&alone).unwrap();
        assert_eq!(summary.quorum, 2, "the caught node's unchecked job kept running unchecked");
        assert_ne!(summary.state, JobState::Succeeded);
        assert!(
            std::iter::from_fn(|| rl.try_recv().ok()).any(|o| matches!(o, ToNode::Cancel(j) if j == alone)),
            "the caught node was not told to stop its unchecked job"
        );
    }

    #[tokio::test]
    async fn a_tenant_s_own_node_vouches_for_no_one() {
        let (live, _store) = live(VerifyPolicy::default());
        let mut own = node("own");
        own.owner = Some("alice".into());
        let (o, _ro) = live.register_node(own).unwrap();
        let (p, _rp) = live.register_node(node("public")).unwrap();
        let alice = Submission { tenant: "alice".into(), ..Submission::default() };
        let id = live.submit(replicated(2), alice).await.unwrap();
        answer(&live, o, &id, "same\n", 5);
        answer(&live, p, &id, "same\n", 5);
        assert_eq!(live.summary(&id).unwrap().state, JobState::Succeeded);
        let public = standing(&live, "public");
        assert_eq!((public.streak, public.credit), (0, 5), "agreeing with the tenant's own node earned trust");
        assert_eq!(standing(&live, "own").streak, 1);
    }

    #[tokio::test]
    async fn a_job_short_of_its_quorum_leaves_the_slot_to_others_and_a_lone_trusted_node_runs_alone() {
        let policy = VerifyPolicy { trust_after: 1, ..VerifyPolicy::default() };
        let (live, _store) = live(policy);
        let (_a, mut ra) = live.register_node(node("a")).unwrap();
        live.lock().history.update_standing("a", |s| s.streak = 1);
        {
            let mut inner = live.lock();
            live.restand(&mut inner, "a");
        }
        // Two replicas cannot run on the one node: the job waits, and the
        // node's only slot goes to the next job.
        let waits = live.submit(replicated(2), Submission::default()).await.unwrap();
        let runs = live.submit(spec(&["next"]), Submission::default()).await.unwrap();
        assert_eq!(sent(&mut ra), [(runs.clone(), false)], "a job short of its quorum held the node's slot");
        assert_eq!(live.summary(&waits).unwrap().state, JobState::Queued);
        // At a streak of 1 with a threshold of 1 every job is picked for a
        // check; with no other node to check it, the trusted node runs it.
        assert_eq!(live.summary(&runs).unwrap().quorum, 0);
    }

    #[tokio::test]
    async fn a_quarantined_node_does_not_count_towards_a_quorum() {
        let (live, _store) = live(VerifyPolicy::off());
        let (_a, mut ra) = live.register_node(node("a")).unwrap();
        let (_b, mut rb) = live.register_node(node("b")).unwrap();
        live.lock().history.update_standing("b", |s| s.quarantined = true);
        {
            let mut inner = live.lock();
            live.restand(&mut inner, "b");
        }
        let id = live.submit(replicated(2), Submission::default()).await.unwrap();
        assert!(sent(&mut ra).is_empty() && sent(&mut rb).is_empty(), "a replica started with no quorum in reach");
        assert!(live.summary(&id).unwrap().waiting.unwrap().contains("1 connected node can run one"));
    }
}
