//! Write programs for wasm-grid in Rust.
//!
//! A grid guest is a plain WASI preview 1 program: whatever runs under
//! `wasmtime run` runs on the grid, and the other way round. This crate
//! makes the common parts short: arguments, input, mapped directories, and
//! errors that become a message on stderr and a non-zero exit code.
//!
//! ```no_run
//! use guest_sdk::prelude::*;
//!
//! fn main() {
//!     guest_sdk::run(|| {
//!         let args = guest_sdk::args::Args::from_env();
//!         let name = args.get(0).unwrap_or("world");
//!         let input = guest_sdk::input::stdin_string()?;
//!         println!("hello, {name}: {} bytes of input", input.len());
//!         Ok(())
//!     })
//! }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip1` and run with
//! `grid-cli run target/wasm32-wasip1/release/NAME.wasm -- ARGS`.
//!
//! This crate depends on nothing but `std`; it knows nothing of the host.

#![deny(missing_docs)]

pub mod args;
pub mod error;
pub mod fs;
pub mod input;

pub use error::{Context, Error, Result};

/// The names most guests use.
pub mod prelude {
    pub use crate::error::{Context, Error, Result};
    pub use crate::{bail, run};
}

/// Runs `body` as the program: on `Ok` exits 0; on `Err` prints
/// `error: <message>` on stderr and exits with the error's code (1 unless set
/// with [`Error::with_code`]).
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
