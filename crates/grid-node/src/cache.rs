//! The compiled-code cache: precompiled artifacts on disk under the module
//! hash, beside the raw bytes, and hot pre-instantiated code in memory,
//! linked against the two linkers of `linker`.

use crate::compile::{self, CompileLimits};
use crate::ctx::JobCtx;
use crate::error::{PrepareError, one_line};
use crate::linker;
use crate::lru::LruIndex;
use dashmap::DashMap;
use grid_core::ModuleHash;
use grid_core::wasm::{self, Kind};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{self, Component};
use wasmtime::{Engine, InstancePre, Linker, Module, Precompiled};
use wasmtime_wasi::p2::bindings::CommandPre;

/// A job's code, compiled and linked, ready to instantiate.
#[derive(Clone)]
pub enum Prepared {
    /// A core module, run through its `_start` with WASI preview 1.
    Module(InstancePre<JobCtx>),
    /// A component, run through `wasi:cli/run` with WASI preview 2.
    Component(CommandPre<JobCtx>),
}

impl Prepared {
    /// The engine the code was compiled for.
    pub fn engine(&self) -> &Engine {
        match self {
            Prepared::Module(pre) => pre.module().engine(),
            Prepared::Component(pre) => pre.engine(),
        }
    }

    /// Which kind of code it is.
    pub fn kind(&self) -> Kind {
        match self {
            Prepared::Module(_) => Kind::Module,
            Prepared::Component(_) => Kind::Component,
        }
    }
}

/// Compiled but not yet linked.
enum Compiled {
    Module(Module),
    Component(Component),
}

/// Compiled modules and components, on disk and hot in memory.
pub struct ModuleCache {
    engine: Engine,
    module_linker: Linker<JobCtx>,
    component_linker: component::Linker<JobCtx>,
    dir: PathBuf,
    hot: DashMap<ModuleHash, Prepared>,
    index: std::sync::Mutex<LruIndex>,
    /// One compile at a time per module.
    locks: DashMap<ModuleHash, Arc<tokio::sync::Mutex<()>>>,
    /// How long and how much memory one compile may take.
    limits: CompileLimits,
    stats: CacheStats,
}

/// How the cache has served: code found compiled (in memory or on disk)
/// or compiled anew, and how long compiling took.
#[derive(Debug, Clone)]
pub struct CacheStats {
    /// Code found compiled.
    pub hits: Counter,
    /// Code compiled (or found invalid) because none was cached.
    pub misses: Counter,
    /// Seconds each compile took.
    pub compile: Histogram,
}

impl Default for CacheStats {
    fn default() -> Self {
        let buckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
        Self { hits: Counter::default(), misses: Counter::default(), compile: Histogram::new(buckets) }
    }
}

impl ModuleCache {
    /// A cache in `dir`, of at most `size` bytes, for modules run by
    /// `engine` with WASI preview 1 and components with WASI preview 2,
    /// compiled within `limits`.
    pub fn open(engine: &Engine, dir: &Path, size: u64, limits: CompileLimits) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("failed to create cache dir `{}`: {e}", dir.display()))?;
        let cache = Self {
            engine: engine.clone(),
            module_linker: linker::for_modules(engine)?,
            component_linker: linker::for_components(engine)?,
            dir: dir.to_owned(),
            hot: DashMap::new(),
            index: std::sync::Mutex::new(LruIndex::new(size)),
            locks: DashMap::new(),
            limits,
            stats: CacheStats::default(),
        };
        // Compiles cut short (by a crash of the node or of its compiler)
        // left partial artifacts: nothing reads them.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(PARTIAL) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
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

    /// How the cache has served.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
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

    /// The ready-to-instantiate code for `hash`: from memory, else from the
    /// precompiled artifact on disk, else compiled from bytes (from disk, or
    /// from `fetch`), verified against the hash first. `compiling` is
    /// awaited once before the caller waits on a compile: its own, or
    /// another caller's of the same module.
    pub async fn get<F, Fut, C, CFut>(
        &self,
        hash: &ModuleHash,
        fetch: F,
        compiling: C,
    ) -> Result<Prepared, PrepareError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, String>>,
        C: FnOnce() -> CFut,
        CFut: Future<Output = ()>,
    {
        if let Some(pre) = self.hot.get(hash) {
            self.lock_index().touch(hash);
            self.stats.hits.inc();
            return Ok(pre.clone());
        }
        let mut compiling = Some(compiling);
        let lock = self.locks.entry(hash.clone()).or_default().clone();
        let _guard = match lock.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another job compiles it: this one waits for that.
                if let Some(say) = compiling.take() {
                    say().await;
                }
                lock.lock().await
            }
        };
        if let Some(pre) = self.hot.get(hash) {
            self.stats.hits.inc();
            return Ok(pre.clone());
        }
        let compiled = match self.load_artifact(hash).await? {
            Some(compiled) => {
                self.stats.hits.inc();
                compiled
            }
            None => {
                if let Some(say) = compiling.take() {
                    say().await;
                }
                self.stats.misses.inc();
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
        let pre = self.link(compiled)?;
        self.hot.insert(hash.clone(), pre.clone());
        let bytes =
            [self.artifact(hash), self.raw(hash)].iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
        let evicted = self.lock_index().insert(hash.clone(), bytes);
        self.evict(evicted);
        Ok(pre)
    }

    /// Checks the entry point and resolves every import against WASI.
    fn link(&self, compiled: Compiled) -> Result<Prepared, PrepareError> {
        match compiled {
            Compiled::Module(module) => {
                if module.get_export_index("_start").is_none() {
                    return Err(PrepareError::InvalidModule("the module exports no `_start` function".into()));
                }
                let pre =
                    self.module_linker.instantiate_pre(&module).map_err(|e| PrepareError::Link(link_error(&e)))?;
                Ok(Prepared::Module(pre))
            }
            Compiled::Component(component) => {
                let is_command = component
                    .component_type()
                    .exports(&self.engine)
                    .any(|(name, _)| name.split('@').next() == Some(RUN_EXPORT));
                if !is_command {
                    return Err(PrepareError::InvalidModule(format!(
                        "the component exports no `{RUN_EXPORT}`: it is not a command"
                    )));
                }
                let pre = self
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(|e| PrepareError::Link(link_error(&e)))?;
                let pre = CommandPre::new(pre).map_err(|e| PrepareError::InvalidModule(one_line(&e)))?;
                Ok(Prepared::Component(pre))
            }
        }
    }

    /// The code from its precompiled artifact; `None` when there is none or
    /// it is stale.
    async fn load_artifact(&self, hash: &ModuleHash) -> Result<Option<Compiled>, PrepareError> {
        let path = self.artifact(hash);
        if !path.is_file() {
            return Ok(None);
        }
        let engine = self.engine.clone();
        let loaded = tokio::task::spawn_blocking(move || deserialize(&engine, &path))
            .await
            .map_err(|e| PrepareError::Node(format!("load task failed: {e}")))?;
        match loaded {
            Ok(compiled) => Ok(Some(compiled)),
            Err(e) => match refused(&e) {
                Some(refusal) => Err(refusal),
                None => {
                    tracing::warn!(module = %hash.short(), error = %one_line(&e), "stale compiled artifact; recompiling");
                    Ok(None)
                }
            },
        }
    }

    async fn compile(&self, hash: &ModuleHash, bytes: Vec<u8>) -> Result<Compiled, PrepareError> {
        let node_err = |what: &str, e: &dyn std::fmt::Display| PrepareError::Node(format!("{what}: {}", one_line(e)));
        if !bytes.starts_with(wasm::MAGIC) {
            return Err(PrepareError::InvalidModule("not a WebAssembly binary (bad magic number)".into()));
        }
        // An unknown layer is left to the module parser, which says what it found.
        let kind = wasm::kind(&bytes).unwrap_or(Kind::Module);
        let started = std::time::Instant::now();
        let (raw, artifact) = (self.raw(hash), self.artifact(hash));
        let dir = self.dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            write_atomically(&dir, &raw, &bytes)?;
            tempfile::Builder::new().suffix(PARTIAL).tempfile_in(&dir)
        });
        let partial = written
            .await
            .map_err(|e| node_err("cache task failed", &e))?
            .map_err(|e| node_err("failed to cache module", &e))?;
        if let Err(e) = compile::compile(kind, &self.raw(hash), partial.path(), self.limits).await {
            let _ = std::fs::remove_file(self.raw(hash));
            return Err(e);
        }
        partial.persist(&artifact).map_err(|e| node_err("failed to cache compiled module", &e.error))?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            deserialize(&engine, &artifact)
                .map_err(|e| refused(&e).unwrap_or_else(|| node_err("failed to load compiled module", &e)))
        })
        .await
        .map_err(|e| node_err("load task failed", &e))?
        .inspect(|_| {
            self.stats.compile.observe(started.elapsed().as_secs_f64());
            tracing::info!(module = %hash.short(), kind = kind.name(), elapsed = ?started.elapsed(), "module compiled")
        })
    }
}

/// The ending of an artifact being compiled.
const PARTIAL: &str = ".cwasm-partial";

/// The export that makes a component a command, without its version.
const RUN_EXPORT: &str = "wasi:cli/run";

/// Loads a precompiled artifact as the module or component its header says.
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Compiled> {
    // SAFETY: artifacts are written only by `ModuleCache::compile` with this
    // node's engine configuration, and wasmtime checks their header and
    // engine compatibility before using them.
    unsafe {
        match Engine::detect_precompiled_file(path)? {
            Some(Precompiled::Module) => Module::deserialize_file(engine, path).map(Compiled::Module),
            Some(Precompiled::Component) => Component::deserialize_file(engine, path).map(Compiled::Component),
            None => Err(wasmtime::format_err!("not a precompiled artifact")),
        }
    }
}

fn write_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

/// Why the pooling allocator refuses code outright, if it does: a memory or
/// table declared larger than the slots (sized from the node's per-job
/// memory ceiling) is a memory limit; more instances, memories or tables
/// than one job may hold is code this node cannot run.
fn refused(e: &wasmtime::Error) -> Option<PrepareError> {
    let msg = one_line(e);
    if msg.contains("memory does not fit in pooling allocator")
        || msg.contains("table does not fit in pooling allocator")
    {
        return Some(PrepareError::MemoryLimit);
    }
    let pool = msg.contains("in the pooling allocator") || msg.contains("does not fit in pooling allocator");
    pool.then(|| PrepareError::InvalidModule(format!("more than one job may hold on this node: {msg}")))
}

/// The import named by wasmtime's "unknown import" error (core modules) or
/// "matching implementation was not found" error (components), or the
/// message.
fn link_error(e: &wasmtime::Error) -> String {
    let msg = one_line(e);
    let missing = msg.contains("unknown import") || msg.contains("matching implementation was not found");
    match msg.split('`').nth(1) {
        Some(import) if missing => import.to_owned(),
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::engine::new_engine;

    /// A command component whose `run` returns at once.
    const COMMAND: &str = r#"(component
        (core module $m (func (export "run") (result i32) (i32.const 0)))
        (core instance $i (instantiate $m))
        (func $run (result (result)) (canon lift (core func $i "run")))
        (instance $run (export "run" (func $run)))
        (export "wasi:cli/run@0.2.0" (instance $run)))"#;

    fn cache(dir: &Path) -> ModuleCache {
        let mut capacity = NodeConfig::new("http://unused", dir).capacity;
        capacity.slots = 2;
        capacity.per_job.memory = 64 << 20;
        let engine = new_engine(&capacity).unwrap();
        ModuleCache::open(&engine, dir, 1 << 30, CompileLimits::default()).unwrap()
    }

    async fn get(cache: &ModuleCache, bytes: &[u8]) -> Result<Prepared, PrepareError> {
        let owned = bytes.to_vec();
        cache.get(&ModuleHash::of(bytes), || async move { Ok(owned) }, || async {}).await
    }

    fn binary(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[tokio::test]
    async fn detects_modules_and_components() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let module = binary(r#"(module (func (export "_start")))"#);
        let component = binary(COMMAND);
        assert_eq!(wasm::kind(&module), Some(Kind::Module));
        assert_eq!(wasm::kind(&component), Some(Kind::Component));
        assert_eq!(get(&cache, &module).await.unwrap().kind(), Kind::Module);
        assert_eq!(get(&cache, &component).await.unwrap().kind(), Kind::Component);
        // The artifacts on disk say what they are too.
        for (bytes, kind) in [(&module, Precompiled::Module), (&component, Precompiled::Component)] {
            let artifact = cache.artifact(&ModuleHash::of(bytes));
            assert_eq!(Engine::detect_precompiled_file(&artifact).unwrap(), Some(kind));
        }
    }

    #[tokio::test]
    async fn a_component_loads_from_its_artifact_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let component = binary(COMMAND);
        let hash = ModuleHash::of(&component);
        get(&cache(dir.path()), &component).await.unwrap();
        // Without the raw bytes and with no fetch, only the artifact can serve.
        std::fs::remove_file(dir.path().join(format!("{hash}.wasm"))).unwrap();
        let restarted = cache(dir.path());
        let pre = restarted.get(&hash, || async { Err("fetched again".to_owned()) }, || async {}).await.unwrap();
        assert_eq!(pre.kind(), Kind::Component);
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_runnable_command() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        let err = get(&cache, b"hello world, not wasm").await.err().unwrap();
        assert!(matches!(&err, PrepareError::InvalidModule(m) if m.contains("bad magic number")), "{err}");

        let err = get(&cache, &binary("(component)")).await.err().unwrap();
        assert!(matches!(&err, PrepareError::InvalidModule(m) if m.contains("not a command")), "{err}");

        let unknown = COMMAND.replacen("(core module", r#"(import "example:nope/thing" (func)) (core module"#, 1);
        let err = get(&cache, &binary(&unknown)).await.err().unwrap();
        assert!(matches!(&err, PrepareError::Link(m) if m == "example:nope/thing"), "{err}");

        let err = get(&cache, b"\0asm\x0d\0\x01\0garbage").await.err().unwrap();
        assert!(matches!(&err, PrepareError::InvalidModule(_)), "{err}");
    }

    #[tokio::test]
    async fn a_memory_over_the_ceiling_is_a_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path());
        // 2048 pages is 128 MiB, over the 64 MiB slots.
        let big = r#"(component (core module $m (memory 2048)) (core instance (instantiate $m)))"#;
        assert!(matches!(get(&cache, &binary(big)).await, Err(PrepareError::MemoryLimit)));
    }
}
