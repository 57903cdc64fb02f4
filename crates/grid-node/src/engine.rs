//! The node's one wasmtime `Engine`, its pooling allocator sized from what
//! the node gives, and the epoch ticker that drives wall-clock deadlines.

use crate::error::one_line;
use crate::limits::{CORE_INSTANCES_PER_JOB, MAX_TABLE_ELEMENTS, MEMORIES_PER_JOB, TABLES_PER_JOB};
use grid_core::Capacity;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of wall-clock deadlines
/// and of time-slicing between jobs.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the engine every job runs in. It takes every WebAssembly proposal
/// `wasmtime run` of the same version takes by default (WebAssembly 3.0:
/// GC, exceptions, tail calls, typed function references, multi-memory,
/// memory64, extended constants, relaxed SIMD; and the component model)
/// but threads, which the grid refuses (see [`REFUSED`]). It is configured
/// for determinism (NaNs canonicalised, relaxed SIMD deterministic) so that
/// a deterministic job gives the same result on every node and every module
/// compiles once whichever way it runs; with a pooling instance allocator
/// sized from what the node gives: per slot one component instance, the
/// core instances, memories, GC heap and tables one job may hold, and an
/// async stack; each memory (a GC heap is one) as large as the per-job
/// ceiling. Falls back to on-demand allocation if the pool cannot be
/// reserved.
pub fn new_engine(capacity: &Capacity) -> anyhow::Result<Engine> {
    let mut config = code_config();
    let slots = capacity.slots;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_JOB)
        .max_core_instances_per_component(CORE_INSTANCES_PER_JOB)
        .max_component_instance_size(COMPONENT_INSTANCE_SIZE)
        // Each job's GC heap lives in a memory of the pool of its own.
        .total_memories(slots * (MEMORIES_PER_JOB + 1))
        .total_gc_heaps(slots)
        .max_memories_per_module(MEMORIES_PER_MODULE)
        .max_memories_per_component(MEMORIES_PER_JOB)
        .total_tables(slots * TABLES_PER_JOB)
        .max_tables_per_module(TABLES_PER_MODULE)
        .max_tables_per_component(TABLES_PER_JOB)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(usize::try_from(capacity.per_job.memory).unwrap_or(usize::MAX))
        .total_stacks(slots)
        // A finished job's pages are zeroed in place, not handed back to
        // the kernel and faulted in again by the next job.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(error = %one_line(&e), "no pooling allocator; allocating on demand");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).map_err(|e| anyhow::anyhow!("failed to build the wasmtime engine: {e}"))
        }
    }
}

/// The proposals `wasmtime run` takes that the grid refuses: threads and
/// shared memory. A job is one sequential guest on one slot's fuel, and
/// shared memory written by threads racing each other gives a different
/// result from run to run, which replicas that must agree cannot have.
pub const REFUSED: wasmtime::WasmFeatures =
    wasmtime::WasmFeatures::THREADS.union(wasmtime::WasmFeatures::SHARED_EVERYTHING_THREADS);

/// What the code an engine compiles depends on: every setting but how
/// instances are allocated. An engine built from it alone (see
/// [`compile_engine`]) compiles artifacts the node's engine loads.
fn code_config() -> Config {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.max_wasm_stack(1 << 20);
    // Determinism: every NaN a float operation makes has the one canonical
    // bit pattern, and relaxed SIMD gives the same answer on every CPU.
    config.cranelift_nan_canonicalization(true);
    config.relaxed_simd_deterministic(true);
    config.wasm_features(REFUSED, false);
    // The collector `wasmtime run` builds with by default is not finished
    // (its own documentation says so); deferred reference counting is.
    config.collector(wasmtime::Collector::DeferredReferenceCounting);
    config
}

/// An engine that only compiles: the node's settings without its pool, so
/// it reserves no memory for instances.
pub fn compile_engine() -> anyhow::Result<Engine> {
    Engine::new(&code_config()).map_err(|e| anyhow::anyhow!("failed to build the wasmtime engine: {e}"))
}

/// Bytes of each pooled memory, table and stack kept resident between jobs.
const KEEP_RESIDENT: usize = 1 << 20;

/// Linear memories one core module may define (multi-memory).
const MEMORIES_PER_MODULE: u32 = 2;
/// Tables one core module may define.
const TABLES_PER_MODULE: u32 = 4;
/// The most runtime metadata one component instance and all its core
/// instances may take: about ten times what componentize-py's Python needs
/// (420 KiB; a Rust `wasm32-wasip2` program needs 8 KiB).
const COMPONENT_INSTANCE_SIZE: usize = 4 << 20;

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), stop.clone());
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
