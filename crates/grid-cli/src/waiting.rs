//! What `run` shows while its job has no output yet: on a terminal, a
//! one-line spinner on stderr with the job's state and why it waits (or
//! that it starts on its node, compiling a large module, say), erased
//! before any output; elsewhere nothing, but with `-v` each reason it waits
//! for, once.

use crate::rpc::JobRow;
use grid_core::JobState;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// The spinner, or the `-v` lines, of one job.
pub struct Waiting {
    job_id: String,
    terminal: bool,
    verbose: bool,
    /// Shown only once a poll finds the job still without output, so a job
    /// that starts at once never flickers one.
    bar: Option<ProgressBar>,
    /// The job went to a node.
    assigned: bool,
    /// The last reason printed with `-v`.
    said: String,
    /// Output came, or the job ended: nothing more to show.
    done: bool,
}

impl Waiting {
    /// For job `job_id`, on this process's stderr.
    pub fn new(job_id: &str, verbose: bool) -> Self {
        Self {
            job_id: job_id.to_owned(),
            terminal: std::io::stderr().is_terminal(),
            verbose,
            bar: None,
            assigned: false,
            said: String::new(),
            done: false,
        }
    }

    /// Whether the job's status is worth asking for: a terminal shows it
    /// until output comes, `-v` says why the job waits until it starts.
    pub fn active(&self) -> bool {
        !self.done && (self.terminal || (self.verbose && !self.assigned))
    }

    /// Shows the job as `status` reports it.
    pub fn show(&mut self, row: &JobRow) {
        if self.done {
            return;
        }
        let text = match row.state {
            JobState::Queued if row.waiting.is_empty() => format!("job {} queued", self.job_id),
            JobState::Queued => format!("job {} queued: {}", self.job_id, row.waiting),
            JobState::Running if row.waiting == grid_core::COMPILING => {
                format!("job {} compiling its module on node `{}`", self.job_id, row.node)
            }
            JobState::Running => starting(&self.job_id, &row.node),
            // It ended: the end comes on the event stream.
            _ => return,
        };
        if self.terminal {
            self.spin(text);
        } else if self.verbose && row.state == JobState::Queued && !row.waiting.is_empty() && row.waiting != self.said {
            errln!("grid: job {} waits: {}", self.job_id, row.waiting);
            self.said = row.waiting.clone();
        }
    }

    /// The job went to `node`.
    pub fn assigned(&mut self, node: &str) {
        self.assigned = true;
        if let Some(bar) = &self.bar {
            bar.set_message(starting(&self.job_id, node));
        }
    }

    /// Prints a line on stderr, with the spinner out of its way.
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| errln!("{line}")),
            None => errln!("{line}"),
        }
    }

    /// Erases the spinner for good: output comes, or the job ended.
    pub fn clear(&mut self) {
        self.done = true;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    fn spin(&mut self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(text);
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bar = Some(bar);
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.clear();
    }
}

fn starting(job_id: &str, node: &str) -> String {
    format!("job {job_id} starting on node `{node}` (no output yet)")
}
