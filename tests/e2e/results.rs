//! What a job leaves behind, fetched after it ended: the files in its
//! `/out` (`result`) and all of its output (`logs`).

use crate::guests::{self, guest};
use grid_tests::{GridSandbox, example};

#[test]
fn result_fetches_what_a_submitted_job_left_in_out() {
    let grid = GridSandbox::start(1);
    let report = example("report");
    let (d1, d2) = (grid.dir().join("d1"), grid.dir().join("d2"));
    let submit = grid.run_with_stdin(
        &["submit", "--output-dir", d1.to_str().unwrap(), report.to_str().unwrap(), "--", "--top", "2"],
        b"the cat and the hat",
    );
    assert_eq!(submit.code, Some(0), "{submit:#?}");
    let id = submit.stdout.trim().to_owned();
    grid.run(&["wait", &id]).assert_clean_success();

    let run = grid.run(&["result", &id, "--output-dir", d2.to_str().unwrap()]);
    run.assert_clean_success();
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d2.join("result.json")).unwrap()).unwrap();
    assert_eq!((result["words"].as_u64(), result["lines"].as_u64()), (Some(5), Some(1)), "{result:#}");
    assert_eq!(result["top"][0]["word"], "the", "{result:#}");

    // A job with no `/out`, one not finished, and one that does not exist.
    let hello = grid.wat("hello", &guests::hello());
    let plain = grid.submit(&[hello.to_str().unwrap()]);
    grid.run(&["wait", &plain]).assert_clean_success();
    grid.run(&["result", &plain, "--output-dir", d2.to_str().unwrap()])
        .assert_grid_failure(125, "left no `/out`: only a job submitted with `--output-dir` has one");
    let sleeper = grid.wat("sleeper", &guest(guests::SLEEP_MINUTE));
    let busy = grid.submit(&["--output-dir", d1.to_str().unwrap(), sleeper.to_str().unwrap()]);
    grid.run(&["result", &busy, "--output-dir", d2.to_str().unwrap()])
        .assert_grid_failure(125, "has no result yet: wait for it with `grid-cli wait");
    grid.run(&["cancel", &busy]);
    grid.run(&["result", "0000000000000000", "--output-dir", d2.to_str().unwrap()])
        .assert_grid_failure(125, "no job `0000000000000000`");
    assert!(!d1.exists(), "submit wrote into its --output-dir");
}

#[test]
fn logs_of_a_finished_job_give_all_of_its_output() {
    let grid = GridSandbox::start(1);
    // 160 writes of one 64 KiB page: 10 MiB.
    let chatty = grid.wat(
        "chatty",
        &guest(
            "(local $i i32)
             (loop $l
               (call $print (i32.const 0) (i32.const 65536))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 160))))",
        ),
    );
    let id = grid.submit(&[chatty.to_str().unwrap()]);
    grid.run(&["wait", &id]).assert_clean_success();
    let (logs, bytes) = grid.run_counting(&["logs", &id]);
    logs.assert_clean_success();
    assert_eq!(bytes, 10 << 20, "`logs` of a finished job with 10 MiB of output");
}
