//! `JobCtx`, what a job's store holds: its WASI context, its memory
//! limiter, its count of open files, a deterministic job's virtual clock,
//! and the sorted directory listings the linker serves such a job from.

use crate::determinism::VirtualTime;
use crate::limits::JobLimiter;
use std::collections::{HashMap, VecDeque};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::filesystem::types::DirectoryEntry;
use wasmtime_wasi::{WasiCtxView, WasiView};

/// What a job's store holds.
pub struct JobCtx {
    /// The job's WASI context. Preview 1 keeps its own state beside the
    /// context and resource table that preview 2 uses, so modules and
    /// components share this one type.
    pub(crate) wasi: WasiP1Ctx,
    /// Caps and records the job's linear memory and tables.
    pub(crate) limiter: JobLimiter,
    /// Files the guest holds open (counted by the wrappers in `linker`).
    pub(crate) open_files: u32,
    /// A deterministic job's virtual clock, which the linker brings up to
    /// date from the store's fuel before each call that reads the time;
    /// `None` for a job that sees the host's clocks.
    pub(crate) clock: Option<VirtualTime>,
    /// A deterministic component's directory streams, read to their end and
    /// sorted by name, by the stream's resource id: what each has left.
    pub(crate) listings: HashMap<u32, VecDeque<DirectoryEntry>>,
    /// A deterministic module's directory listings, sorted by name, by
    /// file descriptor: read when it lists from cookie 0, kept until it has
    /// been given the last entry, starts over, or closes the descriptor.
    pub(crate) fd_listings: HashMap<i32, FdListing>,
}

/// One directory's listing as preview 1's `fd_readdir` writes it, sorted
/// by name.
pub(crate) struct FdListing {
    /// The entries (`dirent` and name) back to back.
    pub(crate) bytes: Vec<u8>,
    /// Where each entry starts in `bytes`: entry `n` is the one after
    /// cookie `n`.
    pub(crate) starts: Vec<usize>,
}

impl JobCtx {
    /// A job's context, with no files open yet.
    pub(crate) fn new(wasi: WasiP1Ctx, limiter: JobLimiter, clock: Option<VirtualTime>) -> Self {
        Self { wasi, limiter, open_files: 0, clock, listings: HashMap::new(), fd_listings: HashMap::new() }
    }

    /// The directory entries held in `listings` and `fd_listings`.
    pub(crate) fn listed_entries(&self) -> usize {
        let streams: usize = self.listings.values().map(VecDeque::len).sum();
        let fds: usize = self.fd_listings.values().map(|listing| listing.starts.len()).sum();
        streams + fds
    }

    /// The bytes of listing held in `fd_listings`.
    pub(crate) fn listed_bytes(&self) -> usize {
        self.fd_listings.values().map(|listing| listing.bytes.len()).sum()
    }
}

impl WasiView for JobCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx()
    }
}
