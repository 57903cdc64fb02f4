//! The node's one wasmtime `Engine` and `Linker`, the epoch ticker that
//! drives wall-clock deadlines, and the compiled-module cache: precompiled
//! artifacts on disk under the module hash, hot `InstancePre`s in memory.

use crate::error::{PrepareError, one_line};
use crate::executor::JobCtx;
use crate::limits::MAX_TABLE_ELEMENTS;
use crate::lru::LruIndex;
use dashmap::DashMap;
use grid_core::Capacity;
use grid_core::ModuleHash;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig};

/// How often the epoch advances: the granularity of wall-clock deadlines
/// and of time-slicing between jobs.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Fuel a job burns between yields to the async executor, so one job cannot
/// hold a worker thread.
pub const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// Builds the engine every job runs in, with a pooling instance allocator
/// sized from what the node gives: one instance, memory, table set and
/// async stack per slot, each memory as large as the per-job ceiling.
/// Falls back to on-demand allocation if the pool cannot be reserved.
pub fn new_engine(capacity: &Capacity) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(1 << 20);
    let slots = capacity.slots;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(slots)
        .total_memories(slots * MEMORIES_PER_JOB)
        .max_memories_per_module(MEMORIES_PER_JOB)
        .total_tables(slots * TABLES_PER_JOB)
        .max_tables_per_module(TABLES_PER_JOB)
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

/// Bytes of each pooled memory, table and stack kept resident between jobs.
const KEEP_RESIDENT: usize = 1 << 20;

/// Linear memories one job's module may define (multi-memory).
const MEMORIES_PER_JOB: u32 = 2;
/// Tables one job's module may define.
const TABLES_PER_JOB: u32 = 4;

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

/// Compiled modules, on disk and hot in memory.
pub struct ModuleCache {
    engine: Engine,
    linker: Linker<JobCtx>,
    dir: PathBuf,
    hot: DashMap<ModuleHash, InstancePre<JobCtx>>,
    index: std::sync::Mutex<LruIndex>,
    /// One compile at a time per module.
    locks: DashMap<ModuleHash, Arc<tokio::sync::Mutex<()>>>,
}

impl ModuleCache {
    /// A cache in `dir`, of at most `size` bytes, for modules run by
    /// `engine` with WASI preview 1.
    pub fn open(engine: &Engine, dir: &Path, size: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("failed to create cache dir `{}`: {e}", dir.display()))?;
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx: &mut JobCtx| &mut ctx.wasi)
            .map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
        crate::files::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
        let cache = Self {
            engine: engine.clone(),
            linker,
            dir: dir.to_owned(),
            hot: DashMap::new(),
            index: std::sync::Mutex::new(LruIndex::new(size)),
            locks: DashMap::new(),
        };
        // What is on disk already, oldest first, so that it ages properly.
        let mut known: Vec<_> = cache
            .cached()
            .into_iter()
            .map(|h| {
                let meta = std::fs::metadata(cache.artifact(&h)).ok();
                let used = meta.as_ref().and_then(|m| m.modified().ok());
                let bytes = meta.map_or(0, |m| m.len()) + std::fs::metadata(cache.raw(&h)).map_or(0, |m| m.len());
                (used, h, bytes)
            })
            .collect();
        known.sort();
        for (_, hash, bytes) in known {
            let evicted = cache.lock_index().insert(hash, bytes);
            cache.evict(evicted);
        }
        let _ = cache.take_changes();
        Ok(cache)
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, LruIndex> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn evict(&self, hashes: Vec<ModuleHash>) {
        for hash in hashes {
            tracing::info!(module = %hash.short(), "evicted from the module cache");
            self.hot.remove(&hash);
            let _ = std::fs::remove_file(self.artifact(&hash));
            let _ = std::fs::remove_file(self.raw(&hash));
        }
    }

    /// Modules cached and evicted since the last call.
    pub fn take_changes(&self) -> (Vec<ModuleHash>, Vec<ModuleHash>) {
        self.lock_index().take_changes()
    }

    fn artifact(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!("{hash}.cwasm"))
    }

    fn raw(&self, hash: &ModuleHash) -> PathBuf {
        self.dir.join(format!("{hash}.wasm"))
    }

    /// The modules whose compiled artifacts are on disk.
    pub fn cached(&self) -> Vec<ModuleHash> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        entries
            .filter_map(|e| {
                e.ok()?.file_name().to_str()?.strip_suffix(".cwasm").and_then(|h| ModuleHash::parse(h).ok())
            })
            .collect()
    }

    /// The ready-to-instantiate module for `hash`: from memory, else from the
    /// precompiled artifact on disk, else compiled from bytes (from disk, or
    /// from `fetch`), verified against the hash first.
    pub async fn get<F, Fut>(&self, hash: &ModuleHash, fetch: F) -> Result<InstancePre<JobCtx>, PrepareError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
    {
        if let Some(pre) = self.hot.get(hash) {
            self.lock_index().touch(hash);
            return Ok(pre.clone());
        }
        let lock = self.locks.entry(hash.clone()).or_default().clone();
        let _guard = lock.lock().await;
        if let Some(pre) = self.hot.get(hash) {
            return Ok(pre.clone());
        }
        let module = match self.load_artifact(hash).await? {
            Some(module) => module,
            None => {
                let bytes = match tokio::fs::read(self.raw(hash)).await {
                    Ok(bytes) if hash.verify(&bytes).is_ok() => bytes,
                    _ => {
                        let bytes = fetch().await.map_err(PrepareError::Fetch)?;
                        hash.verify(&bytes).map_err(|e| PrepareError::Fetch(e.to_string()))?;
                        bytes
                    }
                };
                self.compile(hash, bytes).await?
            }
        };
        if module.get_export_index("_start").is_none() {
            return Err(PrepareError::InvalidModule("the module exports no `_start` function".into()));
        }
        let pre = self.linker.instantiate_pre(&module).map_err(|e| PrepareError::Link(link_error(&e)))?;
        self.hot.insert(hash.clone(), pre.clone());
        let bytes =
            [self.artifact(hash), self.raw(hash)].iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
        let evicted = self.lock_index().insert(hash.clone(), bytes);
        self.evict(evicted);
        Ok(pre)
    }

    /// The module from its precompiled artifact; `None` when there is none
    /// or it is stale.
    async fn load_artifact(&self, hash: &ModuleHash) -> Result<Option<Module>, PrepareError> {
        let path = self.artifact(hash);
        if !path.is_file() {
            return Ok(None);
        }
        let engine = self.engine.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            // SAFETY: the artifact was written by `compile` below with this
            // node's engine, and wasmtime checks its header and engine
            // compatibility before using it.
            unsafe { Module::deserialize_file(&engine, &path) }
        })
        .await
        .map_err(|e| PrepareError::Node(format!("load task failed: {e}")))?;
        match loaded {
            Ok(module) => Ok(Some(module)),
            Err(e) if too_large(&e) => Err(PrepareError::MemoryLimit),
            Err(e) => {
                tracing::warn!(module = %hash.short(), error = %one_line(&e), "stale compiled artifact; recompiling");
                Ok(None)
            }
        }
    }

    async fn compile(&self, hash: &ModuleHash, bytes: Vec<u8>) -> Result<Module, PrepareError> {
        let node_err = |what: &str, e: &dyn std::fmt::Display| PrepareError::Node(format!("{what}: {}", one_line(e)));
        if !bytes.starts_with(b"\0asm") {
            return Err(PrepareError::InvalidModule("not a WebAssembly binary (bad magic number)".into()));
        }
        let started = std::time::Instant::now();
        let engine = self.engine.clone();
        let (raw, artifact) = (self.raw(hash), self.artifact(hash));
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<Module, PrepareError> {
            let compiled = engine.precompile_module(&bytes).map_err(|e| PrepareError::InvalidModule(one_line(&e)))?;
            write_atomically(&dir, &raw, &bytes).map_err(|e| node_err("failed to cache module", &e))?;
            write_atomically(&dir, &artifact, &compiled)
                .map_err(|e| node_err("failed to cache compiled module", &e))?;
            // SAFETY: written just above by this engine.
            unsafe { Module::deserialize_file(&engine, &artifact) }.map_err(|e| match too_large(&e) {
                true => PrepareError::MemoryLimit,
                false => node_err("failed to load compiled module", &e),
            })
        })
        .await
        .map_err(|e| node_err("compile task failed", &e))?
        .inspect(|_| tracing::info!(module = %hash.short(), elapsed = ?started.elapsed(), "module compiled"))
    }
}

fn write_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Whether a module was refused because it declares more memory or table
/// than the pooling allocator's slots hold, which are sized from the
/// node's per-job memory ceiling.
fn too_large(e: &wasmtime::Error) -> bool {
    one_line(e).contains("does not fit in pooling allocator requirements")
}

/// The import named by wasmtime's "unknown import" error, or the message.
fn link_error(e: &wasmtime::Error) -> String {
    let msg = one_line(e);
    match msg.split('`').nth(1) {
        Some(import) if msg.contains("unknown import") => import.to_owned(),
        _ => msg,
    }
}
