//! `grid-cli top`: a live view of the grid's jobs and nodes, refreshed
//! every second; one plain snapshot when stdout is not a terminal.

use crate::commands::GlobalArgs;
use crate::rpc::{Client, JobQuery, JobRow, NodeRow};
use crate::screen::Screen;
use crate::signals::Signals;
use crate::{table, when};
use anyhow::Result;
use clap::Parser;
use crossterm::event::{Event, KeyCode, KeyEventKind, KeyModifiers};
use grid_core::{JobState, format_fuel};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::mpsc;

/// The newest jobs shown besides every running and queued one.
const NEWEST: usize = 20;

/// The most running (and, apart, queued) jobs fetched for one refresh.
const ACTIVE_MAX: usize = 200;

/// How often the view is refreshed.
const EVERY: Duration = Duration::from_secs(1);

/// Watch the grid's jobs and nodes live, like `top`.
///
/// Every running and queued job and the newest ones (id, state, tenant,
/// node, fuel burned, wall time), and the connected nodes (state, slots in
/// use of those declared, trust, credit), refreshed every second. `q`, Esc
/// or Ctrl-C quits. When stdout is not a terminal, or with `--once`, it
/// prints one snapshot as plain text and exits.
#[derive(Parser, Debug)]
pub struct TopCommand {
    /// Print one snapshot as plain text and exit.
    #[arg(long)]
    once: bool,
}

impl TopCommand {
    /// Runs the command.
    pub async fn execute(self, global: &GlobalArgs) -> Result<ExitCode> {
        let mut client = Client::connect(global.remote.as_ref()).await?;
        if self.once || !std::io::stdout().is_terminal() {
            let snapshot = Snapshot::take(&mut client).await?;
            for line in snapshot.lines(when::now_ms()) {
                outln!("{line}")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        // Before the screen: a signal from now on ends the view cleanly.
        let mut signals = Signals::owner()?;
        let mut screen = Screen::enter()?;
        let (keys, mut quit) = mpsc::channel(1);
        let reader = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let reading = reader.clone();
        // Reading keys blocks: on a thread of its own, polling so that it
        // notices when the view is gone.
        std::thread::spawn(move || {
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                match crossterm::event::poll(Duration::from_millis(100)) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(_) => break,
                }
                if let Ok(Event::Key(key)) = crossterm::event::read()
                    && key.kind == KeyEventKind::Press
                    && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc)
                        || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL)))
                {
                    let _ = keys.blocking_send(());
                    break;
                }
            }
        });
        let result = async {
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let snapshot = Snapshot::take(&mut client).await?;
                        let mut lines = snapshot.lines(when::now_ms());
                        lines.insert(0, format!("grid-cli top: {}   q quits", global.master.as_deref().unwrap_or("embedded grid")));
                        screen.draw(&lines)?;
                    }
                    _ = quit.recv() => return Ok(()),
                    _ = signals.recv() => return Ok(()),
                }
            }
        }
        .await;
        reader.store(false, std::sync::atomic::Ordering::Relaxed);
        drop(screen);
        result.map(|()| ExitCode::SUCCESS)
    }
}

/// What one refresh shows.
struct Snapshot {
    jobs: Vec<JobRow>,
    nodes: Vec<NodeRow>,
}

impl Snapshot {
    /// Running jobs, queued ones, then the newest others; and the nodes.
    async fn take(client: &mut Client) -> Result<Self> {
        let of = |state| JobQuery { state: Some(state), ..JobQuery::default() };
        let mut jobs = client.jobs(&of(JobState::Running), ACTIVE_MAX).await?;
        jobs.extend(client.jobs(&of(JobState::Queued), ACTIVE_MAX).await?);
        for job in client.jobs(&JobQuery::default(), NEWEST).await? {
            if !jobs.iter().any(|j| j.id == job.id) {
                jobs.push(job);
            }
        }
        let nodes = client.nodes(false).await?;
        Ok(Self { jobs, nodes })
    }

    /// The view as lines of plain text: the jobs' table, a blank line, the
    /// nodes' table.
    fn lines(&self, now_ms: u64) -> Vec<String> {
        let jobs: Vec<[String; 6]> = self.jobs.iter().map(|j| job_row(j, now_ms)).collect();
        let nodes: Vec<[String; 5]> = self.nodes.iter().map(node_row).collect();
        let mut lines: Vec<String> = Vec::new();
        let running = self.jobs.iter().filter(|j| j.state == JobState::Running).count();
        let queued = self.jobs.iter().filter(|j| j.state == JobState::Queued).count();
        lines.push(format!("jobs: {running} running, {queued} queued"));
        lines
            .extend(table::render(&["ID", "STATE", "TENANT", "NODE", "FUEL", "WALL"], &jobs).lines().map(String::from));
        lines.push(String::new());
        lines.push(format!("nodes: {}", self.nodes.len()));
        lines.extend(table::render(&["NAME", "STATE", "SLOTS", "TRUST", "CREDIT"], &nodes).lines().map(String::from));
        lines
    }
}

/// A job's row: its state with an icon, its fuel and wall time so far.
fn job_row(j: &JobRow, now_ms: u64) -> [String; 6] {
    let icon = match j.state {
        JobState::Queued => "…",
        JobState::Running => "▶",
        JobState::Succeeded => "✓",
        JobState::Failed => "✗",
        JobState::Cancelled => "⊘",
    };
    let (fuel, wall) = match (&j.result, j.started_ms) {
        (Some(r), _) => (format_fuel(r.fuel_used), when::span(r.wall.as_millis() as u64)),
        (None, Some(started)) => ("-".to_owned(), when::span(now_ms.saturating_sub(started))),
        (None, None) => ("-".to_owned(), "-".to_owned()),
    };
    let or_dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    [j.id.clone(), format!("{icon} {}", j.state.as_str()), or_dash(&j.tenant), or_dash(&j.node), fuel, wall]
}

/// A node's row.
fn node_row(n: &NodeRow) -> [String; 5] {
    [
        n.name.clone(),
        n.state.clone(),
        format!("{}/{}", n.slots_used, n.slots_total),
        crate::commands::nodes::trust(n),
        format_fuel(n.credit),
    ]
}
