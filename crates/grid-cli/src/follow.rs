//! Following a job to its end: printing its output as it comes, riding out
//! a restarted master, what a signal does (`run` owns its job and cancels
//! it; `wait` and `logs --follow` only watch, and leave it alone), and the
//! exit status that ends `run` and `wait`.

use crate::exit::{self, Failure};
use crate::login::Remote;
use crate::rpc::{Client, Event, Watch};
use crate::signals::{Signal, Signals};
use crate::waiting::Waiting;
use anyhow::{Context, Result};
use grid_core::{JobReport, Outcome, OutputStream, format_fuel};
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long a follower keeps trying to reach a master that went away.
const REATTACH_FOR: Duration = Duration::from_secs(120);

/// How long an owner waits for its job to end once it has asked it to stop.
const CANCEL_WITHIN: Duration = Duration::from_secs(10);

/// How long a call made while following (a cancel, a look at the job's
/// state) may take before it is given up, so that signals stay heard.
const CALL_WITHIN: Duration = Duration::from_secs(5);

/// What to do with the job's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Print it to this process's stdout and stderr.
    Print,
    /// Leave it.
    Discard,
}

/// Who follows the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `run`, which submitted the job: Ctrl-C, SIGTERM and SIGHUP cancel
    /// it, and so does a closed stdout. While the job has not started, a
    /// terminal shows why it waits.
    Owner,
    /// `wait` and `logs --follow`: Ctrl-C stops watching, and a closed
    /// stdout too; the job goes on.
    Watcher,
}

/// Who follows a job, listening for the signals its role heeds from the
/// moment it is made: made before the job is submitted, an owner misses no
/// signal that comes meanwhile.
pub struct Follower {
    role: Role,
    signals: Signals,
}

impl Follower {
    /// A follower in `role`, listening from now on.
    pub fn new(role: Role) -> Result<Self> {
        let signals = match role {
            Role::Owner => Signals::owner()?,
            Role::Watcher => Signals::watcher()?,
        };
        Ok(Self { role, signals })
    }

    /// Follows `job_id` until it ends. With a named master, a broken stream
    /// is followed again once the master is back, without printing twice
    /// what was already printed. What a signal or a closed stdout does
    /// depends on the role. `None` when our own stdout closed. `first` is a
    /// watch already open on the job, if any.
    pub async fn follow(
        mut self,
        client: &mut Client,
        master: Option<&Remote>,
        job_id: &str,
        mut first: Option<Watch>,
        output: Output,
        verbose: bool,
    ) -> Result<Option<JobReport>> {
        let (role, signals) = (self.role, &mut self.signals);
        let mut waiting = (role == Role::Owner).then(|| Waiting::new(job_id, verbose));
        // The signal that asked the job to stop, and until when to wait for it.
        let mut stopping: Option<(Signal, tokio::time::Instant)> = None;
        // Bytes printed so far per stream. After reattaching, or when the job
        // runs again, its output is replayed from the start and this much of it
        // is skipped: a program that prints the same again reads seamlessly.
        let mut printed = [0usize; 2];
        // A closed stderr (`2> >(head -1)`) only stops the job's stderr
        // here: its stdout still matters, and so does the job.
        let mut stderr_gone = false;
        let mut lost_at: Option<Instant> = None;
        let result = loop {
            if let Some(since) = lost_at {
                if since.elapsed() > REATTACH_FOR {
                    break Err(Failure::with(
                        exit::GRID_ERROR,
                        format!(
                            "lost master `{}` while following job {job_id}",
                            master.map_or("embedded", |m| m.url.as_str())
                        ),
                    ));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    signal = signals.recv() => {
                        let what = match role {
                            Role::Owner => format!("job {job_id} may still run: the master is out of reach"),
                            Role::Watcher => format!("stopped watching job {job_id}; it goes on"),
                        };
                        break Err(Failure::with(signal.exit_code(), format!("{}: {what}", signal.as_str())));
                    }
                }
                // Through the list of masters, from the one that led last:
                // a job is followed on whichever master leads now.
                if client.reconnect().await.is_err() {
                    continue;
                }
            }
            let watched = match first.take() {
                Some(w) => Ok(w),
                None => client.watch(job_id, false).await,
            };
            let mut watch = match watched {
                Ok(w) => w,
                Err(_) if lost_at.is_some() => continue,
                Err(e) => break Err(e),
            };
            let mut seen = [0usize; 2];
            let mut poll = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_millis(300),
                Duration::from_secs(1),
            );
            let broke = loop {
                let polling = waiting.as_ref().is_some_and(Waiting::active);
                let deadline = stopping.map(|(_, until)| until);
                let event = tokio::select! {
                    e = watch.next() => e,
                    _ = poll.tick(), if polling => {
                        let row = tokio::time::timeout(CALL_WITHIN, client.job(job_id)).await;
                        if let (Some(w), Ok(Ok(row))) = (waiting.as_mut(), row) {
                            w.show(&row);
                        }
                        continue;
                    }
                    signal = signals.recv() => {
                        if role == Role::Watcher {
                            return Err(Failure::with(
                                signal.exit_code(),
                                format!("{}: stopped watching job {job_id}; it goes on", signal.as_str()),
                            ));
                        }
                        if let Some((first, _)) = stopping {
                            return Err(Failure::with(
                                first.exit_code(),
                                format!("{}: job {job_id} was asked to stop", first.as_str()),
                            ));
                        }
                        stopping = Some((signal, tokio::time::Instant::now() + CANCEL_WITHIN));
                        if let Some(w) = waiting.as_mut() {
                            w.clear();
                        }
                        // A master that does not answer must not keep a second
                        // signal from being heard.
                        if let Ok(cancelled) = tokio::time::timeout(CALL_WITHIN, client.cancel(job_id)).await {
                            cancelled?;
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                        let signal = stopping.map_or(Signal::Interrupt, |(s, _)| s);
                        return Err(Failure::with(
                            signal.exit_code(),
                            format!("{}: job {job_id} was asked to stop", signal.as_str()),
                        ));
                    }
                };
                let event = match event {
                    Ok(Some(event)) => event,
                    Ok(None) => break anyhow::anyhow!("the event stream ended early"),
                    Err(e) => break e,
                };
                lost_at = None;
                let written = match event {
                    Event::Assigned(node) => {
                        if let Some(w) = waiting.as_mut() {
                            w.assigned(&node);
                        }
                        if verbose {
                            say(&waiting, &format!("grid: job {job_id} running on node `{node}`"));
                        }
                        Ok(())
                    }
                    Event::Retry(attempt) => {
                        if verbose {
                            say(&waiting, &format!("grid: job {job_id} lost its node; attempt {attempt} starts"));
                        }
                        seen = [0, 0];
                        Ok(())
                    }
                    Event::Output(stream, data) => {
                        if let Some(w) = waiting.as_mut() {
                            w.clear();
                        }
                        match stream {
                            OutputStream::Stdout => {
                                emit(output, &mut std::io::stdout(), &data, &mut seen[0], &mut printed[0])
                            }
                            OutputStream::Stderr if stderr_gone => Ok(()),
                            OutputStream::Stderr => {
                                match emit(output, &mut std::io::stderr(), &data, &mut seen[1], &mut printed[1]) {
                                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                                        stderr_gone = true;
                                        Ok(())
                                    }
                                    written => written,
                                }
                            }
                        }
                    }
                    Event::Finished(report) => {
                        if let Some(w) = waiting.as_mut() {
                            w.clear();
                        }
                        if let Some((signal, _)) = stopping
                            && matches!(report.outcome, Outcome::Cancelled)
                        {
                            return Err(Failure::with(signal.exit_code(), format!("cancelled ({})", signal.as_str())));
                        }
                        return Ok(Some(report));
                    }
                };
                if let Err(e) = written {
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        // Whoever reads our output is gone: an owner's job has
                        // no use any more; a watched one goes on.
                        if role == Role::Owner {
                            let _ = client.cancel(job_id).await;
                        }
                        return Ok(None);
                    }
                    return Err(e).context("failed to write the job's output");
                }
            };
            // Only a named master comes back; an embedded one lives and dies with
            // the `run` that started it.
            if master.is_none() {
                let why = match role {
                    Role::Owner => format!("lost job {job_id}'s event stream: {broke:#}"),
                    Role::Watcher => format!(
                        "job {job_id} has not ended, and only the `grid-cli run` that started it on the embedded grid \
                         follows it (`grid-cli status {job_id}` shows where it stands)"
                    ),
                };
                break Err(Failure::with(exit::GRID_ERROR, why));
            }
            if verbose {
                say(
                    &waiting,
                    &format!("grid: lost the master ({broke:#}); following job {job_id} again once it is back"),
                );
            }
            lost_at.get_or_insert_with(Instant::now);
        };
        if let Some(w) = waiting.as_mut() {
            w.clear();
        }
        result
    }
}

/// Prints a diagnostic line on stderr, around the spinner if one shows.
fn say(waiting: &Option<Waiting>, line: &str) {
    match waiting {
        Some(w) => w.say(line),
        None => errln!("{line}"),
    }
}

/// Writes the part of `data` not printed before a reattach.
fn emit(
    output: Output,
    out: &mut impl Write,
    data: &[u8],
    seen: &mut usize,
    printed: &mut usize,
) -> std::io::Result<()> {
    let start = *seen;
    *seen += data.len();
    if output == Output::Discard || *seen <= *printed {
        return Ok(());
    }
    let skip = printed.saturating_sub(start);
    out.write_all(&data[skip..])?;
    out.flush()?;
    *printed = *seen;
    Ok(())
}

/// Prints the job's cost on stderr (for `--stats` and `-v`).
pub fn print_stats(job_id: &str, report: &JobReport) {
    errln!(
        "grid: job {job_id} on node `{}`: {}, fuel {} of {}, peak memory {}, wall {:.1?}, start-up {:.1?}",
        report.node,
        report.outcome,
        format_fuel(report.fuel_used),
        format_fuel(report.fuel_limit),
        bytesize::ByteSize(report.peak_memory).display().iec(),
        report.wall,
        report.startup
    );
}

/// The exit status for a finished job, with its one `grid:` line when it
/// did not exit by itself.
pub fn exit_status(report: &JobReport) -> ExitCode {
    if report.outcome.exit_code().is_none() {
        errln!("grid: {}", report.reason());
    }
    ExitCode::from(exit::for_outcome(&report.outcome))
}
