//! Per-job resource accounting inside the store: linear memory and tables,
//! with the peak kept for the job's report.

use wasmtime::ResourceLimiter;

/// Raised (as a trap) when a job asks for more memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded")]
pub struct MemoryLimitHit {
    /// The job's limit.
    pub limit: u64,
}

/// Table elements any one job may hold.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Core instances one job may hold: one for a module, one per inner core
/// instance for a component (componentize-py's Python has 14, a Rust
/// `wasm32-wasip2` program 3).
pub const CORE_INSTANCES_PER_JOB: u32 = 32;

/// Linear memories one job may define in all (a module, or all the core
/// modules of a component). Their sizes are summed against the one limit.
pub const MEMORIES_PER_JOB: u32 = 4;

/// Tables one job may define in all.
pub const TABLES_PER_JOB: u32 = 8;

/// Host resources (streams, descriptors, pollables, ...) one job's WASI may
/// hold at once: they live in host memory that no linear memory shows, so a
/// job that asks for more ends at its memory limit.
pub const MAX_RESOURCES_PER_JOB: usize = 65_536;

/// What one table element is charged against the memory limit.
pub const TABLE_ELEMENT_BYTES: u64 = 8;

/// The store's limiter: linear memory summed over all of a job's memories,
/// plus its tables at [`TABLE_ELEMENT_BYTES`] an element.
#[derive(Debug)]
pub struct JobLimiter {
    limit: u64,
    current: u64,
    peak: u64,
    hit: bool,
}

impl JobLimiter {
    /// A limiter allowing `limit` bytes of linear memory.
    pub fn new(limit: u64) -> Self {
        Self { limit, current: 0, peak: 0, hit: false }
    }

    /// The most linear memory held at once.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// Whether the job hit its memory limit.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl JobLimiter {
    /// One memory or table going from `current` to `desired` bytes.
    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let next = self.current - current.min(self.current) + desired;
        if next > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitHit { limit: self.limit }));
        }
        self.current = next;
        self.peak = self.peak.max(next);
        Ok(true)
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current as u64, desired as u64)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = true;
            return Err(wasmtime::Error::new(MemoryLimitHit { limit: self.limit }));
        }
        self.grow(current as u64 * TABLE_ELEMENT_BYTES, desired as u64 * TABLE_ELEMENT_BYTES)
    }

    fn instances(&self) -> usize {
        CORE_INSTANCES_PER_JOB as usize
    }

    fn tables(&self) -> usize {
        TABLES_PER_JOB as usize
    }

    fn memories(&self) -> usize {
        MEMORIES_PER_JOB as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_peak_and_refuses_past_limit() {
        let mut l = JobLimiter::new(3 << 16);
        assert!(l.memory_growing(0, 1 << 16, None).unwrap());
        assert!(l.memory_growing(1 << 16, 3 << 16, None).unwrap());
        assert_eq!(l.peak(), 3 << 16);
        assert!(l.memory_growing(3 << 16, 4 << 16, None).is_err());
        assert!(l.hit());
        assert_eq!(l.peak(), 3 << 16);
    }

    #[test]
    fn tables_count_against_the_limit() {
        let mut l = JobLimiter::new(1000 * TABLE_ELEMENT_BYTES);
        assert!(l.table_growing(0, 1000, None).unwrap());
        assert!(l.table_growing(1000, 1001, None).is_err());
        let mut l = JobLimiter::new(u64::MAX);
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS + 1, None).is_err());
    }
}
