//! The behaviour every job store must have, as one suite of tests that
//! `job_store_contract!` runs against each implementation.

use grid_core::{JobSpec, Limits, ModuleHash};

/// A small job spec with stdin, as tests record it.
pub fn spec() -> JobSpec {
    JobSpec {
        deterministic: false,
        replicas: 0,
        module: ModuleHash::of(b"m"),
        args: vec!["a".into()],
        env: vec![],
        stdin: b"in".to_vec(),
        dirs: vec![],
        limits: Limits::default(),
    }
}

/// Runs the contract against the store that `$open` makes in a temp dir
/// (`$open: impl Fn(&Path) -> impl JobStore`).
macro_rules! job_store_contract {
    ($open:expr) => {
        mod contract {
            use super::*;
            use crate::model::StoredJob;
            use crate::record::contract::spec;
            use crate::record::{Filter, Inserted, JobStore, NewJob, SCANNED};
            use grid_core::{
                AttemptEnd, JobReport, JobSpec, JobState, Limits, MappedDir, ModuleHash, Outcome, OutputStream,
                Submission,
            };
            use std::path::Path;

            struct Fixture {
                store: Box<dyn JobStore>,
                _dir: tempfile::TempDir,
            }

            fn open() -> Fixture {
                let dir = tempfile::tempdir().unwrap();
                let open = $open;
                Fixture { store: Box::new(open(dir.path())), _dir: dir }
            }

            fn keyed(key: &str) -> Submission {
                Submission { key: Some(key.into()), tenant: "t".into(), priority: 3 }
            }

            async fn insert(store: &dyn JobStore, id: &str, sub: &Submission, ms: u64) -> Inserted {
                let fingerprint = sub.key.as_ref().map(|_| sub.fingerprint(&spec()));
                let new = NewJob {
                    id,
                    submission: sub,
                    spec: &spec(),
                    submitted_ms: ms,
                    fingerprint: fingerprint.as_deref(),
                };
                store.insert(new).await.unwrap()
            }

            fn ids(jobs: Vec<StoredJob>) -> Vec<String> {
                jobs.into_iter().map(|j| j.id).collect()
            }

            fn ended(outcome: Outcome) -> JobReport {
                JobReport::before_start(outcome, "node-a", &Limits::default())
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_inserted_job_reads_back_as_submitted_and_queued() {
                let f = open();
                assert_eq!(insert(&*f.store, "j1", &keyed("k"), 42).await, Inserted::New);
                let job = f.store.job("j1").unwrap().expect("recorded");
                assert_eq!(job.spec, spec());
                assert_eq!((job.key.as_deref(), job.tenant.as_str(), job.priority), (Some("k"), "t", 3));
                assert_eq!((job.state, job.attempts, job.submitted_ms), (JobState::Queued, 0, 42));
                assert_eq!((job.node.as_str(), job.result.is_none()), ("", true));
                assert!(f.store.job("nope").unwrap().is_none());
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_known_key_yields_the_job_that_holds_it() {
                let f = open();
                assert_eq!(insert(&*f.store, "j1", &keyed("k"), 1).await, Inserted::New);
                let fingerprint = keyed("k").fingerprint(&spec());
                assert_eq!(
                    insert(&*f.store, "j2", &keyed("k"), 2).await,
                    Inserted::Existing("j1".into(), Some(fingerprint.clone()))
                );
                assert!(f.store.job("j2").unwrap().is_none(), "the second submission was recorded too");
                assert_eq!(f.store.job_with_key("k").unwrap(), Some(("j1".into(), Some(fingerprint))));
                assert_eq!(f.store.job_with_key("other").unwrap(), None);
                // Jobs without a key never collide.
                let none = Submission::default();
                assert_eq!(insert(&*f.store, "j3", &none, 3).await, Inserted::New);
                assert_eq!(insert(&*f.store, "j4", &none, 4).await, Inserted::New);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn attempts_output_and_the_end_are_recorded_in_order() {
                let f = open();
                let s = &*f.store;
                insert(s, "j1", &Submission::default(), 1).await;
                s.running("j1", "node-a", 1);
                s.output("j1", 0, OutputStream::Stdout, b"lost".to_vec());
                s.requeued("j1", 1, AttemptEnd::Lost);
                s.flush().await.unwrap();
                let job = s.job("j1").unwrap().unwrap();
                assert_eq!((job.state, job.attempts), (JobState::Queued, 1));
                assert!(s.output_of("j1").unwrap().is_empty(), "a void attempt's output was kept");

                s.running("j1", "node-b", 2);
                s.output("j1", 0, OutputStream::Stdout, b"hello ".to_vec());
                s.output("j1", 1, OutputStream::Stderr, b"oops".to_vec());
                s.flush().await.unwrap();
                let job = s.job("j1").unwrap().unwrap();
                assert_eq!((job.state, job.node.as_str(), job.attempts), (JobState::Running, "node-b", 2));

                let kept = JobSpec { stdin: Vec::new(), ..spec() };
                s.finished("j1", &ended(Outcome::Exited(0)), true, AttemptEnd::Finished, None);
                s.flush().await.unwrap();
                let job = s.job("j1").unwrap().unwrap();
                assert_eq!(job.state, JobState::Succeeded);
                assert_eq!(job.spec, kept, "the input was kept");
                assert_eq!(job.result.unwrap().outcome, Outcome::Exited(0));
                assert_eq!(
                    s.output_of("j1").unwrap(),
                    vec![(OutputStream::Stdout, b"hello ".to_vec()), (OutputStream::Stderr, b"oops".to_vec())]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_finished_job_s_state_follows_its_outcome() {
                let f = open();
                let s = &*f.store;
                for (id, outcome) in [("a", Outcome::Exited(0)), ("b", Outcome::Exited(2)), ("c", Outcome::Cancelled)] {
                    insert(s, id, &Submission::default(), 1).await;
                    s.finished(id, &ended(outcome), false, AttemptEnd::Finished, None);
                }
                s.flush().await.unwrap();
                let states: Vec<_> = ["a", "b", "c"].iter().map(|id| s.job(id).unwrap().unwrap().state).collect();
                assert_eq!(states, [JobState::Succeeded, JobState::Failed, JobState::Cancelled]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn listings_are_newest_first_by_state_and_bounded() {
                let f = open();
                let s = &*f.store;
                for (i, id) in ["j1", "j2", "j3", "j4"].into_iter().enumerate() {
                    insert(s, id, &Submission::default(), i as u64).await;
                }
                s.running("j2", "node-a", 1);
                s.finished("j3", &ended(Outcome::Exited(0)), false, AttemptEnd::Finished, None);
                s.flush().await.unwrap();
                let list = |state, limit| ids(s.list(&Filter::state(state), None, limit).unwrap().jobs);
                assert_eq!(list(None, 10), ["j4", "j3", "j2", "j1"]);
                assert_eq!(list(None, 2), ["j4", "j3"]);
                assert_eq!(list(Some(JobState::Queued), 10), ["j4", "j1"]);
                assert_eq!(list(Some(JobState::Succeeded), 10), ["j3"]);
                assert!(list(Some(JobState::Failed), 10).is_empty());
                // What a master takes back at start: oldest first.
                let unfinished: Vec<_> = s.unfinished().unwrap().into_iter().map(|u| u.job).collect();
                assert_eq!(ids(unfinished), ["j1", "j2", "j4"]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn output_reads_back_in_bounded_pages_across_attempts() {
                let f = open();
                let s = &*f.store;
                insert(s, "j1", &Submission::default(), 1).await;
                s.running("j1", "node-a", 1);
                s.output("j1", 0, OutputStream::Stdout, b"void".to_vec());
                s.requeued("j1", 1, AttemptEnd::Lost);
                s.running("j1", "node-b", 2);
                // Numbers go on across attempts.
                for seq in 1..=5 {
                    s.output("j1", seq, OutputStream::Stdout, vec![seq as u8; 100]);
                }
                s.output("j1", 6, OutputStream::Stderr, vec![6; 1000]);
                s.flush().await.unwrap();
                let seqs = |page: Vec<(u64, OutputStream, Vec<u8>)>| page.into_iter().map(|c| c.0).collect::<Vec<_>>();
                assert_eq!(seqs(s.output_page("j1", 0, 250).unwrap()), [1, 2], "the void attempt's chunk is gone");
                assert_eq!(seqs(s.output_page("j1", 3, 1 << 20).unwrap()), [3, 4, 5, 6]);
                assert_eq!(seqs(s.output_page("j1", 6, 10).unwrap()), [6], "a page holds at least one chunk");
                assert!(s.output_page("j1", 7, 1 << 20).unwrap().is_empty());
                assert!(s.output_page("nope", 0, 1 << 20).unwrap().is_empty());
                let last = s.output_page("j1", 6, 1 << 20).unwrap().remove(0);
                assert_eq!((last.1, last.2.len()), (OutputStream::Stderr, 1000));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unfinished_jobs_come_back_with_light_specs() {
                let f = open();
                let s = &*f.store;
                let heavy = JobSpec {
                    stdin: vec![7; 100_000],
                    dirs: vec![MappedDir { guest_path: "/d".into(), archive: vec![1; 5000] }],
                    ..spec()
                };
                let sub = Submission::default();
                s.insert(NewJob { id: "heavy", submission: &sub, spec: &heavy, submitted_ms: 1, fingerprint: None })
                    .await
                    .unwrap();
                insert(s, "small", &sub, 2).await;
                let back = s.unfinished().unwrap();
                assert_eq!(ids(back.iter().map(|u| u.job.clone()).collect()), ["heavy", "small"]);
                assert!(
                    back[0].spec_in_record && back[0].job.spec.stdin.is_empty() && back[0].job.spec.dirs.is_empty()
                );
                assert_eq!(back[0].job.spec.args, heavy.args);
                assert!(!back[1].spec_in_record);
                assert_eq!(back[1].job.spec, spec(), "a small spec comes back whole");
                // The record still has the whole spec, until the job ends.
                assert_eq!(s.job("heavy").unwrap().unwrap().spec, heavy);
                let dirs = vec![MappedDir { guest_path: "/d".into(), archive: b"after".to_vec() }];
                let report = JobReport { dirs: dirs.clone(), ..ended(Outcome::Exited(0)) };
                s.finished("heavy", &report, true, AttemptEnd::Finished, None);
                s.flush().await.unwrap();
                let done = s.job("heavy").unwrap().unwrap();
                assert_eq!(done.spec, JobSpec { stdin: Vec::new(), dirs: Vec::new(), ..heavy });
                assert_eq!(done.result.unwrap().dirs, dirs, "the written-back dirs are kept");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_newest_id_is_known_and_old_finished_jobs_are_pruned() {
                let f = open();
                let s = &*f.store;
                assert_eq!(s.newest_id().unwrap(), None);
                for id in ["old", "running", "new"] {
                    insert(s, id, &Submission::default(), 1).await;
                }
                assert_eq!(s.newest_id().unwrap().as_deref(), Some("new"));
                s.running("old", "node-a", 1);
                s.output("old", 0, OutputStream::Stdout, b"x".to_vec());
                s.finished("old", &ended(Outcome::Exited(0)), true, AttemptEnd::Finished, None);
                s.running("running", "node-a", 1);
                s.flush().await.unwrap();
                // Nothing finished before the epoch; everything finished before the far future.
                assert_eq!(s.prune(0).await.unwrap(), 0);
                assert!(s.job("old").unwrap().is_some());
                assert_eq!(s.prune(u64::MAX >> 2).await.unwrap(), 1, "the finished job, and only it");
                assert!(s.job("old").unwrap().is_none(), "a finished job outlived --keep-finished");
                assert!(s.output_of("old").unwrap().is_empty());
                assert!(s.job("running").unwrap().is_some() && s.job("new").unwrap().is_some());
            }

            /// Every page from the newest, following `next`.
            fn pages(s: &dyn JobStore, state: Option<JobState>, limit: usize) -> Vec<Vec<String>> {
                let (mut pages, mut before) = (Vec::new(), None);
                loop {
                    let page = s.list(&Filter::state(state), before, limit).unwrap();
                    assert!(page.jobs.len() <= limit, "a page over its limit");
                    pages.push(ids(page.jobs));
                    match page.next {
                        Some(next) => before = Some(next),
                        None => return pages,
                    }
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pages_are_disjoint_newest_first_and_cover_every_job() {
                let f = open();
                let s = &*f.store;
                let all: Vec<String> = (0..23).map(|i| format!("j{i:02}")).collect();
                for (i, id) in all.iter().enumerate() {
                    insert(s, id, &Submission::default(), i as u64).await;
                    if i % 3 == 0 {
                        s.finished(id, &ended(Outcome::Exited(0)), true, AttemptEnd::Finished, None);
                    }
                }
                s.flush().await.unwrap();
                let newest_first: Vec<String> = all.iter().rev().cloned().collect();
                for limit in [1, 5, 23, 100] {
                    let pages = pages(s, None, limit);
                    assert_eq!(pages.concat(), newest_first, "limit {limit}");
                    assert!(pages.iter().all(|p| !p.is_empty()), "an empty page at limit {limit}: {pages:?}");
                }
                // The token works with a state filter: only that state, still
                // disjoint and complete.
                let succeeded: Vec<String> =
                    newest_first.iter().filter(|id| id[1..].parse::<u32>().unwrap() % 3 == 0).cloned().collect();
                let queued: Vec<String> = newest_first.iter().filter(|id| !succeeded.contains(id)).cloned().collect();
                assert_eq!(pages(s, Some(JobState::Succeeded), 3).concat(), succeeded);
                assert_eq!(pages(s, Some(JobState::Queued), 4).concat(), queued);
                // Past the oldest job there is nothing.
                let last = s.list(&Filter::default(), None, 22).unwrap();
                let rest = s.list(&Filter::default(), last.next, 22).unwrap();
                assert_eq!((ids(rest.jobs), rest.next), (vec!["j00".to_owned()], None));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_listed_job_is_cut_to_what_a_listing_shows() {
                let f = open();
                let s = &*f.store;
                let huge = JobSpec {
                    args: vec!["x".repeat(1 << 20), "y".into()],
                    stdin: vec![7; 1 << 20],
                    env: vec![("K".into(), "v".repeat(1 << 20))],
                    ..spec()
                };
                let sub = Submission { key: None, tenant: "t".repeat(70_000), priority: 0 };
                s.insert(NewJob { id: "big", submission: &sub, spec: &huge, submitted_ms: 1, fingerprint: None })
                    .await
                    .unwrap();
                s.running("big", &"n".repeat(70_000), 1);
                s.flush().await.unwrap();
                let job = s.list(&Filter::default(), None, 10).unwrap().jobs.remove(0);
                assert!(job.spec.args.iter().map(String::len).sum::<usize>() <= crate::listing::ARGS_LISTED);
                assert!(job.spec.args[0].ends_with('…'));
                assert!(job.spec.stdin.is_empty() && job.spec.env.is_empty());
                assert_eq!(job.tenant.chars().count(), crate::listing::NAME_LISTED);
                assert_eq!(job.node.chars().count(), crate::listing::NAME_LISTED);
                // The job itself is whole.
                assert_eq!(s.job("big").unwrap().unwrap().spec, huge);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn attempts_are_recorded_with_their_node_times_and_ends() {
                let f = open();
                let s = &*f.store;
                insert(s, "j1", &Submission::default(), 1).await;
                assert!(s.attempts("j1").unwrap().is_empty());
                s.running("j1", "node-a", 1);
                s.flush().await.unwrap();
                let running = s.job("j1").unwrap().unwrap();
                assert!(running.started_ms.is_some() && running.finished_ms.is_none());
                s.requeued("j1", 1, AttemptEnd::Lost);
                s.flush().await.unwrap();
                // A requeued job's node is no longer its own.
                assert_eq!(s.job("j1").unwrap().unwrap().node, "");
                s.running("j1", "node-b", 2);
                s.finished("j1", &ended(Outcome::Exited(0)), false, AttemptEnd::Finished, None);
                s.flush().await.unwrap();
                let attempts = s.attempts("j1").unwrap();
                let seen: Vec<_> = attempts.iter().map(|a| (a.number, a.node.as_str(), a.end)).collect();
                assert_eq!(seen, [(1, "node-a", Some(AttemptEnd::Lost)), (2, "node-b", Some(AttemptEnd::Finished))]);
                assert!(attempts.iter().all(|a| a.ended_ms.is_some_and(|end| end >= a.started_ms)));
                let job = s.job("j1").unwrap().unwrap();
                assert!(job.finished_ms.is_some_and(|end| Some(end) >= job.started_ms));
                // A job cancelled before it ran has no attempt.
                insert(s, "j2", &Submission::default(), 2).await;
                s.finished("j2", &ended(Outcome::Cancelled), false, AttemptEnd::Cancelled, None);
                s.flush().await.unwrap();
                assert!(s.attempts("j2").unwrap().is_empty());
                s.prune(u64::MAX >> 2).await.unwrap();
                s.flush().await.unwrap();
                assert!(s.attempts("j1").unwrap().is_empty(), "a pruned job's attempts stayed");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn listings_filter_by_tenant_node_and_module_and_go_on_after_a_job() {
                let f = open();
                let s = &*f.store;
                let as_tenant = |t: &str| Submission { key: None, tenant: t.into(), priority: 0 };
                let other = JobSpec { module: ModuleHash::of(b"other"), ..spec() };
                for (id, tenant) in [("j1", "alice"), ("j2", "bob"), ("j3", "alice"), ("j4", "bob")] {
                    insert(s, id, &as_tenant(tenant), 1).await;
                }
                s.insert(NewJob {
                    id: "j5",
                    submission: &as_tenant("alice"),
                    spec: &other,
                    submitted_ms: 1,
                    fingerprint: None,
                })
                .await
                .unwrap();
                s.running("j3", "node-a", 1);
                s.running("j4", "node-b", 1);
                s.flush().await.unwrap();
                let list = |filter: Filter, before| ids(s.list(&filter, before, 10).unwrap().jobs);
                let tenant = |t: &str| Filter { tenant: Some(t.into()), ..Filter::default() };
                assert_eq!(list(tenant("alice"), None), ["j5", "j3", "j1"]);
                assert_eq!(list(Filter { node: Some("node-a".into()), ..Filter::default() }, None), ["j3"]);
                let prefix =
                    |m: &ModuleHash| Filter { module_prefix: Some(m.as_str()[..8].into()), ..Filter::default() };
                assert_eq!(list(prefix(&other.module), None), ["j5"]);
                assert_eq!(list(prefix(&spec().module), None), ["j4", "j3", "j2", "j1"]);
                let queued_alice = Filter { state: Some(JobState::Queued), ..tenant("alice") };
                assert_eq!(list(queued_alice, None), ["j5", "j1"]);
                // After a job: those older than it.
                let after = s.position("j3").unwrap();
                assert!(after.is_some() && s.position("nope").unwrap().is_none());
                assert_eq!(list(Filter::default(), after), ["j2", "j1"]);
                assert_eq!(list(tenant("alice"), after), ["j1"]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_filtered_page_looks_at_a_bounded_window_and_says_where_to_go_on() {
                let f = open();
                let s = &*f.store;
                let as_tenant = |t: &str| Submission { key: None, tenant: t.into(), priority: 0 };
                insert(s, "needle", &as_tenant("rare"), 0).await;
                for i in 0..SCANNED + 10 {
                    insert(s, &format!("hay{i:05}"), &as_tenant("common"), 1).await;
                }
                let rare = Filter { tenant: Some("rare".into()), ..Filter::default() };
                let mut before = None;
                let mut found = Vec::new();
                let mut pages = 0;
                loop {
                    let page = s.list(&rare, before, 10).unwrap();
                    pages += 1;
                    found.extend(ids(page.jobs));
                    match page.next {
                        Some(next) => before = Some(next),
                        None => break,
                    }
                }
                assert_eq!(found, ["needle"]);
                assert_eq!(pages, 2, "the first window held only hay");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn node_histories_replace_by_name_and_list_most_recent_first() {
                use crate::model::NodeRecord;
                use grid_core::NodeState;
                let f = open();
                let s = &*f.store;
                assert_eq!(s.node("a").unwrap(), None);
                let mut a = NodeRecord::new("a", "id-a", 10);
                let b = NodeRecord { state: NodeState::Lost, ..NodeRecord::new("b", "id-b", 20) };
                s.nodes_seen(vec![a.clone(), b.clone()]);
                a.jobs_run = 3;
                a.fuel_burned = u64::MAX >> 2;
                a.lost_jobs = 1;
                a.state = NodeState::Gone;
                a.last_seen_ms = 30;
                s.nodes_seen(vec![a.clone()]);
                s.flush().await.unwrap();
                assert_eq!(s.node("a").unwrap(), Some(a.clone()));
                assert_eq!(s.node("b").unwrap(), Some(b.clone()));
                assert_eq!(s.nodes(10).unwrap(), [a.clone(), b]);
                assert_eq!(s.nodes(1).unwrap(), [a]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_node_standing_survives_in_the_record() {
                use crate::model::{NodeRecord, Standing};
                let f = open();
                let s = &*f.store;
                let mut a = NodeRecord::new("a", "id-a", 10);
                a.standing = Standing { streak: 7, strikes: 2, quarantined: true, credit: u64::MAX >> 2 };
                let b = NodeRecord::new("b", "id-b", 20);
                s.nodes_seen(vec![a.clone(), b.clone()]);
                s.flush().await.unwrap();
                assert_eq!(s.node("a").unwrap().unwrap().standing, a.standing);
                assert_eq!(s.node("b").unwrap().unwrap().standing, Standing::default());
                // A clear writes the node again, quarantine gone, credit kept.
                a.standing = Standing { credit: a.standing.credit, ..Standing::default() };
                s.nodes_seen(vec![a.clone()]);
                s.flush().await.unwrap();
                assert_eq!(s.nodes(10).unwrap(), [b, a]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_job_a_node_ran_to_its_end_counts_for_its_tenant_and_pruning_keeps_the_count() {
                use crate::model::TenantUse;
                let f = open();
                let s = &*f.store;
                assert!(s.tenant_use().unwrap().is_empty());
                let as_tenant = |t: &str| Submission { key: None, tenant: t.into(), priority: 0 };
                for (id, tenant) in [("j1", "alice"), ("j2", "alice"), ("j3", "bob"), ("j4", "alice")] {
                    insert(s, id, &as_tenant(tenant), 1).await;
                }
                let burned = |fuel| JobReport { fuel_used: fuel, ..ended(Outcome::Exited(0)) };
                s.finished("j1", &burned(40), false, AttemptEnd::Finished, Some("alice"));
                s.finished("j2", &burned(u64::MAX >> 2), false, AttemptEnd::Cancelled, Some("alice"));
                s.finished("j3", &burned(5), false, AttemptEnd::Finished, Some("bob"));
                // Ended before any node ran it to its end: not counted.
                s.finished("j4", &burned(7), false, AttemptEnd::Lost, None);
                s.flush().await.unwrap();
                let alice = TenantUse { name: "alice".into(), jobs_run: 2, fuel_burned: 40 + (u64::MAX >> 2) };
                let bob = TenantUse { name: "bob".into(), jobs_run: 1, fuel_burned: 5 };
                assert_eq!(s.tenant_use().unwrap(), [alice.clone(), bob.clone()]);
                s.prune(u64::MAX >> 2).await.unwrap();
                s.flush().await.unwrap();
                assert_eq!(s.tenant_use().unwrap(), [alice, bob], "pruning jobs forgot what their tenants ran");
            }
        }
    };
}
