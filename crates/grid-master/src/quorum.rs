//! Whose result stands when a job runs on several nodes: each replica's
//! result is reduced to a digest, and the job keeps the result that
//! `quorum` replicas agree on, as BOINC's validator does. Pure functions;
//! the live state keeps the replicas and acts on the decision.

use crate::spool::Spool;
use grid_core::{JobReport, Outcome};
use sha2::{Digest as _, Sha256};

/// How many hex digits of a digest people are shown.
pub const SHORT: usize = 12;

/// A replica's result as a digest (lowercase hex sha256) of everything the
/// job's result would deliver: its outcome (with exit code or message),
/// stdout, stderr, written-back directories and the fuel it burned. A
/// timeout depends on the host's speed, not on the job: its digest is the
/// outcome alone, and a timeout the quorum accepts delivers nothing else
/// (see [`delivered`]). `None` for an end that is no result of the job's
/// (cancelled, or the node's own error): such a replica is void.
pub fn digest(report: &JobReport, spool: &Spool) -> Option<String> {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    match &report.outcome {
        Outcome::Cancelled | Outcome::NodeError(_) | Outcome::NoQuorum(_) => return None,
        Outcome::Timeout => field(b"timeout"),
        Outcome::Exited(code) => {
            field(b"exited");
            field(&code.to_le_bytes());
        }
        other => field(other.to_string().as_bytes()),
    }
    if report.outcome != Outcome::Timeout {
        let (out, err) = spool.hashes();
        field(&out);
        field(&err);
        field(&report.fuel_used.to_le_bytes());
        field(&(report.dirs.len() as u64).to_le_bytes());
        for dir in &report.dirs {
            field(dir.guest_path.as_bytes());
            field(&dir.archive);
        }
    }
    Some(hex::encode(h.finalize()))
}

/// What of an accepted replica's `report` the job delivers: all of it,
/// but for a timeout only the outcome, since nothing else was compared.
pub fn delivered(mut report: JobReport) -> JobReport {
    if report.outcome == Outcome::Timeout {
        report.fuel_used = 0;
        report.peak_memory = 0;
        report.dirs = Vec::new();
    }
    report
}

/// A finished replica, as the decision sees it.
#[derive(Debug, Clone)]
pub struct Result<'a> {
    pub digest: &'a str,
    pub node: &'a str,
    /// What it gave, in words, for a refusal that says how replicas
    /// disagreed (e.g. `exited with code 0, 6 B of stdout, fuel 1.2k`).
    pub gave: String,
}

/// What to do with a verified job after one of its replicas finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `quorum` replicas agree on this digest: it is the job's result.
    Accept(String),
    /// Start this many more replicas (they may make a quorum).
    Start(u32),
    /// Replicas still running may make a quorum: wait for them.
    Wait,
    /// No quorum can be reached within the bound: how the replicas
    /// disagreed.
    Fail(String),
}

/// Decides a verified job's fate from its finished replicas `done`, with
/// `running` replicas still running, `started` started in all (void ones
/// included) and at most `most` to start. More replicas start only as many
/// as could complete a quorum with the most agreeing digest so far.
pub fn decide(quorum: u32, done: &[Result<'_>], running: u32, started: u32, most: u32) -> Decision {
    let groups = groups(done);
    let best = groups.first().map_or(0, |g| g.1.len() as u32);
    if best >= quorum {
        return Decision::Accept(groups[0].0.to_owned());
    }
    let left = most.saturating_sub(started);
    let need = quorum - best;
    if need > running + left {
        return Decision::Fail(disagreement(quorum, &groups, done.len()));
    }
    match need.saturating_sub(running) {
        0 => Decision::Wait,
        more => Decision::Start(more),
    }
}

/// The replicas grouped by digest, the largest group first (ties in the
/// order their first replica finished).
fn groups<'a>(done: &'a [Result<'a>]) -> Vec<(&'a str, Vec<&'a Result<'a>>)> {
    let mut groups: Vec<(&str, Vec<&Result<'_>>)> = Vec::new();
    for r in done {
        match groups.iter_mut().find(|g| g.0 == r.digest) {
            Some(g) => g.1.push(r),
            None => groups.push((r.digest, vec![r])),
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.1.len()));
    groups
}

/// How the replicas disagreed, in one line.
fn disagreement(quorum: u32, groups: &[(&str, Vec<&Result<'_>>)], done: usize) -> String {
    let each: Vec<String> = groups
        .iter()
        .map(|(digest, rs)| {
            let nodes: Vec<String> = rs.iter().map(|r| format!("`{}`", r.node)).collect();
            let short = &digest[..SHORT.min(digest.len())];
            format!("{} gave {short} ({}) on {}", rs.len(), rs[0].gave, nodes.join(", "))
        })
        .collect();
    let results = if groups.len() == 1 { "result".to_owned() } else { format!("{} different results", groups.len()) };
    format!("{quorum} replicas had to agree, and {done} gave {results}: {}", each.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{Limits, OutputStream};

    fn r<'a>(digest: &'a str, node: &'a str) -> Result<'a> {
        Result { digest, node, gave: format!("result {digest}") }
    }

    fn report(outcome: Outcome, fuel: u64) -> JobReport {
        JobReport { fuel_used: fuel, ..JobReport::before_start(outcome, "n", &Limits::default()) }
    }

    fn spool(out: &[u8]) -> Spool {
        let mut s = Spool::default();
        s.write(OutputStream::Stdout, out);
        s
    }

    #[test]
    fn agreeing_replicas_are_accepted_at_the_quorum() {
        assert_eq!(decide(2, &[r("a", "n1")], 1, 2, 5), Decision::Wait);
        assert_eq!(decide(2, &[r("a", "n1"), r("a", "n2")], 0, 2, 5), Decision::Accept("a".into()));
        assert_eq!(decide(3, &[r("a", "n1"), r("b", "n2"), r("a", "n3")], 0, 3, 5), Decision::Start(1));
    }

    #[test]
    fn a_disagreement_starts_another_replica_until_the_bound() {
        assert_eq!(decide(2, &[r("a", "n1"), r("b", "n2")], 0, 2, 5), Decision::Start(1));
        assert_eq!(decide(2, &[r("a", "n1"), r("b", "n2"), r("c", "n3")], 0, 3, 5), Decision::Start(1));
        assert_eq!(decide(2, &[r("a", "n1"), r("b", "n2"), r("b", "n3")], 0, 3, 5), Decision::Accept("b".into()));
        let Decision::Fail(why) = decide(3, &[r("forged", "f1"), r("forged", "f2"), r("honest", "h")], 0, 3, 3) else {
            panic!("two agreeing forgers made a quorum of three")
        };
        assert_eq!(
            why,
            "3 replicas had to agree, and 3 gave 2 different results: \
             2 gave forged (result forged) on `f1`, `f2`; 1 gave honest (result honest) on `h`"
        );
    }

    #[test]
    fn a_quorum_out_of_reach_fails_at_once() {
        // Two left to start, but three more agreeing are needed.
        assert!(matches!(decide(3, &[r("a", "n1"), r("b", "n2")], 0, 3, 5), Decision::Start(2)));
        assert!(matches!(decide(4, &[r("a", "n1"), r("b", "n2"), r("c", "n3")], 0, 4, 5), Decision::Fail(_)));
    }

    #[test]
    fn digests_cover_everything_delivered_but_not_a_timeout_s_moment() {
        let a = digest(&report(Outcome::Exited(0), 10), &spool(b"hello")).unwrap();
        assert_eq!(a, digest(&report(Outcome::Exited(0), 10), &spool(b"hello")).unwrap());
        assert_ne!(a, digest(&report(Outcome::Exited(0), 10), &spool(b"forged")).unwrap());
        assert_ne!(a, digest(&report(Outcome::Exited(1), 10), &spool(b"hello")).unwrap());
        assert_ne!(a, digest(&report(Outcome::Exited(0), 11), &spool(b"hello")).unwrap());
        assert_eq!(
            digest(&report(Outcome::Timeout, 10), &spool(b"x")),
            digest(&report(Outcome::Timeout, 99), &spool(b"xyz"))
        );
        // An output limit delivers output, fuel and directories: all compared.
        let cut = digest(&report(Outcome::OutputLimit, 10), &spool(b"x"));
        assert_ne!(cut, digest(&report(Outcome::OutputLimit, 11), &spool(b"x")));
        let mut with_dirs = report(Outcome::OutputLimit, 10);
        with_dirs.dirs.push(grid_core::MappedDir { guest_path: "/out".into(), archive: b"forged".to_vec() });
        assert_ne!(cut, digest(&with_dirs, &spool(b"x")));
        assert_eq!(digest(&report(Outcome::NodeError("disk".into()), 0), &spool(b"")), None);
        assert_eq!(digest(&report(Outcome::Cancelled, 0), &spool(b"")), None);
    }
}
