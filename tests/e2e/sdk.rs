//! Guests written with `guest-sdk`: structured results that `--output-dir`
//! brings back (also when the guest fails, and per input with `--each`), and
//! errors that become one `error:` line and an exit code.

use grid_tests::{GridSandbox, Run, example};
use serde_json::{Value, json};
use std::path::Path;

/// `DIR/result.json`, parsed.
#[track_caller]
fn result(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("result.json"))
        .unwrap_or_else(|e| panic!("`{}/result.json`: {e}", dir.display()));
    assert!(text.ends_with("}\n"), "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("`{}/result.json` is not JSON: {e}\n{text}", dir.display()))
}

#[test]
fn a_structured_result_comes_back_in_the_output_dir() {
    let grid = GridSandbox::start(1);
    let report = example("report");
    let out = grid.dir().join("results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("earlier.txt"), "kept").unwrap();
    let out_arg = out.to_str().unwrap();

    let text = "The cat and the hat.\n\"Café\" au café, 日本語!\n";
    let run = grid.run_with_stdin(
        &["run", "--output-dir", out_arg, report.to_str().unwrap(), "--", "--top", "2"],
        text.as_bytes(),
    );
    run.assert_clean_success();
    assert_eq!(run.stdout, "9 words, 7 distinct\n");
    assert_eq!(run.stderr, "");
    let expected = json!({
        "lines": 2,
        "words": 9,
        "distinct": 7,
        "top": [{"word": "café", "count": 2}, {"word": "the", "count": 2}],
    });
    assert_eq!(result(&out), expected);
    let counts = std::fs::read_to_string(out.join("counts.txt")).unwrap();
    assert_eq!(counts.lines().collect::<Vec<_>>(), ["2 café", "2 the", "1 and", "1 au", "1 cat", "1 hat", "1 日本語"]);
    assert_eq!(std::fs::read_to_string(out.join("earlier.txt")).unwrap(), "kept", "what was there stays");

    // A guest that fails after writing its result still leaves it behind,
    // and the output dir is made if missing.
    let fresh = grid.dir().join("fresh/results");
    let run = grid.run_with_stdin(
        &["run", "--output-dir", fresh.to_str().unwrap(), report.to_str().unwrap(), "--", "--min-words", "10"],
        b"only three words",
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "3 words, 3 distinct\n");
    assert_eq!(run.stderr, "error: only 3 words, fewer than --min-words 10\n");
    assert_eq!(result(&fresh)["words"], json!(3));
}

#[test]
fn errors_are_one_line_and_an_exit_code() {
    let grid = GridSandbox::start(1);
    let report = example("report");
    let report = report.to_str().unwrap();
    let out = grid.dir().join("out");
    let out = out.to_str().unwrap();
    // (grid-cli arguments, stdin, exit code, the whole of stderr)
    let cases: &[(&[&str], &str, i32, &str)] = &[
        (
            &["run", "--output-dir", out, report],
            "   \n",
            1,
            "error: nothing on stdin: try `echo some words | grid-cli run --output-dir DIR ...`\n",
        ),
        (
            &["run", report],
            "some words",
            1,
            "error: no output directory: `/out` is not mapped (run with `grid-cli run --output-dir DIR`)\n",
        ),
        (
            &["run", "--output-dir", out, report, "--", "--top", "many"],
            "some words",
            2,
            "error: option `--top` `many`: invalid digit found in string\n",
        ),
    ];
    for (args, stdin, code, stderr) in cases {
        let run = grid.run_with_stdin(args, stdin.as_bytes());
        assert_eq!(run.code, Some(*code), "{args:?}: {run:#?}");
        assert_eq!(run.stderr, *stderr, "{args:?}");
        assert!(run.grid_lines().is_empty(), "{args:?}: {run:#?}");
    }
    assert!(!Path::new(out).join("result.json").exists());

    // `/out` is the output dir's alone.
    let dir_arg = format!("{}::/out", grid.dir().display());
    let run = grid.run_with_stdin(&["run", "--dir", &dir_arg, "--output-dir", out, report], b"x");
    run.assert_grid_failure(125, "`--dir` cannot map `/out`: `--output-dir` gives the job `/out`");
}

#[test]
fn each_input_gets_its_own_result() {
    let grid = GridSandbox::start(2);
    let inputs = grid.dir().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 1..=5 {
        std::fs::write(inputs.join(format!("in{i}.txt")), "word ".repeat(i)).unwrap();
    }
    std::fs::write(inputs.join("in0.txt"), "").unwrap();
    let out = grid.dir().join("batch");
    let pattern = format!("{}/*.txt", inputs.display());
    let report = example("report");
    let run = grid.run(&["run", "--each", &pattern, "--output-dir", out.to_str().unwrap(), report.to_str().unwrap()]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("in0.txt: exited with code 1"), "{run:#?}");
    assert!(run.stderr.contains("6 jobs: 5 succeeded, 1 failed"), "{run:#?}");
    for i in 1..=5 {
        let name = format!("in{i}.txt");
        assert_eq!(
            std::fs::read_to_string(out.join(format!("{name}.out"))).unwrap(),
            format!("{i} words, 1 distinct\n")
        );
        let expected = json!({"lines": 1, "words": i, "distinct": 1, "top": [{"word": "word", "count": i}]});
        assert_eq!(result(&out.join(&name)), expected, "{name}");
    }
    // The failing input has its error, and no result directory.
    assert!(std::fs::read_to_string(out.join("in0.txt.err")).unwrap().starts_with("error: nothing on stdin"));
    assert!(!out.join("in0.txt").exists());
}

/// A guest that writes nothing to `/out` leaves nothing behind with `--each`
/// beyond its `.out` file, as before there was an output directory per job.
#[test]
fn each_without_results_makes_no_result_dirs() {
    let grid = GridSandbox::start(1);
    let inputs = grid.dir().join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::write(inputs.join("a.txt"), "one two\n").unwrap();
    let out = grid.dir().join("out");
    let pattern = format!("{}/*.txt", inputs.display());
    let wc = example("wc");
    let run: Run = grid.run(&["run", "--each", &pattern, "--output-dir", out.to_str().unwrap(), wc.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let names: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["a.txt.out"]);
}
