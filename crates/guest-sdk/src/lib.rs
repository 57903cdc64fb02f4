//! Write programs for wasm-grid in Rust.
//!
//! # What a guest is
//!
//! A grid guest is a plain WASI command: a preview 1 module
//! (`wasm32-wasip1`) or a preview 2 component (`wasm32-wasip2`). Whatever
//! runs under `wasmtime run` runs on the grid, and the other way round; the
//! grid adds no imports of its own. `grid-cli run app.wasm -- ARGS` runs it on
//! some node and streams its stdout and stderr back as it runs.
//!
//! A guest sees only what WASI gives it: its arguments, environment
//! (`--env`), stdin (what was piped into `grid-cli run`), stdout, stderr, the
//! directories mapped with `--dir HOST::GUEST`, and its output directory
//! `/out` when run with `--output-dir DIR`. No network, no other files, no
//! clock beyond WASI's.
//!
//! It runs under limits the submitter sets (`grid-cli run --help`): fuel
//! (`--fuel`, about one unit per wasm instruction, default `10G`), linear
//! memory (`--memory`, `512MiB`), wall-clock time (`--timeout`, `5m`), stdout
//! and stderr together (`--output-limit`, `64MiB`), its mapped directories
//! (`--disk-limit`, `256MiB`) and 256 files open at once. A guest cannot
//! catch a limit: the job ends there, `grid-cli run` prints one `grid:` line
//! and exits with a code of its own (123 out of fuel, 122 memory, 124
//! timeout, 121 output, 127 disk, 134 a trap or stack overflow).
//!
//! # What this crate does
//!
//! It makes the common parts short, one module per capability:
//!
//! - [`run`]: the entry point. Returning `Err` prints `error: <message>` on
//!   stderr and exits non-zero (1, or the code set with
//!   [`Error::with_code`]).
//! - [`args`]: positional arguments and `--name value` options, with usage
//!   errors (exit code 2).
//! - [`input`]: stdin as bytes, text, or lines.
//! - [`fs`]: mapped directories ([`fs::Dir`]) and the output directory
//!   ([`fs::output_dir`]).
//! - [`json`]: JSON values to build and encode ([`json::Json`]).
//! - [`result`]: the job's structured result, written to
//!   `/out/result.json`, which `grid-cli run --output-dir DIR` brings back as
//!   `DIR/result.json`.
//! - [`error`]: [`Error`], [`Context`] and [`bail!`].
//!
//! # A complete guest
//!
//! Counts the words on stdin, prints the top ones, and reports them as a
//! structured result; a word list in a mapped directory, if given, says what
//! to leave out. `examples/report` in the repository is a longer version.
//!
//! ```no_run
//! use guest_sdk::prelude::*;
//! use guest_sdk::{args::Args, fs::Dir, input, result};
//! use std::collections::HashMap;
//!
//! fn main() {
//!     run(|| {
//!         let args = Args::from_env();
//!         let top: usize = args.parse_option_or("top", 3)?; // `-- --top 5`
//!         let text = input::stdin_string()?;
//!         if text.trim().is_empty() {
//!             bail!("nothing on stdin: try `echo some words | grid-cli run ...`");
//!         }
//!         // `grid-cli run --dir ./lists::/lists ... -- --skip stop.txt`
//!         let skip = match args.option("skip") {
//!             Some(name) => Dir::open("/lists")?.read_to_string(name)?,
//!             None => String::new(),
//!         };
//!         let mut counts: HashMap<&str, u64> = HashMap::new();
//!         for word in text.split_whitespace().filter(|w| !skip.split_whitespace().any(|s| s == *w)) {
//!             *counts.entry(word).or_default() += 1;
//!         }
//!         let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
//!         ranked.sort_by(|(a, m), (b, n)| n.cmp(m).then(a.cmp(b)));
//!         ranked.truncate(top);
//!         for (word, count) in &ranked {
//!             println!("{count} {word}");
//!         }
//!         // `grid-cli run --output-dir ./results ...` brings it back as
//!         // `./results/result.json`; without it, this fails and says so.
//!         let words = ranked.iter().map(|(w, n)| Json::object().with("word", *w).with("count", *n));
//!         result::write(&Json::object().with("top", words.collect::<Json>())).context("reporting the result")?;
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip1`, and run:
//!
//! ```sh
//! echo "the cat and the hat" | grid-cli run --output-dir results \
//!     target/wasm32-wasip1/release/NAME.wasm -- --top 2
//! cat results/result.json
//! ```
//!
//! # Guarantees
//!
//! This crate depends on nothing but `std` and knows nothing of the host
//! (`grid-cli new` copies its source into new projects, which then build
//! offline). The result contract in [`result`] is plain WASI too: under
//! `wasmtime run`, map a directory with `--dir HOST::/out`.

#![deny(missing_docs)]

pub mod args;
pub mod error;
pub mod fs;
pub mod input;
pub mod json;
pub mod result;

pub use error::{Context, Error, Result};

/// The names most guests use.
pub mod prelude {
    pub use crate::error::{Context, Error, Result};
    pub use crate::json::Json;
    pub use crate::{bail, run};
}

/// Runs `body` as the program: on `Ok` exits 0; on `Err` prints
/// `error: <message>` on stderr and exits with the error's code (1 unless set
/// with [`Error::with_code`]).
///
/// Stdout is flushed first, so what the program printed before the error
/// comes out before the message.
pub fn run(body: impl FnOnce() -> Result<()>) -> ! {
    let code = match body() {
        Ok(()) => 0,
        Err(e) => {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            eprintln!("error: {e}");
            e.code()
        }
    };
    std::process::exit(code)
}
