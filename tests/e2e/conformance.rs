//! WASI preview 1 conformance: the programs of `examples/conformance`, each
//! with a manifest in the WASI testsuite's manner (arguments, environment,
//! preopened directories, stdin; the exit code and stdout it must give),
//! run through `grid-cli run` and under `wasmtime run`, both held to the
//! manifest.

use grid_tests::{GridSandbox, example, wasmtime_cli};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every program of the sample.
const PROGRAMS: [&str; 5] = ["wasi-args-env", "wasi-exit-code", "wasi-fs-ops", "wasi-clocks-random", "wasi-stdio"];

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/conformance")
}

/// A test's manifest.
struct Manifest {
    args: Vec<String>,
    env: Vec<(String, String)>,
    dirs: Vec<String>,
    stdin: String,
    exit_code: i32,
    stdout: String,
}

fn manifest(program: &str) -> Manifest {
    let path = conformance_dir().join("manifests").join(format!("{program}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text).expect("a JSON manifest");
    let strings = |key: &str| -> Vec<String> {
        v[key].as_array().map_or(Vec::new(), |a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
    };
    Manifest {
        args: strings("args"),
        env: v["env"]
            .as_object()
            .map_or(Vec::new(), |o| o.iter().map(|(k, s)| (k.clone(), s.as_str().unwrap().to_owned())).collect()),
        dirs: strings("dirs"),
        stdin: v["stdin"].as_str().unwrap_or_default().to_owned(),
        exit_code: v["exit_code"].as_i64().expect("an exit code") as i32,
        stdout: v["stdout"].as_str().expect("a stdout").to_owned(),
    }
}

/// A fresh copy of the directory `name` the test preopens, under `into`.
fn fixture(name: &str, into: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let target = into.join(name);
    copy(&conformance_dir().join(name), &target);
    target
}

/// Runs `cmd` with `stdin`; its exit code and stdout.
fn run_with(mut cmd: Command, stdin: &str) -> (Option<i32>, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_wasi_sample_passes_on_the_grid_and_under_wasmtime() {
    let grid = GridSandbox::start(1);
    for program in PROGRAMS {
        let m = manifest(program);
        let module = example(program);
        for runner in ["grid", "wasmtime"] {
            let scratch = tempfile::tempdir().unwrap();
            let mut cmd = match runner {
                "grid" => grid.cli(&["run"]),
                _ => {
                    let mut cmd = Command::new(wasmtime_cli());
                    cmd.arg("run");
                    cmd
                }
            };
            for dir in &m.dirs {
                let host = fixture(dir, scratch.path());
                cmd.arg("--dir").arg(format!("{}::/{dir}", host.display()));
            }
            for (k, v) in &m.env {
                cmd.arg("--env").arg(format!("{k}={v}"));
            }
            cmd.arg(&module);
            if runner == "grid" {
                cmd.arg("--");
            }
            cmd.args(&m.args);
            let (code, stdout, stderr) = run_with(cmd, &m.stdin);
            assert_eq!(code, Some(m.exit_code), "{program} under {runner}: exit code; stderr: {stderr}");
            assert_eq!(stdout, m.stdout, "{program} under {runner}: stdout; stderr: {stderr}");
        }
    }
}
