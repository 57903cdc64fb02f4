//! `--output-dir`: the job gets an empty, writable directory at `/out`, and
//! what it leaves there is written into a directory here when it ends, beside
//! what that directory already holds. A guest's structured result is the
//! file `/out/result.json` in it (see `guest_sdk::result`).

use crate::exit::{self, Failure};
use crate::job::JobArgs;
use anyhow::{Context, Result};
use grid_core::{JobReport, MappedDir, archive};
use std::path::Path;

/// Where the guest finds its output directory (`guest_sdk::fs::OUTPUT_DIR`).
pub const GUEST_PATH: &str = "/out";

/// The mapping that gives a job an empty `/out`. Fails if `--dir` already
/// maps something there.
pub fn mapping(job: &JobArgs) -> Result<MappedDir> {
    let under = |guest: &str| {
        let guest = guest.trim_end_matches('/');
        guest == GUEST_PATH || guest.strip_prefix(GUEST_PATH).is_some_and(|rest| rest.starts_with('/'))
    };
    if let Some((_, guest)) = job.dirs.iter().find(|(_, guest)| under(guest)) {
        return Err(Failure::with(
            exit::GRID_ERROR,
            format!("`--dir` cannot map `{guest}`: `--output-dir` gives the job `{GUEST_PATH}`"),
        ));
    }
    Ok(MappedDir { guest_path: GUEST_PATH.to_owned(), archive: archive::empty() })
}

/// Creates `dir` on this side before the job runs, so that a directory that
/// cannot be made fails the run before it starts.
pub fn create(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::with(exit::GRID_ERROR, format!("failed to create `{}`: {e}", dir.display())))
}

/// Writes what the job left in `/out` into `dest`, creating it if the job
/// left anything. Files in `dest` that the job did not write stay as they
/// are. A job that never ran, or went over its disk limit, sends nothing
/// back and changes nothing here.
pub fn write_back(report: &JobReport, dest: &Path) -> Result<()> {
    if report.dirs.is_empty() {
        return Ok(());
    }
    let Some(out) = report.dirs.iter().find(|d| d.guest_path == GUEST_PATH) else {
        return Err(Failure::with(exit::GRID_ERROR, format!("the node sent no contents for `{GUEST_PATH}`")));
    };
    let fail = || format!("failed to write the job's `{GUEST_PATH}` into `{}`", dest.display());
    if archive::is_empty(&out.archive).with_context(fail)? {
        return Ok(());
    }
    std::fs::create_dir_all(dest).with_context(fail)?;
    archive::unpack(&out.archive, dest, u64::MAX).with_context(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        job: JobArgs,
    }

    fn job(args: &[&str]) -> JobArgs {
        Cmd::parse_from(["run"].iter().chain(args).chain(&["app.wasm"])).job
    }

    #[test]
    fn out_must_be_free() {
        for (dirs, free) in [
            (&[][..], true),
            (&["--dir", "data::/data"][..], true),
            (&["--dir", "o::/outer"][..], true),
            (&["--dir", "o::/out"][..], false),
            (&["--dir", "o::/out/"][..], false),
            (&["--dir", "o::/out/sub"][..], false),
        ] {
            let got = mapping(&job(dirs));
            assert_eq!(got.is_ok(), free, "{dirs:?}");
            if let Err(e) = got {
                assert!(e.to_string().contains("`--output-dir` gives the job `/out`"), "{e}");
            }
        }
    }

    #[test]
    fn write_back_keeps_what_was_there_and_skips_empty_output() {
        let report = |archive: Vec<u8>| JobReport {
            dirs: vec![MappedDir { guest_path: GUEST_PATH.into(), archive }],
            ..JobReport::before_start(grid_core::Outcome::Exited(1), "n", &grid_core::Limits::default())
        };
        let host = tempfile::tempdir().unwrap();
        let dest = host.path().join("results");
        write_back(&report(archive::empty()), &dest).unwrap();
        assert!(!dest.exists(), "nothing to write, nothing made");

        let guest = tempfile::tempdir().unwrap();
        std::fs::write(guest.path().join("result.json"), "{}\n").unwrap();
        let packed = archive::pack(guest.path(), archive::Escape::Skip).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("earlier.txt"), "kept").unwrap();
        write_back(&report(packed), &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("result.json")).unwrap(), "{}\n");
        assert_eq!(std::fs::read_to_string(dest.join("earlier.txt")).unwrap(), "kept");

        let no_dirs = JobReport { dirs: vec![], ..report(vec![]) };
        write_back(&no_dirs, &host.path().join("never")).unwrap();
        assert!(!host.path().join("never").exists());
    }
}
