//! The seed of a deterministic job: what its random bytes come from, the
//! same on every node that runs the same spec.

use crate::JobSpec;
use crate::wire;
use sha2::{Digest, Sha256};

/// What every job seed's hash begins with, so a seed never collides with
/// another use of sha256 over a spec.
const SEED_DOMAIN: &[u8] = b"wasm-grid/seed/v1";

impl JobSpec {
    /// The seed of this job's random bytes when it runs deterministically:
    /// sha256 of `wasm-grid/seed/v1` and the spec's wire encoding with
    /// `replicas` set to 0, so every replica of one job, and every run of the
    /// same spec, draws the same bytes.
    pub fn seed(&self) -> [u8; 32] {
        let spec = JobSpec { replicas: 0, ..self.clone() };
        let mut hasher = Sha256::new();
        hasher.update(SEED_DOMAIN);
        hasher.update(wire::encode_spec(&spec));
        hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use crate::{JobSpec, Limits, ModuleHash};

    fn spec() -> JobSpec {
        JobSpec {
            module: ModuleHash::of(b"m"),
            args: vec!["app".into(), "x".into()],
            env: vec![("K".into(), "V".into())],
            stdin: b"in".to_vec(),
            dirs: vec![],
            limits: Limits::default(),
            deterministic: true,
            replicas: 0,
        }
    }

    #[test]
    fn same_spec_same_seed() {
        assert_eq!(spec().seed(), spec().seed());
    }

    #[test]
    fn replicas_do_not_change_the_seed() {
        assert_eq!(spec().seed(), JobSpec { replicas: 3, ..spec() }.seed());
    }

    #[test]
    fn anything_else_does() {
        let seed = spec().seed();
        for other in [
            JobSpec { args: vec!["app".into(), "y".into()], ..spec() },
            JobSpec { env: vec![], ..spec() },
            JobSpec { stdin: b"other".to_vec(), ..spec() },
            JobSpec { module: ModuleHash::of(b"n"), ..spec() },
            JobSpec { limits: Limits { fuel: 1, ..Limits::default() }, ..spec() },
        ] {
            assert_ne!(other.seed(), seed, "{other:?}");
        }
    }
}
