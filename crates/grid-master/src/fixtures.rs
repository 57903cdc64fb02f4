//! What the master's unit tests share: a small job, a node that takes
//! anything, and the output in a list of events.

use crate::model::{JobEvent, NodeRegistration};
use crate::state::LiveState;
use grid_core::{Capacity, Ceilings, FuelQuota, JobSpec, Limits, ModuleHash};
use std::time::Duration;

/// A job of module `m` with `args`, no inputs and the default limits.
pub fn spec(args: &[&str]) -> JobSpec {
    JobSpec {
        deterministic: false,
        replicas: 0,
        module: ModuleHash::of(b"m"),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        stdin: vec![],
        dirs: vec![],
        limits: Limits::default(),
    }
}

/// A one-slot node named `name` with room and fuel for any test job.
pub fn node(name: &str) -> NodeRegistration {
    let big = 1 << 40;
    NodeRegistration {
        name: name.into(),
        address: String::new(),
        capacity: Capacity {
            slots: 1,
            memory: 1 << 30,
            disk: 1 << 30,
            fuel_quota: FuelQuota { rate_per_hour: big, burst: big },
            per_job: Ceilings { fuel: big, memory: 1 << 30, timeout: Duration::from_secs(3600), disk: 1 << 30 },
        },
        fuel_available: big,
        cached: Vec::new(),
        identity: format!("id-{name}"),
        owner: None,
        compile_allowance: crate::compiling::DEFAULT_ALLOWANCE,
    }
}

/// Every event of job `id` from the first, to its end.
pub async fn events(live: &LiveState, id: &str) -> Vec<JobEvent> {
    let mut watch = live.watch(id).unwrap();
    let mut all = Vec::new();
    while let Some(batch) = watch.next().await.unwrap() {
        all.extend(batch);
    }
    all
}

/// The output bytes among `events`, in order.
pub fn output(events: &[JobEvent]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|e| match e {
            JobEvent::Output(_, d) => d.clone(),
            _ => Vec::new(),
        })
        .collect()
}
