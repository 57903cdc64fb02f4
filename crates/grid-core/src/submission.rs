//! Who submits a job and how it asks to be treated: the part of a
//! submission that is not the job itself.

/// The priorities a submission may ask for: each distinct priority is a
/// band the scheduler visits, so their number is bounded.
pub const PRIORITIES: std::ops::RangeInclusive<i32> = -100..=100;

/// A submission's idempotency key, tenant and priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submission {
    /// A retried submission with the same key yields the same job.
    pub key: Option<String>,
    /// Whose job it is, for fair sharing.
    pub tenant: String,
    /// Higher runs first; within [`PRIORITIES`].
    pub priority: i32,
}

impl Submission {
    /// What identifies the request this submission makes, for its
    /// idempotency key: the lowercase hex sha256 of a canonical encoding of
    /// `spec` (module, args, env, stdin, directories, limits), the tenant
    /// and the priority, but not the key itself. A key reused with a
    /// different fingerprint is a different request.
    pub fn fingerprint(&self, spec: &crate::JobSpec) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Each variable-length field goes in with its length first, so that
        // no two different requests encode alike.
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(spec.module.as_str().as_bytes());
        field(&(spec.args.len() as u64).to_le_bytes());
        for arg in &spec.args {
            field(arg.as_bytes());
        }
        field(&(spec.env.len() as u64).to_le_bytes());
        for (k, v) in &spec.env {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(&spec.stdin);
        field(&(spec.dirs.len() as u64).to_le_bytes());
        for dir in &spec.dirs {
            field(dir.guest_path.as_bytes());
            field(&dir.archive);
        }
        let l = &spec.limits;
        for n in [l.fuel, l.memory, l.timeout.as_nanos().min(u64::MAX as u128) as u64, l.output, l.disk] {
            field(&n.to_le_bytes());
        }
        field(&[u8::from(spec.deterministic)]);
        field(&spec.replicas.to_le_bytes());
        field(self.tenant.as_bytes());
        field(&self.priority.to_le_bytes());
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{JobSpec, Limits, MappedDir, ModuleHash};

    fn spec() -> JobSpec {
        JobSpec {
            deterministic: false,
            replicas: 0,
            module: ModuleHash::of(b"m"),
            args: vec!["app".into(), "x".into()],
            env: vec![("K".into(), "V".into())],
            stdin: b"in".to_vec(),
            dirs: vec![MappedDir { guest_path: "/d".into(), archive: b"tar".to_vec() }],
            limits: Limits::default(),
        }
    }

    #[test]
    fn a_fingerprint_changes_with_everything_asked_but_the_key() {
        let sub = Submission { key: Some("k1".into()), tenant: "t".into(), priority: 1 };
        let base = sub.fingerprint(&spec());
        assert_eq!(base.len(), 64);
        let other_key = Submission { key: Some("k2".into()), ..sub.clone() };
        assert_eq!(other_key.fingerprint(&spec()), base, "the key is part of the fingerprint");
        let changed = [
            sub.fingerprint(&JobSpec { module: ModuleHash::of(b"n"), ..spec() }),
            sub.fingerprint(&JobSpec { args: vec!["app".into(), "y".into()], ..spec() }),
            // The same bytes split differently are another request.
            sub.fingerprint(&JobSpec { args: vec!["appx".into()], ..spec() }),
            sub.fingerprint(&JobSpec { env: vec![], ..spec() }),
            sub.fingerprint(&JobSpec { stdin: b"other".to_vec(), ..spec() }),
            sub.fingerprint(&JobSpec { dirs: vec![], ..spec() }),
            sub.fingerprint(&JobSpec { limits: Limits { fuel: 1, ..Limits::default() }, ..spec() }),
            Submission { tenant: "u".into(), ..sub.clone() }.fingerprint(&spec()),
            Submission { priority: 2, ..sub.clone() }.fingerprint(&spec()),
        ];
        for (i, f) in changed.iter().enumerate() {
            assert_ne!(f, &base, "change {i} kept the fingerprint");
        }
    }
}
