//! The one place where domain types meet the prost types of `grid-proto`.

use crate::{
    Attempt, AttemptEnd, Capacity, Ceilings, FuelQuota, JobReport, JobSpec, Limits, MappedDir, ModuleHash, Outcome,
    OutputStream, Submission, TenantQuota, Verdict,
};
use grid_proto as pb;
use std::time::Duration;

/// The largest gRPC message any party sends or accepts: job specs carry
/// stdin and mapped directories inline.
pub const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// A master address as a URL: `HOST:PORT` gets `https://` in front;
/// `https://` and `http://` (plaintext, for a master started with
/// `--insecure`) are kept; any other scheme is refused.
pub fn master_url(address: &str) -> Result<String, String> {
    match address.split_once("://") {
        None => Ok(format!("https://{address}")),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => {
            Ok(address.to_owned())
        }
        Some((scheme, _)) => Err(format!(
            "`{address}` is not a master URL: `{scheme}://` is not spoken; write it like `https://127.0.0.1:7070`"
        )),
    }
}

/// Why a message from the wire does not make a valid domain value.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("undecodable record: {0}")]
    Decode(String),
    #[error(transparent)]
    Hash(#[from] crate::HashError),
}

impl From<Limits> for pb::Limits {
    fn from(l: Limits) -> Self {
        pb::Limits {
            fuel: l.fuel,
            memory_bytes: l.memory,
            timeout_ms: l.timeout.as_millis().min(u64::MAX as u128) as u64,
            output_bytes: l.output,
            disk_bytes: l.disk,
        }
    }
}

impl From<pb::Limits> for Limits {
    fn from(l: pb::Limits) -> Self {
        Limits {
            fuel: l.fuel,
            memory: l.memory_bytes,
            timeout: Duration::from_millis(l.timeout_ms),
            output: l.output_bytes,
            disk: l.disk_bytes,
        }
    }
}

/// A job spec as bytes, for storage.
pub fn encode_spec(spec: &JobSpec) -> Vec<u8> {
    prost::Message::encode_to_vec(&pb::JobSpec::from(spec.clone()))
}

/// A job spec from [`encode_spec`]'s bytes.
pub fn decode_spec(bytes: &[u8]) -> Result<JobSpec, WireError> {
    let spec: pb::JobSpec = prost::Message::decode(bytes).map_err(|e| WireError::Decode(e.to_string()))?;
    JobSpec::try_from(spec)
}

/// A job report as bytes, for storage.
pub fn encode_report(report: &JobReport) -> Vec<u8> {
    prost::Message::encode_to_vec(&pb::JobResult::from(report.clone()))
}

/// A job report from [`encode_report`]'s bytes.
pub fn decode_report(bytes: &[u8]) -> Result<JobReport, WireError> {
    let r: pb::JobResult = prost::Message::decode(bytes).map_err(|e| WireError::Decode(e.to_string()))?;
    Ok(r.into())
}

/// A node's capacity, with its fuel bucket's level now.
pub fn capacity_to_pb(c: &Capacity, fuel_available: u64) -> pb::NodeCapacity {
    pb::NodeCapacity {
        slots: c.slots,
        memory_bytes: c.memory,
        fuel_per_hour: c.fuel_quota.rate_per_hour,
        fuel_burst: c.fuel_quota.burst,
        disk_bytes: c.disk,
        max_job_fuel: c.per_job.fuel,
        max_job_memory: c.per_job.memory,
        max_job_timeout_ms: c.per_job.timeout.as_millis().min(u64::MAX as u128) as u64,
        max_job_disk: c.per_job.disk,
        fuel_available,
    }
}

/// A node's capacity and its fuel bucket's level, from the wire.
pub fn capacity_from_pb(c: &pb::NodeCapacity) -> (Capacity, u64) {
    let capacity = Capacity {
        slots: c.slots,
        memory: c.memory_bytes,
        disk: c.disk_bytes,
        fuel_quota: FuelQuota { rate_per_hour: c.fuel_per_hour, burst: c.fuel_burst },
        per_job: Ceilings {
            fuel: c.max_job_fuel,
            memory: c.max_job_memory,
            timeout: Duration::from_millis(c.max_job_timeout_ms),
            disk: c.max_job_disk,
        },
    };
    (capacity, c.fuel_available)
}

impl From<MappedDir> for pb::MappedDir {
    fn from(d: MappedDir) -> Self {
        pb::MappedDir { guest_path: d.guest_path, archive: d.archive }
    }
}

impl From<pb::MappedDir> for MappedDir {
    fn from(d: pb::MappedDir) -> Self {
        MappedDir { guest_path: d.guest_path, archive: d.archive }
    }
}

impl From<JobSpec> for pb::JobSpec {
    fn from(s: JobSpec) -> Self {
        pb::JobSpec {
            module_hash: s.module.as_str().to_owned(),
            args: s.args,
            env: s.env.into_iter().map(|(key, value)| pb::EnvVar { key, value }).collect(),
            stdin: s.stdin,
            dirs: s.dirs.into_iter().map(Into::into).collect(),
            limits: Some(s.limits.into()),
            deterministic: s.deterministic,
            replicas: s.replicas,
        }
    }
}

impl TryFrom<pb::JobSpec> for JobSpec {
    type Error = WireError;
    fn try_from(s: pb::JobSpec) -> Result<Self, WireError> {
        Ok(JobSpec {
            module: ModuleHash::parse(&s.module_hash)?,
            args: s.args,
            env: s.env.into_iter().map(|e| (e.key, e.value)).collect(),
            stdin: s.stdin,
            dirs: s.dirs.into_iter().map(Into::into).collect(),
            limits: s.limits.ok_or(WireError::Missing("limits"))?.into(),
            deterministic: s.deterministic,
            replicas: s.replicas,
        })
    }
}

impl From<JobReport> for pb::JobResult {
    fn from(r: JobReport) -> Self {
        use pb::OutcomeKind as K;
        let (kind, exit_code, message) = match r.outcome {
            Outcome::Exited(code) => (K::Exited, code, String::new()),
            Outcome::OutOfFuel => (K::OutOfFuel, 0, String::new()),
            Outcome::MemoryLimit => (K::MemoryLimit, 0, String::new()),
            Outcome::Timeout => (K::Timeout, 0, String::new()),
            Outcome::OutputLimit => (K::OutputLimit, 0, String::new()),
            Outcome::DiskLimit => (K::DiskLimit, 0, String::new()),
            Outcome::StackOverflow => (K::StackOverflow, 0, String::new()),
            Outcome::Trap(m) => (K::Trap, 0, m),
            Outcome::InvalidModule(m) => (K::InvalidModule, 0, m),
            Outcome::LinkError(m) => (K::LinkError, 0, m),
            Outcome::Cancelled => (K::Cancelled, 0, String::new()),
            Outcome::NodeError(m) => (K::NodeError, 0, m),
            Outcome::NoQuorum(m) => (K::NoQuorum, 0, m),
        };
        pb::JobResult {
            kind: kind as i32,
            exit_code,
            message,
            fuel_used: r.fuel_used,
            fuel_limit: r.fuel_limit,
            wall_us: r.wall.as_micros().min(u64::MAX as u128) as u64,
            startup_us: r.startup.as_micros().min(u64::MAX as u128) as u64,
            peak_memory_bytes: r.peak_memory,
            node: r.node,
            dirs: r.dirs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<pb::JobResult> for JobReport {
    fn from(r: pb::JobResult) -> Self {
        use pb::OutcomeKind as K;
        let outcome = match K::try_from(r.kind).unwrap_or(K::Unspecified) {
            K::Exited => Outcome::Exited(r.exit_code),
            K::OutOfFuel => Outcome::OutOfFuel,
            K::MemoryLimit => Outcome::MemoryLimit,
            K::Timeout => Outcome::Timeout,
            K::OutputLimit => Outcome::OutputLimit,
            K::DiskLimit => Outcome::DiskLimit,
            K::StackOverflow => Outcome::StackOverflow,
            K::Trap => Outcome::Trap(r.message),
            K::InvalidModule => Outcome::InvalidModule(r.message),
            K::LinkError => Outcome::LinkError(r.message),
            K::Cancelled => Outcome::Cancelled,
            K::NodeError => Outcome::NodeError(r.message),
            K::NoQuorum => Outcome::NoQuorum(r.message),
            K::Unspecified => Outcome::NodeError(format!("unknown outcome kind {}", r.kind)),
        };
        JobReport {
            outcome,
            fuel_used: r.fuel_used,
            fuel_limit: r.fuel_limit,
            wall: Duration::from_micros(r.wall_us),
            startup: Duration::from_micros(r.startup_us),
            peak_memory: r.peak_memory_bytes,
            node: r.node,
            dirs: r.dirs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<OutputStream> for pb::OutputStream {
    fn from(s: OutputStream) -> Self {
        match s {
            OutputStream::Stdout => pb::OutputStream::Stdout,
            OutputStream::Stderr => pb::OutputStream::Stderr,
        }
    }
}

/// The stream a wire chunk names; anything but stderr is stdout.
pub fn output_stream(stream: i32) -> OutputStream {
    match pb::OutputStream::try_from(stream) {
        Ok(pb::OutputStream::Stderr) => OutputStream::Stderr,
        _ => OutputStream::Stdout,
    }
}

/// What `SubmitJob` and `RunJob` carry: the job and its submission.
pub fn submit_request(spec: JobSpec, submission: Submission) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        spec: Some(spec.into()),
        idempotency_key: submission.key.unwrap_or_default(),
        tenant: submission.tenant,
        priority: submission.priority,
    }
}

/// The job and its submission from a `SubmitJobRequest`; an empty key is no key.
pub fn from_submit_request(req: pb::SubmitJobRequest) -> Result<(JobSpec, Submission), WireError> {
    let spec = JobSpec::try_from(req.spec.ok_or(WireError::Missing("spec"))?)?;
    let key = Some(req.idempotency_key).filter(|k| !k.is_empty());
    Ok((spec, Submission { key, tenant: req.tenant, priority: req.priority }))
}

impl From<Attempt> for pb::Attempt {
    fn from(a: Attempt) -> Self {
        pb::Attempt {
            number: a.number,
            node: a.node,
            started_ms: a.started_ms,
            ended_ms: a.ended_ms.unwrap_or(0),
            end: a.end.map(|e| e.as_str().to_owned()).unwrap_or_default(),
            digest: a.digest.unwrap_or_default(),
            verdict: a.verdict.map(|v| v.as_str().to_owned()).unwrap_or_default(),
        }
    }
}

impl From<pb::Attempt> for Attempt {
    /// An end this side does not know (from a newer master) reads as none.
    fn from(a: pb::Attempt) -> Self {
        Attempt {
            number: a.number,
            node: a.node,
            started_ms: a.started_ms,
            ended_ms: (a.ended_ms > 0).then_some(a.ended_ms),
            end: a.end.parse::<AttemptEnd>().ok(),
            digest: Some(a.digest).filter(|d| !d.is_empty()),
            verdict: a.verdict.parse::<Verdict>().ok(),
        }
    }
}

impl From<TenantQuota> for pb::TenantQuota {
    fn from(q: TenantQuota) -> Self {
        pb::TenantQuota {
            max_running: q.max_running.unwrap_or(0),
            max_queued: q.max_queued.unwrap_or(0),
            fuel_per_hour: q.fuel.map_or(0, |f| f.rate_per_hour),
            fuel_burst: q.fuel.map_or(0, |f| f.burst),
            max_job_fuel: q.max_job_fuel.unwrap_or(0),
            max_job_memory: q.max_job_memory.unwrap_or(0),
            max_job_timeout_ms: q.max_job_timeout.map_or(0, |t| t.as_millis() as u64),
        }
    }
}

impl From<pb::TenantQuota> for TenantQuota {
    /// 0 is no limit; a fuel rate with no burst holds one hour's amount.
    fn from(q: pb::TenantQuota) -> Self {
        let some = |n: u64| (n > 0).then_some(n);
        TenantQuota {
            max_running: (q.max_running > 0).then_some(q.max_running),
            max_queued: (q.max_queued > 0).then_some(q.max_queued),
            fuel: some(q.fuel_per_hour).map(|rate| crate::FuelQuota {
                rate_per_hour: rate,
                burst: if q.fuel_burst > 0 { q.fuel_burst } else { rate },
            }),
            max_job_fuel: some(q.max_job_fuel),
            max_job_memory: some(q.max_job_memory),
            max_job_timeout: some(q.max_job_timeout_ms).map(std::time::Duration::from_millis),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_urls_are_https_unless_they_say_http() {
        assert_eq!(master_url("127.0.0.1:7070").as_deref(), Ok("https://127.0.0.1:7070"));
        assert_eq!(master_url("https://grid:7070").as_deref(), Ok("https://grid:7070"));
        assert_eq!(master_url("HTTPS://grid:7070").as_deref(), Ok("HTTPS://grid:7070"));
        assert_eq!(master_url("http://grid:7070").as_deref(), Ok("http://grid:7070"));
        let ftp = master_url("ftp://grid").unwrap_err();
        assert!(ftp.contains("`ftp://` is not spoken") && ftp.contains("`https://127.0.0.1:7070`"), "{ftp}");
    }

    #[test]
    fn spec_and_report_round_trip() {
        let spec = JobSpec {
            deterministic: false,
            replicas: 0,
            module: ModuleHash::of(b"m"),
            args: vec!["app".into(), "x".into()],
            env: vec![("K".into(), "V".into())],
            stdin: b"in".to_vec(),
            dirs: vec![MappedDir { guest_path: "/data".into(), archive: vec![1, 2] }],
            limits: Limits::default(),
        };
        let wire: pb::JobSpec = spec.clone().into();
        assert_eq!(JobSpec::try_from(wire).unwrap(), spec);

        for outcome in [
            Outcome::Exited(3),
            Outcome::OutOfFuel,
            Outcome::Trap("unreachable".into()),
            Outcome::LinkError("env::f".into()),
        ] {
            let report = JobReport {
                outcome,
                fuel_used: 5,
                fuel_limit: 9,
                wall: Duration::from_millis(7),
                startup: Duration::from_micros(40),
                peak_memory: 65536,
                node: "n".into(),
                dirs: vec![],
            };
            assert_eq!(JobReport::from(pb::JobResult::from(report.clone())), report);
        }
    }

    #[test]
    fn a_submission_round_trips_and_an_empty_key_is_none() {
        let spec = JobSpec {
            deterministic: false,
            replicas: 0,
            module: ModuleHash::of(b"m"),
            args: vec![],
            env: vec![],
            stdin: vec![],
            dirs: vec![],
            limits: Limits::default(),
        };
        for key in [Some("k".to_owned()), None] {
            let sub = Submission { key, tenant: "alice".into(), priority: -2 };
            assert_eq!(from_submit_request(submit_request(spec.clone(), sub.clone())).unwrap(), (spec.clone(), sub));
        }
        let missing = pb::SubmitJobRequest::default();
        assert!(from_submit_request(missing).unwrap_err().to_string().contains("`spec`"));
    }

    #[test]
    fn output_streams_round_trip() {
        for s in [OutputStream::Stdout, OutputStream::Stderr] {
            assert_eq!(output_stream(pb::OutputStream::from(s) as i32), s);
        }
    }

    #[test]
    fn bad_hash_is_refused() {
        let wire =
            pb::JobSpec { module_hash: "nope".into(), limits: Some(Limits::default().into()), ..Default::default() };
        assert!(JobSpec::try_from(wire).unwrap_err().to_string().contains("`nope`"));
    }
}
