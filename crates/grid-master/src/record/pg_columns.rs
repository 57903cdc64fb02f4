//! How a batch of changes is laid out for PostgreSQL. Changes of a kind
//! that many jobs make (a new job, a chunk of output, a tenant's use) are
//! gathered as columns, one array each, and written by one multi-row
//! statement (`unnest`) rather than one statement a change. And a job's
//! start and end that fall in one batch are written as one change.

use super::change::Op;
use super::pg_batch::int;
use grid_core::OutputStream;
use std::collections::{HashMap, HashSet};

/// What becomes of a job's start or end.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Merge {
    /// Written as it is.
    Alone,
    /// A job's start, written with its end further on.
    Later,
    /// A job's end, written with its start: the change at this index.
    With(usize),
}

/// The jobs a batch inserts, as columns.
#[derive(Default)]
pub(super) struct NewJobs<'a> {
    /// Each job's change, by index in the batch.
    pub at: Vec<usize>,
    pub ids: Vec<&'a str>,
    pub keys: Vec<Option<&'a str>>,
    pub tenants: Vec<&'a str>,
    pub priorities: Vec<i32>,
    pub specs: Vec<&'a [u8]>,
    pub submitted: Vec<i64>,
    pub fingerprints: Vec<Option<&'a str>>,
}

/// Output chunks, as columns.
#[derive(Default)]
pub(super) struct Chunks<'a> {
    pub ids: Vec<&'a str>,
    pub seqs: Vec<i64>,
    pub streams: Vec<i16>,
    pub data: Vec<&'a [u8]>,
    /// The chunks held, so that none is written twice by one statement.
    held: HashSet<(&'a str, u64)>,
}

/// The runs and fuel a batch counts for its jobs' tenants, added up by
/// tenant (saturating), as columns.
#[derive(Default)]
pub(super) struct Used<'a> {
    pub tenants: Vec<&'a str>,
    pub runs: Vec<i64>,
    pub fuel: Vec<i64>,
}

/// A batch's changes, laid out.
pub(super) struct Layout<'a> {
    /// By change: whether it is written with another.
    pub merge: Vec<Merge>,
    /// Written first: no change before a job's insert names it.
    pub jobs: NewJobs<'a>,
    /// Each group of chunks is written before the change at its index (or
    /// at the end, for the batch's length): a requeue drops its job's
    /// output so far, so the chunks before it go before it.
    pub chunks: Vec<(usize, Chunks<'a>)>,
    /// Written last.
    pub used: Used<'a>,
}

/// Lays out `ops`. A job's start and its end merge when nothing of that
/// job comes between them but its output (which touches neither the job's
/// row nor its attempts): tiny jobs start and end within one batch, and so
/// cost one update of their row rather than two.
pub(super) fn lay_out(ops: &[Op]) -> Layout<'_> {
    let mut merge = vec![Merge::Alone; ops.len()];
    let mut started: HashMap<&str, usize> = HashMap::new();
    let mut jobs = NewJobs::default();
    let mut chunks = Vec::new();
    let mut group = Chunks::default();
    let mut used = Used::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Insert { id, meta, spec, submitted_ms, fingerprint, .. } => {
                jobs.at.push(i);
                jobs.ids.push(id);
                jobs.keys.push(meta.key.as_deref());
                jobs.tenants.push(&meta.tenant);
                jobs.priorities.push(meta.priority);
                jobs.specs.push(spec);
                jobs.submitted.push(int(*submitted_ms));
                jobs.fingerprints.push(fingerprint.as_deref());
            }
            Op::Running { id, .. } => {
                started.insert(id.as_str(), i);
            }
            Op::Requeued { id, .. } => {
                started.remove(id.as_str());
                if !group.ids.is_empty() {
                    chunks.push((i, std::mem::take(&mut group)));
                }
            }
            Op::Replica { id, .. } => {
                started.remove(id.as_str());
            }
            Op::Finished { id, ran, .. } => {
                if let Some(start) = started.remove(id.as_str()) {
                    merge[start] = Merge::Later;
                    merge[i] = Merge::With(start);
                }
                if let Some((tenant, fuel)) = ran {
                    used.add(tenant, 1, *fuel);
                }
            }
            Op::Billed { tenant, runs, fuel } => used.add(tenant, *runs, *fuel),
            Op::Output { id, seq, stream, data } => {
                if group.held.contains(&(id.as_str(), *seq)) {
                    chunks.push((i, std::mem::take(&mut group)));
                }
                group.held.insert((id, *seq));
                group.ids.push(id);
                group.seqs.push(int(*seq));
                group.streams.push(if *stream == OutputStream::Stderr { 2 } else { 1 });
                group.data.push(data);
            }
            Op::Flush { .. } | Op::Prune { .. } | Op::Nodes(_) => {}
        }
    }
    if !group.ids.is_empty() {
        chunks.push((ops.len(), group));
    }
    Layout { merge, jobs, chunks, used }
}

/// Takes out of `batch` the jobs' starts (from index `from` on: those
/// before it were held back once already) that nothing after them in the
/// batch touches, to be written with the next batch. Not even output: a
/// job's output is never in the record before its start. None is held
/// from a batch that someone waits on to be written whole (a flush or a
/// prune).
pub(super) fn hold_back(batch: &mut Vec<Op>, from: usize) -> Vec<Op> {
    if batch.iter().any(|op| matches!(op, Op::Flush { .. } | Op::Prune { .. })) {
        return Vec::new();
    }
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, op) in batch.iter().enumerate() {
        if let Op::Running { id, .. }
        | Op::Requeued { id, .. }
        | Op::Replica { id, .. }
        | Op::Finished { id, .. }
        | Op::Output { id, .. } = op
        {
            last.insert(id, i);
        }
    }
    let hold: Vec<bool> = batch
        .iter()
        .enumerate()
        .map(|(i, op)| matches!(op, Op::Running { id, .. } if i >= from && last.get(id.as_str()) == Some(&i)))
        .collect();
    if !hold.contains(&true) {
        return Vec::new();
    }
    let (mut kept, mut held) = (Vec::with_capacity(batch.len()), Vec::new());
    for (op, hold) in batch.drain(..).zip(hold) {
        if hold { held.push(op) } else { kept.push(op) }
    }
    *batch = kept;
    held
}

impl<'a> Used<'a> {
    fn add(&mut self, tenant: &'a str, runs: u64, fuel: u64) {
        let at = match self.tenants.iter().position(|t| *t == tenant) {
            Some(at) => at,
            None => {
                self.tenants.push(tenant);
                self.runs.push(0);
                self.fuel.push(0);
                self.tenants.len() - 1
            }
        };
        self.runs[at] = self.runs[at].saturating_add(int(runs));
        self.fuel[at] = self.fuel[at].saturating_add(int(fuel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{AttemptEnd, JobState};

    fn running(id: &str) -> Op {
        Op::Running { id: id.into(), node: "n".into(), attempts: 1, at_ms: 1 }
    }

    fn finished(id: &str) -> Op {
        let (state, end) = (JobState::Succeeded, AttemptEnd::Finished);
        let ran = Some(("t".to_owned(), 5));
        Op::Finished { id: id.into(), state, result: Vec::new(), drop_input: false, end, at_ms: 2, ran }
    }

    fn output(id: &str, seq: u64) -> Op {
        Op::Output { id: id.into(), seq, stream: OutputStream::Stdout, data: b"x".to_vec() }
    }

    #[test]
    fn a_start_and_end_merge_across_output_but_not_across_a_requeue_or_a_replica() {
        let requeued = Op::Requeued { id: "b".into(), attempts: 1, end: AttemptEnd::Lost, at_ms: 1 };
        let replica = Op::Replica { id: "c".into(), number: 1, end: None, digest: None, verdict: None, at_ms: 1 };
        let ops = [
            running("a"),
            output("a", 0),
            running("b"),
            requeued,
            running("c"),
            replica,
            finished("a"),
            finished("b"),
            finished("c"),
        ];
        let merge = lay_out(&ops).merge;
        assert_eq!(merge[0], Merge::Later);
        assert_eq!(merge[6], Merge::With(0));
        assert!(merge[2..6].iter().chain(&merge[7..]).all(|m| *m == Merge::Alone), "{merge:?}");
    }

    #[test]
    fn a_start_with_nothing_after_it_waits_for_the_next_batch_once() {
        let mut batch =
            vec![running("a"), running("b"), output("b", 0), running("c"), finished("c"), running("d"), running("e")];
        let held = hold_back(&mut batch, 1);
        let ids = |ops: &[Op]| -> Vec<String> {
            ops.iter()
                .map(|op| match op {
                    Op::Running { id, .. } => format!("start {id}"),
                    Op::Finished { id, .. } => format!("end {id}"),
                    Op::Output { id, .. } => format!("output {id}"),
                    _ => "other".into(),
                })
                .collect()
        };
        // `a` was held once already; `b`'s output follows it (and must not
        // reach the record before it); `c` ends in this batch.
        assert_eq!(ids(&held), ["start d", "start e"]);
        assert_eq!(ids(&batch), ["start a", "start b", "output b", "start c", "end c"]);
        let (done, _) = tokio::sync::oneshot::channel();
        let mut flushed = vec![running("e"), Op::Flush { done }];
        assert!(hold_back(&mut flushed, 0).is_empty(), "a start was held from a flush");
        assert_eq!(flushed.len(), 2);
    }

    #[test]
    fn chunks_are_written_before_a_requeue_and_never_twice_in_one_group() {
        let requeued = Op::Requeued { id: "a".into(), attempts: 1, end: AttemptEnd::Lost, at_ms: 1 };
        let ops = [output("a", 0), output("b", 0), requeued, output("a", 1), output("a", 1), finished("a")];
        let layout = lay_out(&ops);
        let groups: Vec<(usize, Vec<i64>)> = layout.chunks.iter().map(|(at, c)| (*at, c.seqs.clone())).collect();
        assert_eq!(groups, [(2, vec![0, 0]), (4, vec![1]), (6, vec![1])]);
        assert_eq!((layout.used.tenants, layout.used.runs, layout.used.fuel), (vec!["t"], vec![1], vec![5]));
    }
}
