//! The signals that end a command following jobs: Ctrl-C (SIGINT) for
//! every such command, and SIGTERM and SIGHUP for one that owns its jobs
//! (`run`), which cancels them first. Each ends the CLI with the code a
//! shell reports for it.

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

/// A signal that ends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: `kill`, `timeout`, a service manager.
    Terminate,
    /// SIGHUP: the terminal went away.
    Hangup,
}

impl Signal {
    /// The exit code, as a shell reports a process this signal ended:
    /// 128 plus the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
            Signal::Hangup => 129,
        }
    }

    /// What happened, as the `grid:` line says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Interrupt => "interrupted",
            Signal::Terminate => "terminated",
            Signal::Hangup => "hung up",
        }
    }
}

/// The signals a command listens for, from the moment it is made.
pub struct Signals {
    interrupt: Stream,
    terminate: Option<Stream>,
    hangup: Option<Stream>,
}

impl Signals {
    /// Ctrl-C, SIGTERM and SIGHUP: for a command that owns its jobs, and
    /// must cancel them whichever way it is told to stop.
    pub fn owner() -> Result<Self> {
        Ok(Self {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: Some(listen(SignalKind::terminate())?),
            hangup: Some(listen(SignalKind::hangup())?),
        })
    }

    /// Ctrl-C alone: for a command that only watches. Other signals end it
    /// as they would any process, which leaves the job alone too.
    pub fn watcher() -> Result<Self> {
        Ok(Self { interrupt: listen(SignalKind::interrupt())?, terminate: None, hangup: None })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Signal {
        async fn next(stream: &mut Option<Stream>) {
            match stream {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Interrupt,
            _ = next(&mut self.terminate) => Signal::Terminate,
            _ = next(&mut self.hangup) => Signal::Hangup,
        }
    }
}

fn listen(kind: SignalKind) -> Result<Stream> {
    signal(kind).with_context(|| format!("failed to listen for signal {}", kind.as_raw_value()))
}
