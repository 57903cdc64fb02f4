//! Metrics and logs: a node's `/metrics` (`grid-node --metrics`) counts
//! what it ran, scraped over plain HTTP; `--log-format json` writes one
//! JSON object a line.

use crate::guests;
use grid_tests::{GridSandbox, Spawned, number};

/// `GET http://ADDR/PATH`: its status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(format!("http://{addr}{path}")).await.expect("the metrics server answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

/// The value of sample `series` (name and labels, as rendered) in `text`.
#[track_caller]
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no `{series}` in:\n{text}"))
        .parse()
        .unwrap()
}

/// Asserts every line of `log` is a JSON object with a level and a message.
#[track_caller]
fn assert_json_lines(what: &str, log: &str) {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{what} logged nothing");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{what} logged a line that is not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{what}: {line}");
    }
}

#[test]
fn a_node_s_metrics_count_the_jobs_it_ran_and_json_logs_are_json_lines() {
    let grid = GridSandbox::builder(0).master_args(&["--log-format", "json"]).start();
    let mut node = Spawned::start(grid.node_command("probe", "probe").args([
        "--metrics",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--slots",
        "1",
    ]));
    let line = node.wait_line(|l| l.starts_with("metrics: "));
    let addr = line.strip_prefix("metrics: ").unwrap().to_owned();
    grid.wait_until("the node registered", |g| g.nodes().into_iter().find(|n| n["name"] == "probe"));

    // Two modules: the first runs three times, the second (exit 3) once.
    let hello = grid.wat("hello", &guests::hello());
    let fails = grid.wat("fails", &guests::guest("(call $exit (i32.const 3))"));
    let mut fuel = 0;
    for module in [&hello, &hello, &fails, &hello] {
        let id = grid.submit(&[module.to_str().unwrap()]);
        let status = grid.wait_finished(&id);
        assert_eq!(status["node"], "probe", "{status}");
        fuel += number(&status["fuel_used"]);
    }
    let (status, text) = get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(value(&text, "grid_node_jobs_run_total"), 4.0);
    assert_eq!(value(&text, "grid_node_jobs_running"), 0.0);
    assert_eq!(value(&text, "grid_node_memory_in_use_bytes"), 0.0);
    assert_eq!(value(&text, "grid_node_fuel_burned_total"), fuel as f64, "the fuel its jobs reported");
    assert!(fuel > 0);
    // Each module compiled once, then found compiled.
    assert_eq!(value(&text, "grid_node_module_cache_misses_total"), 2.0);
    assert_eq!(value(&text, "grid_node_module_cache_hits_total"), 2.0);
    assert_eq!(value(&text, "grid_node_compile_seconds_count"), 2.0);
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(get(&addr, "/jobs").0, 404, "only /metrics is served");
    // A connection that says nothing is closed by the node, and scrapes
    // are served meanwhile.
    {
        use std::io::Read;
        let mut silent = std::net::TcpStream::connect(&addr).unwrap();
        silent.set_read_timeout(Some(grid_tests::READY_TIMEOUT)).unwrap();
        assert_eq!(get(&addr, "/metrics").0, 200);
        let mut rest = Vec::new();
        let read = silent.read_to_end(&mut rest);
        assert!(read.is_ok(), "the silent connection was held open: {read:?}");
    }

    node.signal("TERM");
    let run = node.finish();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_json_lines("the node", &run.stderr);
    assert_json_lines("the master", &grid.master_log());
}

/// `GET URL` (an `http://` one): its status and body.
fn get_url(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.expect("the master's HTTP server answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

#[test]
fn the_master_s_metrics_count_jobs_by_outcome_fuel_calls_and_routes_and_name_no_job() {
    let grid = GridSandbox::builder(1).master_args(&["--http", "127.0.0.1:0", "--http-plaintext"]).start();
    let hello = grid.wat("hello", &guests::hello());
    let fails = grid.wat("fails", &guests::guest("(call $exit (i32.const 3))"));
    let (mut fuel, mut ids) = (0, Vec::new());
    for module in [&hello, &fails, &hello] {
        let id = grid.submit(&[module.to_str().unwrap()]);
        fuel += number(&grid.wait_finished(&id)["fuel_used"]);
        ids.push(id);
    }
    let url = grid.http_url();
    assert!(url.starts_with("http://"), "{url}");
    get_url(&format!("{url}/healthz"));
    let (status, text) = get_url(&format!("{url}/metrics"));
    assert_eq!(status, 200);
    assert_eq!(value(&text, "grid_jobs_submitted_total"), 3.0);
    assert_eq!(value(&text, r#"grid_jobs_finished_total{outcome="exited_zero"}"#), 2.0);
    assert_eq!(value(&text, r#"grid_jobs_finished_total{outcome="exited_nonzero"}"#), 1.0);
    assert_eq!(value(&text, "grid_fuel_burned_total"), fuel as f64);
    assert_eq!(value(&text, "grid_job_run_seconds_count"), 3.0);
    assert_eq!(value(&text, "grid_job_queue_wait_seconds_count"), 3.0);
    assert_eq!(value(&text, r#"grid_rpc_requests_total{method="SubmitJob",code="OK"}"#), 3.0);
    assert_eq!(value(&text, r#"grid_http_requests_total{route="/healthz",status="200"}"#), 1.0);
    assert_eq!(value(&text, r#"grid_jobs{state="queued"}"#), 0.0);
    for id in &ids {
        assert!(!text.contains(id.as_str()), "job id {id} in the metrics:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}
