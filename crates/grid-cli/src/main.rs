//! The `grid-cli` binary: parse flags, run the subcommand, map errors to
//! one `grid:` line and a documented exit code.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[macro_use]
mod out;

mod bar;
mod commands;
mod each;
mod embedded;
mod exit;
mod follow;
mod job;
mod login;
mod module;
mod output_dir;
mod rpc;
mod screen;
mod signals;
mod table;
mod waiting;
mod when;

use commands::Cli;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    // The embedded grid's node compiles modules in a child of this binary.
    grid_node::compile::serve_if_child();
    let mut cli: Cli = grid_core::usage::parse();
    // `new`, `completions` and `up` talk to no master, whatever
    // `$GRID_MASTER` says; `login` and `logout` to none but the one they name.
    use commands::Command::{Completions, Login, Logout, New, Up};
    let talks_to_master = !matches!(cli.command, New(_) | Login(_) | Logout(_) | Completions(_) | Up(_));
    if let Some(Err(why)) = cli.global.master.as_deref().filter(|_| talks_to_master).map(grid_core::Masters::parse) {
        errln!("grid: {why}");
        return ExitCode::from(exit::USAGE);
    }
    if talks_to_master {
        // A system that names no config dir has no saved login.
        let saved = match login::dir().map_or(Ok(None), |dir| login::load(&dir)) {
            Ok(saved) => saved,
            Err(e) => {
                errln!("grid: {e:#}");
                return ExitCode::from(exit::USAGE);
            }
        };
        let g = &mut cli.global;
        g.remote = login::resolve(g.master.as_deref(), g.token.as_deref(), g.ca.as_deref(), saved.as_ref());
        g.master = g.remote.as_ref().map(|r| r.url.clone());
    }
    let filter = match cli.global.verbose {
        // Quiet means quiet, whatever RUST_LOG says: scripts rely on it.
        0 => "off".into(),
        1 => std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        2 => "info".into(),
        _ => "debug".into(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(grid_core::terminal::colour_on_stderr())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            errln!("grid: failed to start the async runtime: {e}");
            return ExitCode::from(exit::GRID_ERROR);
        }
    };
    let result = runtime.block_on(async {
        let result = cli.command.execute(&cli.global).await;
        // An embedded grid stops, its record flushed, before the runtime
        // does: nothing of it may run on into the runtime's shutdown.
        embedded::stop().await;
        result
    });
    if cli.global.master.is_some() {
        // Nothing of ours runs in the background: no need to wait for it.
        runtime.shutdown_background();
    } else {
        // The embedded grid has stopped; only stragglers (a connection's
        // last task) remain.
        runtime.shutdown_timeout(Duration::from_millis(200));
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            // A refusal of the credentials is one line, whatever was tried.
            if let Some(refused) = rpc::refusal(&e) {
                errln!("grid: {refused}");
                return ExitCode::from(exit::GRID_ERROR);
            }
            let code = e.downcast_ref::<exit::Failure>().map_or(exit::GRID_ERROR, |f| f.code);
            errln!("grid: {e:#}");
            ExitCode::from(code)
        }
    }
}
