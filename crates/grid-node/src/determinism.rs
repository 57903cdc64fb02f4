//! What a deterministic job sees in place of the host's clocks and random
//! source: a virtual clock that advances with the fuel it burns, and random
//! bytes from ChaCha seeded by its spec (`JobSpec::seed`). The same job then
//! sees the same times and the same bytes on every node.

use chacha20::ChaCha20Rng;
use chacha20::rand_core::{Rng as _, SeedableRng as _};
use grid_core::JobSpec;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};

/// Where a deterministic job's wall clock starts: 2000-01-01T00:00:00Z.
pub const WALL_CLOCK_START: Duration = Duration::from_secs(946_684_800);

/// The ChaCha streams of one seed: `random_get` and `wasi:random/random`,
/// `wasi:random/insecure`, and the insecure seed.
const SECURE_STREAM: u64 = 0;
const INSECURE_STREAM: u64 = 1;
const INSECURE_SEED_STREAM: u64 = 2;

/// A deterministic job's virtual time: nanoseconds since its start, one per
/// unit of fuel burned. The linker brings it up to date from the store's
/// fuel just before each call that reads a clock.
#[derive(Debug, Clone)]
pub struct VirtualTime {
    elapsed: Arc<AtomicU64>,
    fuel_limit: u64,
}

impl VirtualTime {
    /// Sets the time from the fuel the job has left.
    pub fn sync(&self, fuel_left: u64) {
        self.elapsed.store(self.fuel_limit.saturating_sub(fuel_left), Ordering::Relaxed);
    }

    fn elapsed(&self) -> u64 {
        self.elapsed.load(Ordering::Relaxed)
    }
}

impl HostWallClock for VirtualTime {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        WALL_CLOCK_START + Duration::from_nanos(self.elapsed())
    }
}

impl HostMonotonicClock for VirtualTime {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.elapsed()
    }
}

/// Gives the job `builder` makes the virtual clock and the seeded random
/// source of `spec`, and returns its clock for the linker to keep up to date.
pub fn configure(builder: &mut WasiCtxBuilder, spec: &JobSpec) -> VirtualTime {
    let seed = spec.seed();
    let stream = |n| {
        let mut rng = ChaCha20Rng::from_seed(seed);
        rng.set_stream(n);
        rng
    };
    let mut insecure_seed = [0u8; 16];
    stream(INSECURE_SEED_STREAM).fill_bytes(&mut insecure_seed);
    let time = VirtualTime { elapsed: Arc::new(AtomicU64::new(0)), fuel_limit: spec.limits.fuel };
    builder
        .wall_clock(time.clone())
        .monotonic_clock(time.clone())
        .secure_random(stream(SECURE_STREAM))
        .insecure_random(stream(INSECURE_STREAM))
        .insecure_random_seed(u128::from_le_bytes(insecure_seed));
    time
}
