//! A WASI preview 2 component that does what its first argument says, to
//! show (and test) that components get the same args, env, files, exit
//! codes and limits as core modules.
//!
//! Modes: `echo` (args and env), `exit N`, `copy SRC DST` (a file, in
//! uppercase), `hold FILE` (opens it until refused), `fill FILE` (writes
//! it forever), `spin`, `grow` (memory), `flood` (stdout), `sleep SECS`.
//! `grid-cli run --env K=V target/wasm32-wasip2/release/probe-p2.wasm -- echo a b`

use guest_sdk::prelude::*;
use std::io::Write;

fn main() {
    guest_sdk::run(|| {
        let args = guest_sdk::args::Args::from_env();
        match args.get(0).unwrap_or("") {
            "echo" => {
                for arg in args.all() {
                    println!("arg {arg}");
                }
                let mut env: Vec<_> = std::env::vars().collect();
                env.sort();
                for (k, v) in env {
                    println!("env {k}={v}");
                }
            }
            "exit" => std::process::exit(args.parse_or(1, 1)?),
            "copy" => {
                let (src, dst) = (args.get(1).context("no source")?, args.get(2).context("no destination")?);
                let text = std::fs::read_to_string(src).context(format_args!("failed to read `{src}`"))?;
                std::fs::write(dst, text.to_uppercase()).context(format_args!("failed to write `{dst}`"))?;
            }
            "hold" => {
                let path = args.get(1).context("no file")?;
                let mut held = Vec::new();
                while held.len() < 100_000 {
                    match std::fs::File::open(path) {
                        Ok(file) => held.push(file),
                        Err(e) => bail!("refused after {} open files: {e}", held.len()),
                    }
                }
                println!("held {} open files", held.len());
            }
            "fill" => {
                let mut file = std::fs::File::create(args.get(1).context("no file")?)?;
                loop {
                    file.write_all(&[b'x'; 1 << 16])?;
                }
            }
            "spin" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut held = Vec::new();
                loop {
                    held.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&held);
                }
            }
            "flood" => loop {
                std::io::stdout().write_all(b"flood\n")?;
            },
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(args.parse_or(1, 60)?)),
            other => bail!("unknown mode `{other}`"),
        }
        Ok(())
    })
}
