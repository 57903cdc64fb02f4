//! What `/metrics` shows after jobs go through the live state.

use super::*;
use crate::fixtures::{node, spec};
use crate::model::ToNode;
use crate::record::MemoryStore;
use grid_core::{JobReport, Limits, Submission};
use tokio::sync::mpsc::UnboundedReceiver;

/// The value of the sample `series` (name and labels, as rendered) in
/// `text`; fails the test if it is not there.
#[track_caller]
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
        .parse()
        .unwrap()
}

fn live() -> Arc<LiveState> {
    Arc::new(LiveState::new(Arc::new(MemoryStore::new()), 3))
}

fn assigned(rx: &mut UnboundedReceiver<ToNode>) -> Option<String> {
    match rx.try_recv() {
        Ok(ToNode::Assign(id, _)) => Some(id),
        _ => None,
    }
}

fn report(outcome: Outcome, fuel: u64) -> JobReport {
    JobReport { fuel_used: fuel, ..JobReport::before_start(outcome, "", &Limits::default()) }
}

#[tokio::test]
async fn jobs_that_ran_are_counted_by_outcome_with_their_fuel_and_times() {
    let live = live();
    let (a, mut rx) = live.register_node(node("a")).unwrap();
    let first = live.submit(spec(&["1"]), Submission::default()).await.unwrap();
    let second = live.submit(spec(&["2"]), Submission::default()).await.unwrap();
    let third = live.submit(spec(&["3"]), Submission::default()).await.unwrap();
    assert_eq!(assigned(&mut rx).as_deref(), Some(first.as_str()));
    let text = live.metrics().render(&live);
    assert_eq!(value(&text, "grid_jobs{state=\"queued\"}"), 2.0);
    assert_eq!(value(&text, "grid_jobs{state=\"running\"}"), 1.0);
    assert!(value(&text, "grid_oldest_queued_job_age_seconds") >= 0.0);
    assert!(live.cancel(&third).unwrap());
    live.job_finished(a, &first, report(Outcome::Exited(0), 500));
    assert_eq!(assigned(&mut rx).as_deref(), Some(second.as_str()));
    live.job_finished(a, &second, report(Outcome::OutOfFuel, 70));

    let text = live.metrics().render(&live);
    assert_eq!(value(&text, "grid_jobs_submitted_total"), 3.0);
    assert_eq!(value(&text, "grid_jobs_finished_total{outcome=\"exited_zero\"}"), 1.0);
    assert_eq!(value(&text, "grid_jobs_finished_total{outcome=\"out_of_fuel\"}"), 1.0);
    assert_eq!(value(&text, "grid_jobs_finished_total{outcome=\"cancelled\"}"), 1.0);
    assert_eq!(value(&text, "grid_jobs_finished_total{outcome=\"trap\"}"), 0.0);
    assert_eq!(value(&text, "grid_fuel_burned_total"), 570.0);
    // Two jobs started (the cancelled one never did), and ran.
    assert_eq!(value(&text, "grid_job_queue_wait_seconds_count"), 2.0);
    assert_eq!(value(&text, "grid_job_run_seconds_count"), 2.0);
    assert_eq!(value(&text, "grid_job_run_seconds_bucket{le=\"+Inf\"}"), 2.0);
    assert_eq!(value(&text, "grid_jobs{state=\"queued\"}"), 0.0);
    assert_eq!(value(&text, "grid_oldest_queued_job_age_seconds"), 0.0);
    assert_eq!(value(&text, "grid_nodes{state=\"ready\"}"), 1.0);
    assert_eq!(value(&text, "grid_job_retries_total"), 0.0);
    assert!(text.contains("# TYPE grid_job_queue_wait_seconds histogram"), "{text}");
    assert!(text.ends_with("# EOF\n"));
    assert!(!text.contains(&first), "a job id is never a label");
    // The series reads the same counters.
    live.series().sample(&live);
    let sample = live.series().grid().pop().unwrap();
    assert_eq!((sample.submitted, sample.finished, sample.fuel, sample.queued), (3, 3, 570, 0));
    assert_eq!(live.series().node("a").len(), 1);
}

#[tokio::test]
async fn a_job_run_again_after_its_node_is_lost_is_a_retry_and_the_node_is_counted_lost() {
    let live = live();
    let (a, mut rx_a) = live.register_node(node("a")).unwrap();
    let job = live.submit(spec(&[]), Submission::default()).await.unwrap();
    assert_eq!(assigned(&mut rx_a).as_deref(), Some(job.as_str()));
    live.node_gone(a, "stream closed", NodeState::Lost);
    let (_b, mut rx_b) = live.register_node(node("b")).unwrap();
    assert_eq!(assigned(&mut rx_b).as_deref(), Some(job.as_str()));
    let text = live.metrics().render(&live);
    assert_eq!(value(&text, "grid_job_retries_total"), 1.0);
    assert_eq!(value(&text, "grid_job_queue_wait_seconds_count"), 1.0, "the wait is for the first start only");
    assert_eq!(value(&text, "grid_nodes{state=\"ready\"}"), 1.0);
    assert_eq!(value(&text, "grid_nodes{state=\"lost\"}"), 1.0);
}

#[test]
fn calls_are_counted_by_the_master_s_own_methods_and_other() {
    let m = Metrics::new();
    let text = m.render(&LiveState::default());
    assert!(!text.contains("grid_rpc_requests_total{"), "no call, no sample: {text}");
    let submit = rpc_method("/grid.v1.Master/SubmitJob");
    m.rpc().count(submit, 0);
    m.rpc().count(submit, 0);
    m.rpc().count(rpc_method("/grid.v1.Admin/RevokeNode"), 7);
    // A Master method under Admin is no method of ours, nor is a made-up one.
    m.rpc().count(rpc_method("/grid.v1.Admin/SubmitJob"), 12);
    m.rpc().count(rpc_method("/evil/ID-01J9"), 12);
    m.rpc().count(submit, 999);
    let text = m.render(&LiveState::default());
    assert_eq!(value(&text, "grid_rpc_requests_total{method=\"SubmitJob\",code=\"OK\"}"), 2.0);
    assert_eq!(value(&text, "grid_rpc_requests_total{method=\"RevokeNode\",code=\"PermissionDenied\"}"), 1.0);
    assert_eq!(value(&text, "grid_rpc_requests_total{method=\"other\",code=\"Unimplemented\"}"), 2.0);
    assert_eq!(value(&text, "grid_rpc_requests_total{method=\"SubmitJob\",code=\"Unknown\"}"), 1.0);
    assert!(!text.contains("ID-01J9"));
    m.http_request("/api/v1/jobs/{id}", 404);
    let text = m.render(&LiveState::default());
    assert_eq!(value(&text, "grid_http_requests_total{route=\"/api/v1/jobs/{id}\",status=\"404\"}"), 1.0);
}
