//! Uploading a module as large as real programs: the CLI reads it as it
//! sends, and neither it nor the master holds it in memory.

use crate::guests::hello;
use grid_tests::GridSandbox;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// `hello` with a custom section of `filler` bytes: valid, runs, and is as
/// large as a toolchain-built program.
fn padded_hello(filler: usize) -> Vec<u8> {
    let mut module = wat::parse_str(hello()).expect("hello parses");
    let name = b"filler";
    let mut payload_len = name.len() + 1 + filler;
    let mut size = Vec::new();
    loop {
        let byte = (payload_len & 0x7f) as u8;
        payload_len >>= 7;
        size.push(if payload_len == 0 { byte } else { byte | 0x80 });
        if payload_len == 0 {
            break;
        }
    }
    module.push(0); // a custom section
    module.extend_from_slice(&size);
    module.push(name.len() as u8);
    module.extend_from_slice(name);
    module.resize(module.len() + filler, 0);
    module
}

/// The peak resident memory of process `pid` so far, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().strip_suffix("kB")?.trim().parse::<u64>();
    kib.ok().map(|k| k * 1024)
}

#[test]
fn a_200_mb_module_uploads_streamed_and_runs() {
    const SIZE: usize = 200 << 20;
    let grid = GridSandbox::start(1);
    let path = grid.dir().join("big.wasm");
    std::fs::File::create(&path).and_then(|mut f| f.write_all(&padded_hello(SIZE))).expect("write module");
    let mut run =
        grid.cli(&["run", path.to_str().unwrap()]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = run.id();
    let mut cli_peak = 0;
    while run.try_wait().unwrap().is_none() {
        cli_peak = cli_peak.max(peak_rss(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let run: grid_tests::Run = run.wait_with_output().unwrap().into();
    run.assert_clean_success();
    assert_eq!(run.stdout, "first\n");
    // Far below the module's 200 MiB: neither holds it whole.
    assert!(cli_peak > 0 && cli_peak < 100 << 20, "the CLI peaked at {cli_peak} bytes");
    let master = peak_rss(grid.master_pid()).expect("the master's status");
    assert!(master < 150 << 20, "the master peaked at {master} bytes");
}

#[test]
fn a_module_over_the_master_s_ceiling_is_refused_with_the_reason() {
    let grid = GridSandbox::builder(1).master_args(&["--max-module-size", "1MiB"]).start();
    let path = grid.dir().join("big.wasm");
    std::fs::write(&path, padded_hello(2 << 20)).expect("write module");
    let run = grid.run(&["run", path.to_str().unwrap()]);
    run.assert_grid_failure(125, "over the master's limit of 1048576 bytes");
}
