//! `grid-cli run --each GLOB`: one job per input file, in parallel across
//! the grid, each with its file as stdin and its stdout saved to
//! `OUTPUT_DIR/<file name>.out` (and stderr, if any, to `.err`). Each job
//! gets its own `/out`, which lands in `OUTPUT_DIR/<file name>/`.

use crate::exit::{self, Failure};
use crate::job::{JobArgs, fresh_key};
use crate::output_dir;
use crate::rpc::{Client, Event};
use crate::signals::Signals;
use anyhow::{Context, Result};
use grid_core::{JobReport, JobSpec, OutputStream, Submission};
use indicatif::ProgressBar;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Jobs followed at once; the rest run anyway and are caught up with.
const FOLLOWING: usize = 64;

/// Runs one job per file matching `pattern`.
pub async fn run_each(
    job: &JobArgs,
    master: Option<&crate::login::Remote>,
    pattern: &str,
    out_dir: &Path,
) -> Result<ExitCode> {
    if let Some(quoted) = expanded_by_shell(pattern, &job.module, &job.args) {
        return Err(Failure::with(
            exit::USAGE,
            format!(
                "--each got one file, `{pattern}`, and more words follow: \
                 quote the pattern so that the shell does not expand it: --each {quoted}"
            ),
        ));
    }
    let out_mapping = output_dir::mapping(job)?;
    let inputs = expand(pattern)?;
    let mut names = std::collections::HashSet::new();
    for input in &inputs {
        if !names.insert(output_name(input)) {
            return Err(Failure::with(
                exit::GRID_ERROR,
                format!("two inputs are named `{}`: their outputs would overwrite each other", output_name(input)),
            ));
        }
    }
    // One input's `/out` goes to `NAME/`, beside `NAME.out` and `NAME.err`:
    // no other input may be named `NAME.out` or `NAME.err`.
    for name in &names {
        if let Some(other) = [".out", ".err"].map(|ext| format!("{name}{ext}")).into_iter().find(|n| names.contains(n))
        {
            return Err(Failure::with(
                exit::GRID_ERROR,
                format!("inputs `{name}` and `{other}`: their outputs would overwrite each other"),
            ));
        }
    }
    // Everything is read before anything is submitted, so that a bad input
    // leaves no job behind.
    let mut contents = Vec::new();
    for input in &inputs {
        contents.push(std::fs::read(input).with_context(|| format!("failed to read `{}`", input.display()))?);
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("failed to create `{}`", out_dir.display()))?;
    let (mut client, mut template) = job.prepare(master, &[]).await?;
    template.dirs.push(out_mapping);
    let submission = job.submission();
    let bar = progress(inputs.len() as u64);
    // Listening before the first job exists: a signal from now on cancels them all.
    let mut signals = Signals::owner()?;

    let mut jobs = Vec::new();
    for (input, stdin) in inputs.iter().zip(contents) {
        let mut args = template.args.clone();
        args.push(input.display().to_string());
        let spec = JobSpec { stdin, args, ..template.clone() };
        // Each job has a key of its own.
        let submission = Submission { key: Some(fresh_key()), ..submission.clone() };
        match client.submit(spec, submission).await {
            Ok(id) => jobs.push((input.clone(), id)),
            Err(e) => {
                cancel_all(&mut client, &jobs).await;
                return Err(e);
            }
        }
    }
    let ids: Vec<(PathBuf, String)> = jobs.clone();

    let permits = Arc::new(tokio::sync::Semaphore::new(FOLLOWING));
    let mut tasks = tokio::task::JoinSet::new();
    for (input, id) in jobs {
        let (client, bar, permits) = (client.clone(), bar.clone(), permits.clone());
        let name = output_name(&input);
        let out = out_dir.join(format!("{name}.out"));
        let err = out_dir.join(format!("{name}.err"));
        let results = out_dir.join(&name);
        tasks.spawn(async move {
            let _permit = permits.acquire().await;
            let report = collect(client, &id, &out, &err, &results).await;
            bar.inc(1);
            (input, report)
        });
    }
    let mut failed = Vec::new();
    loop {
        let done = tokio::select! {
            done = tasks.join_next() => done,
            signal = signals.recv() => {
                bar.finish_and_clear();
                cancel_all(&mut client, &ids).await;
                let n = ids.len();
                return Err(Failure::with(signal.exit_code(), format!("{}: {n} jobs were asked to stop", signal.as_str())));
            }
        };
        let Some(done) = done else { break };
        let (input, report) = done.context("a follower task failed")?;
        match report {
            Ok(r) if r.outcome.exit_code() == Some(0) => {}
            Ok(r) => failed.push(format!("{}: {}", input.display(), r.reason())),
            Err(e) => failed.push(format!("{}: {e:#}", input.display())),
        }
    }
    bar.finish_and_clear();
    failed.sort();
    for f in &failed {
        errln!("grid: {f}");
    }
    let ok = inputs.len() - failed.len();
    errln!("grid: {} jobs: {ok} succeeded, {} failed; output in `{}`", inputs.len(), failed.len(), out_dir.display());
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The name an input's outputs go by: its file name.
fn output_name(input: &Path) -> String {
    input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into())
}

async fn cancel_all(client: &mut Client, jobs: &[(PathBuf, String)]) {
    for (_, id) in jobs {
        let _ = client.cancel(id).await;
    }
}

/// Whether the shell expanded an unquoted `--each` pattern: `--each` got
/// one path with no glob characters, the word taken as the module is not
/// named like one but sits beside that path, and more words that are not
/// flags follow. Returns the pattern to suggest, quoted, made of what the
/// sibling files' names share (`'inputs/f*.txt'`).
fn expanded_by_shell(each: &str, module: &Path, args: &[String]) -> Option<String> {
    let named_like_module = |p: &Path| matches!(p.extension().and_then(|e| e.to_str()), Some("wasm" | "wat" | "wast"));
    let each = Path::new(each);
    let dir = each.parent();
    if each.to_str().is_none_or(|s| s.contains(['*', '?', '['])) || named_like_module(module) || module.parent() != dir
    {
        return None;
    }
    if !args.iter().any(|a| !a.starts_with('-')) {
        return None;
    }
    let siblings = std::iter::once(module).chain(
        args.iter()
            .map(Path::new)
            .take_while(|p| !p.to_string_lossy().starts_with('-') && !named_like_module(p) && p.parent() == dir),
    );
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let first: Vec<char> = name(each).chars().collect();
    let (mut prefix, mut suffix, mut shortest) = (first.len(), first.len(), first.len());
    for other in siblings.map(name) {
        let other: Vec<char> = other.chars().collect();
        prefix = prefix.min(first.iter().zip(&other).take_while(|(a, b)| a == b).count());
        suffix = suffix.min(first.iter().rev().zip(other.iter().rev()).take_while(|(a, b)| a == b).count());
        shortest = shortest.min(other.len());
    }
    // The shared start and end may not overlap in the shortest name.
    let suffix = suffix.min(shortest - prefix);
    let glob: String = first[..prefix].iter().chain(&['*']).chain(&first[first.len() - suffix..]).collect();
    let pattern = dir.map_or_else(|| PathBuf::from(&glob), |d| d.join(&glob));
    Some(format!("'{}'", pattern.display()))
}

fn expand(pattern: &str) -> Result<Vec<PathBuf>> {
    let paths = glob::glob(pattern)
        .map_err(|e| Failure::with(exit::GRID_ERROR, format!("`{pattern}` is not a pattern: {e}")))?;
    let mut inputs: Vec<PathBuf> = paths.filter_map(|p| p.ok()).filter(|p| p.is_file()).collect();
    inputs.sort();
    if inputs.is_empty() {
        return Err(Failure::with(exit::GRID_ERROR, format!("no file matches `{pattern}`")));
    }
    Ok(inputs)
}

fn progress(total: u64) -> ProgressBar {
    crate::bar::on_terminal(total, "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} jobs ({eta} left)")
}

/// Follows one job, writing its stdout to `out`, its stderr (if any) to
/// `err`, and what it left in `/out` (if anything) into `results`. Output
/// before a retry belongs to a void attempt and is dropped.
async fn collect(mut client: Client, id: &str, out: &Path, err: &Path, results: &Path) -> Result<JobReport> {
    let mut watch = client.watch(id, false).await?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(event) = watch.next().await? {
        match event {
            Event::Output(OutputStream::Stdout, d) => stdout.extend_from_slice(&d),
            Event::Output(OutputStream::Stderr, d) => stderr.extend_from_slice(&d),
            Event::Retry(_) => {
                stdout.clear();
                stderr.clear();
            }
            Event::Assigned(_) => {}
            Event::Finished(report) => {
                std::fs::File::create(out)
                    .and_then(|mut f| f.write_all(&stdout))
                    .with_context(|| format!("failed to write `{}`", out.display()))?;
                if !stderr.is_empty() {
                    std::fs::write(err, &stderr).with_context(|| format!("failed to write `{}`", err.display()))?;
                }
                output_dir::write_back(&report, results)?;
                return Ok(report);
            }
        }
    }
    Err(anyhow::anyhow!("the master ended job {id}'s event stream early"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(each: &str, rest: &[&str], want: Option<&str>) {
        let (module, args) = rest.split_first().unwrap();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        assert_eq!(expanded_by_shell(each, Path::new(module), &args).as_deref(), want, "--each {each} {rest:?}");
    }

    #[test]
    fn a_pattern_the_shell_expanded_is_caught_and_a_quoted_one_is_not() {
        // What the shell makes of `--each inputs/f*.txt --output-dir o mod.wasm`.
        let expanded = ["inputs/f2.txt", "inputs/f3.txt", "--output-dir", "o", "mod.wasm"];
        check("inputs/f1.txt", &expanded, Some("'inputs/f*.txt'"));
        check("f1.txt", &["f10.txt", "f9.txt", "mod.wasm"], Some("'f*.txt'"));
        check("in/a.txt", &["in/b.txt", "mod.wat", "--", "x"], Some("'in/*.txt'"));
        check("in/data", &["in/data2", "mod.wasm"], Some("'in/data*'"));
        // Quoted patterns, one input file, and modules beside their input.
        check("in/*.txt", &["in/b.txt", "mod.wasm"], None);
        check("inputs/f[12].txt", &["inputs/f3.txt", "mod.wasm"], None);
        check("in/one.txt", &["mod.wasm", "--", "arg"], None);
        check("in/one.txt", &["mod.wasm", "arg", "more"], None);
        check("in/one.txt", &["in/mod.wasm", "arg"], None);
        check("in/one.txt", &["prog", "arg"], None);
        check("in/one.txt", &["in/prog", "--flag"], None);
    }
}
