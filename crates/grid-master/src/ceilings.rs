//! What the master accepts from any client, whatever the client asks:
//! ceilings on a job's output limit and on the bytes it brings (stdin, args
//! and env, mapped directories), and on the names that travel with it. The
//! operator sets them with flags; a submission over one is refused with the
//! reason, before anything is recorded.

use crate::error::{MasterError, Result};
use grid_core::units::format_size;
use grid_core::{JobSpec, Submission};

/// The longest tenant name accepted, in bytes.
pub const MAX_TENANT: usize = 128;
/// The longest idempotency key accepted, in bytes.
pub const MAX_KEY: usize = 256;

/// The master's ceilings on one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitCeilings {
    /// The largest output limit a job may ask for.
    pub output: u64,
    /// The most stdin a job may bring.
    pub stdin: u64,
    /// The most bytes of args and env together.
    pub args: u64,
    /// The most bytes of mapped directories' archives together.
    pub dirs: u64,
}

impl Default for SubmitCeilings {
    fn default() -> Self {
        Self { output: 256 << 20, stdin: 64 << 20, args: 1 << 20, dirs: 256 << 20 }
    }
}

fn over(what: &str, size: u64, limit: u64) -> MasterError {
    MasterError::InvalidArgument(format!(
        "{what} {}, over the master's limit of {}",
        format_size(size),
        format_size(limit)
    ))
}

impl SubmitCeilings {
    /// The largest message a client or node needs to send: a submission at
    /// every ceiling, or a node's result with its directories.
    pub fn max_message(&self) -> usize {
        let most = self.stdin.saturating_add(self.dirs).saturating_add(self.args).saturating_add(1 << 20);
        usize::try_from(most).unwrap_or(usize::MAX)
    }

    /// Refuses a submission over any ceiling, naming the first it is over.
    pub fn check(&self, spec: &JobSpec, submission: &Submission) -> Result<()> {
        let limits = &spec.limits;
        if limits.output > self.output {
            let (asked, most) = (format_size(limits.output), format_size(self.output));
            return Err(MasterError::InvalidArgument(format!(
                "output limit of {asked} is over the master's limit of {most}: ask for less with `--output-limit`"
            )));
        }
        let stdin = spec.stdin.len() as u64;
        if stdin > self.stdin {
            return Err(over("stdin is", stdin, self.stdin));
        }
        let args = args_bytes(spec);
        if args > self.args {
            return Err(over("args and env are", args, self.args));
        }
        let dirs: u64 = spec.dirs.iter().map(|d| d.archive.len() as u64).sum();
        if dirs > self.dirs {
            return Err(over("mapped directories are", dirs, self.dirs));
        }
        if !grid_core::submission::PRIORITIES.contains(&submission.priority) {
            let (p, r) = (submission.priority, grid_core::submission::PRIORITIES);
            return Err(MasterError::InvalidArgument(format!("priority {p} is outside {}..={}", r.start(), r.end())));
        }
        if submission.tenant.len() > MAX_TENANT {
            let n = submission.tenant.len();
            return Err(MasterError::InvalidArgument(format!("tenant is {n} bytes, over the limit of {MAX_TENANT}")));
        }
        if let Some(key) = &submission.key
            && key.len() > MAX_KEY
        {
            let n = key.len();
            return Err(MasterError::InvalidArgument(format!(
                "idempotency key is {n} bytes, over the limit of {MAX_KEY}"
            )));
        }
        Ok(())
    }
}

/// Bytes of a job's args and env together.
pub fn args_bytes(spec: &JobSpec) -> u64 {
    let args: usize = spec.args.iter().map(String::len).sum();
    let env: usize = spec.env.iter().map(|(k, v)| k.len() + v.len() + 1).sum();
    (args + env) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_core::{Limits, MappedDir};

    fn spec() -> JobSpec {
        crate::fixtures::spec(&["app"])
    }

    fn refusal(spec: &JobSpec, submission: &Submission) -> String {
        SubmitCeilings::default().check(spec, submission).unwrap_err().to_string()
    }

    #[test]
    fn a_submission_over_a_ceiling_is_refused_with_the_ceiling_named() {
        let none = Submission::default();
        assert!(SubmitCeilings::default().check(&spec(), &none).is_ok());
        let big_output = JobSpec { limits: Limits { output: 1 << 30, ..Limits::default() }, ..spec() };
        assert!(refusal(&big_output, &none).starts_with("output limit of 1GiB is over the master's limit of 256MiB"));
        let big_stdin = JobSpec { stdin: vec![0; 100 << 20], ..spec() };
        assert_eq!(refusal(&big_stdin, &none), "stdin is 100MiB, over the master's limit of 64MiB");
        let big_args = JobSpec { args: vec!["x".repeat(2 << 20)], ..spec() };
        assert_eq!(refusal(&big_args, &none), "args and env are 2MiB, over the master's limit of 1MiB");
        let big_env = JobSpec { env: vec![("K".into(), "v".repeat(1 << 20))], ..spec() };
        assert!(refusal(&big_env, &none).starts_with("args and env are"));
        let dir = MappedDir { guest_path: "/d".into(), archive: vec![0; 300 << 20] };
        let big_dirs = JobSpec { dirs: vec![dir], ..spec() };
        assert!(refusal(&big_dirs, &none).starts_with("mapped directories are 300MiB, over the master's limit"));
        let tenant = Submission { tenant: "t".repeat(70_000), ..Submission::default() };
        assert_eq!(refusal(&spec(), &tenant), "tenant is 70000 bytes, over the limit of 128");
        let key = Submission { key: Some("k".repeat(300)), ..Submission::default() };
        assert_eq!(refusal(&spec(), &key), "idempotency key is 300 bytes, over the limit of 256");
        for (priority, refused) in [(5000, true), (-101, true), (101, true), (100, false), (-100, false)] {
            let sub = Submission { priority, ..Submission::default() };
            let checked = SubmitCeilings::default().check(&spec(), &sub);
            assert_eq!(checked.is_err(), refused, "{priority}");
        }
        let far = Submission { priority: 5000, ..Submission::default() };
        assert_eq!(refusal(&spec(), &far), "priority 5000 is outside -100..=100");
    }
}
