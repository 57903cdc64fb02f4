//! A deterministic job's clocks are virtual (`determinism`) and advance with
//! the fuel it burns, which only the store knows: every call that reads the
//! time (preview 1's `clock_time_get` and `poll_oneoff`, preview 2's
//! `wall-clock.now`, `monotonic-clock.now` and `subscribe-instant`) is
//! wrapped to bring the job's clock up to date from the store's fuel first.
//! What preview 1 tells a deterministic job about its files is made the same
//! on every node: `fd_filestat_get` and `path_filestat_get` give device and
//! inode 0, every time as the clock's start, and a directory's size as 0;
//! `fd_readdir` lists entries by name, with inode 0. Preview 2's `stat` and
//! `stat-at` give it the same times and directory sizes, and its
//! `metadata-hash` and `metadata-hash-at` give 0, and its directory streams
//! give their entries sorted by name.

use super::{ERRNO_SUCCESS, FILESYSTEM_TYPES, MODULE, enter};
use crate::ctx::{FdListing, JobCtx};
use crate::determinism::WALL_CLOCK_START;
use std::collections::VecDeque;
use wasmtime::component::{self, Resource};
use wasmtime::{AsContextMut, Caller, Linker, StoreContextMut};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1};
use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, Host as _, HostDescriptor as _,
    HostDirectoryEntryStream as _, MetadataHashValue, PathFlags,
};
use wasmtime_wasi::p2::{DynPollable, ReaddirIterator};

/// Brings a deterministic job's virtual clock up to date with the fuel it
/// has burned so far; nothing for a job on the host's clocks.
fn sync_clock(mut store: impl AsContextMut<Data = JobCtx>) {
    let store = store.as_context_mut();
    if store.data().clock.is_none() {
        return;
    }
    let left = store.get_fuel().unwrap_or(0);
    if let Some(clock) = &store.data().clock {
        clock.sync(left);
    }
}

/// Replaces the preview 1 calls that read the time in `linker` (which
/// already holds WASI preview 1) with ones that first bring a deterministic
/// job's clock up to date.
pub(super) fn module_clocks(linker: &mut Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut caller: Caller<'_, JobCtx>, id: i32, precision: i64, out: i32| -> wasmtime::Result<i32> {
            sync_clock(&mut caller);
            let (ctx, mut guest) = enter(&mut caller)?;
            p1::clock_time_get(&mut ctx.wasi, &mut guest, id, precision, out)
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "poll_oneoff",
        |mut caller: Caller<'_, JobCtx>, (subscriptions, events, count, written): (i32, i32, i32, i32)| {
            Box::new(async move {
                sync_clock(&mut caller);
                let (ctx, mut guest) = enter(&mut caller)?;
                p1::poll_oneoff(&mut ctx.wasi, &mut guest, subscriptions, events, count, written).await
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The interfaces of preview 2's clocks, as `wasmtime-wasi` defines them.
const WALL_CLOCK: &str = "wasi:clocks/wall-clock@0.2.12";
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the preview 2 calls that read the time in `linker` (which
/// already holds WASI preview 2) with ones that first bring a deterministic
/// job's clock up to date.
pub(super) fn component_clocks(linker: &mut component::Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(WALL_CLOCK)?.func_wrap(
        "now",
        |mut store: StoreContextMut<'_, JobCtx>, (): ()| -> wasmtime::Result<(wall_clock::Datetime,)> {
            sync_clock(&mut store);
            Ok((wall_clock::Host::now(&mut store.data_mut().clocks())?,))
        },
    )?;
    let mut monotonic = linker.instance(MONOTONIC_CLOCK)?;
    monotonic.func_wrap(
        "now",
        |mut store: StoreContextMut<'_, JobCtx>, (): ()| -> wasmtime::Result<(monotonic_clock::Instant,)> {
            sync_clock(&mut store);
            Ok((monotonic_clock::Host::now(&mut store.data_mut().clocks())?,))
        },
    )?;
    monotonic.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, JobCtx>,
         (when,): (monotonic_clock::Instant,)|
         -> wasmtime::Result<(Resource<DynPollable>,)> {
            sync_clock(&mut store);
            Ok((monotonic_clock::Host::subscribe_instant(&mut store.data_mut().clocks(), when)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// WASI preview 1 `errno::fault`: a pointer outside the guest's memory.
const ERRNO_FAULT: i32 = 21;
/// WASI preview 1 `errno::nomem`.
const ERRNO_NOMEM: i32 = 48;
/// WASI preview 1 `filetype::directory`.
const FILETYPE_DIRECTORY: u8 = 3;
/// The size of a preview 1 `filestat`, and of a `dirent` before its name.
const FILESTAT_SIZE: usize = 64;
const DIRENT_SIZE: usize = 24;
/// The most bytes of listing one deterministic `fd_readdir` gathers, and a
/// deterministic module holds over all its directories: more than the names
/// of every entry a job's disk limit allows.
const MAX_LISTING: usize = 64 << 20;

/// Writes `bytes` into the guest's memory at `at`; false if they do not fit.
fn write_guest(caller: &mut Caller<'_, JobCtx>, at: i32, bytes: &[u8]) -> bool {
    let Some(wasmtime::Extern::Memory(mem)) = caller.get_export("memory") else {
        return false;
    };
    mem.write(caller, at as u32 as usize, bytes).is_ok()
}

/// Rewrites the `filestat` a deterministic job was just given at `at`:
/// device and inode 0, every time the clock's start, a directory's size 0.
fn stable_filestat(caller: &mut Caller<'_, JobCtx>, at: i32) -> i32 {
    let Some(wasmtime::Extern::Memory(mem)) = caller.get_export("memory") else {
        return ERRNO_FAULT;
    };
    let mut stat = [0u8; FILESTAT_SIZE];
    if mem.read(&mut *caller, at as u32 as usize, &mut stat).is_err() {
        return ERRNO_FAULT;
    }
    stat[0..16].fill(0);
    if stat[16] == FILETYPE_DIRECTORY {
        stat[32..40].fill(0);
    }
    let start = (WALL_CLOCK_START.as_nanos() as u64).to_le_bytes();
    for time in stat[40..64].chunks_mut(8) {
        time.copy_from_slice(&start);
    }
    if write_guest(caller, at, &stat) { ERRNO_SUCCESS } else { ERRNO_FAULT }
}

/// Replaces `fd_filestat_get`, `path_filestat_get` and `fd_readdir` in
/// `linker` (which already holds WASI preview 1) with ones that tell a
/// deterministic job the same on every node. A directory is read and sorted
/// once, when the job lists it from cookie 0, and later cookies are served
/// from `JobCtx::fd_listings`; `fd_renumber` is wrapped to drop the
/// listings of the descriptors it moves.
pub(super) fn module_files(linker: &mut Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap_async(MODULE, "fd_filestat_get", |mut caller: Caller<'_, JobCtx>, (fd, out): (i32, i32)| {
        Box::new(async move {
            let (ctx, mut guest) = enter(&mut caller)?;
            let errno = p1::fd_filestat_get(&mut ctx.wasi, &mut guest, fd, out).await?;
            if errno != ERRNO_SUCCESS || caller.data().clock.is_none() {
                return Ok(errno);
            }
            Ok(stable_filestat(&mut caller, out))
        })
    })?;
    linker.func_wrap_async(
        MODULE,
        "path_filestat_get",
        |mut caller: Caller<'_, JobCtx>, (fd, flags, path, path_len, out): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let (ctx, mut guest) = enter(&mut caller)?;
                let errno = p1::path_filestat_get(&mut ctx.wasi, &mut guest, fd, flags, path, path_len, out).await?;
                if errno != ERRNO_SUCCESS || caller.data().clock.is_none() {
                    return Ok(errno);
                }
                Ok(stable_filestat(&mut caller, out))
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "fd_readdir",
        |mut caller: Caller<'_, JobCtx>, (fd, buf, buf_len, cookie, used): (i32, i32, i32, i64, i32)| {
            Box::new(async move {
                if caller.data().clock.is_none() {
                    let (ctx, mut guest) = enter(&mut caller)?;
                    return p1::fd_readdir(&mut ctx.wasi, &mut guest, fd, buf, buf_len, cookie, used).await;
                }
                if cookie == 0 || !caller.data().fd_listings.contains_key(&fd) {
                    // Starting over: a listing held for `fd` is not counted
                    // against the one read in its place.
                    caller.data_mut().fd_listings.remove(&fd);
                    match sorted_listing(&mut caller, fd).await? {
                        Ok(listing) => caller.data_mut().fd_listings.insert(fd, listing),
                        Err(errno) => return Ok(errno),
                    };
                }
                Ok(serve_listing(&mut caller, fd, buf, buf_len, cookie as u64, used))
            })
        },
    )?;
    linker.func_wrap_async(MODULE, "fd_renumber", |mut caller: Caller<'_, JobCtx>, (from, to): (i32, i32)| {
        Box::new(async move {
            let (ctx, mut guest) = enter(&mut caller)?;
            let errno = p1::fd_renumber(&mut ctx.wasi, &mut guest, from, to).await?;
            // `to` now names what `from` did, and `from` nothing.
            ctx.fd_listings.remove(&from);
            ctx.fd_listings.remove(&to);
            Ok(errno)
        })
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Writes into the guest's `buf` as much of `fd`'s listing (held in
/// `JobCtx::fd_listings`) after `cookie` entries as `buf_len` bytes hold,
/// and the bytes written at `used`; drops the listing once its last byte
/// has been given.
fn serve_listing(caller: &mut Caller<'_, JobCtx>, fd: i32, buf: i32, buf_len: i32, cookie: u64, used: i32) -> i32 {
    let Some(wasmtime::Extern::Memory(mem)) = caller.get_export("memory") else {
        return ERRNO_FAULT;
    };
    let (memory, ctx) = mem.data_and_store_mut(caller);
    let Some(listing) = ctx.fd_listings.get(&fd) else {
        return ERRNO_FAULT;
    };
    let len = listing.bytes.len();
    let start = usize::try_from(cookie).ok().and_then(|n| listing.starts.get(n)).copied().unwrap_or(len);
    let end = start.saturating_add(buf_len as u32 as usize).min(len);
    let (buf, used) = (buf as u32 as usize, used as u32 as usize);
    if buf + (end - start) > memory.len() || used + 4 > memory.len() {
        return ERRNO_FAULT;
    }
    memory[buf..buf + (end - start)].copy_from_slice(&listing.bytes[start..end]);
    memory[used..used + 4].copy_from_slice(&((end - start) as u32).to_le_bytes());
    if end == len {
        ctx.fd_listings.remove(&fd);
    }
    ERRNO_SUCCESS
}

/// The whole listing of directory `fd` as preview 1's `fd_readdir` writes
/// it, but with `.` and `..` first, then the entries sorted by name,
/// numbered in that order, and every inode 0; or the errno of the failure,
/// `nomem` if the job's listings would hold more than [`MAX_LISTED`]
/// entries or [`MAX_LISTING`] bytes with it.
async fn sorted_listing(caller: &mut Caller<'_, JobCtx>, fd: i32) -> wasmtime::Result<Result<FdListing, i32>> {
    let mut cap = 64 << 10;
    let raw = loop {
        // The whole listing, read into a buffer of the host's with `used` after it.
        let mut scratch = vec![0u8; cap + 4];
        let fuel = caller.as_context_mut().hostcall_fuel();
        let ctx = caller.data_mut();
        ctx.wasi.set_hostcall_fuel(fuel);
        let mut memory = wiggle::GuestMemory::Unshared(&mut scratch);
        let errno = p1::fd_readdir(&mut ctx.wasi, &mut memory, fd, 0, cap as i32, 0, cap as i32).await?;
        if errno != ERRNO_SUCCESS {
            return Ok(Err(errno));
        }
        let used = u32::from_le_bytes(scratch[cap..cap + 4].try_into().expect("four bytes")) as usize;
        if used < cap {
            scratch.truncate(used);
            break scratch;
        }
        if cap >= MAX_LISTING {
            return Ok(Err(ERRNO_NOMEM));
        }
        cap *= 4;
    };
    let mut entries = Vec::new();
    let mut at = 0;
    while at + DIRENT_SIZE <= raw.len() {
        let namlen = u32::from_le_bytes(raw[at + 16..at + 20].try_into().expect("four bytes")) as usize;
        let end = (at + DIRENT_SIZE + namlen).min(raw.len());
        entries.push(&raw[at..end]);
        at = end;
    }
    let ctx = caller.data();
    if ctx.listed_entries() + entries.len() > MAX_LISTED || ctx.listed_bytes() + raw.len() > MAX_LISTING {
        return Ok(Err(ERRNO_NOMEM));
    }
    let dots = entries.len().min(2);
    entries[dots..].sort_by(|a, b| a[DIRENT_SIZE..].cmp(&b[DIRENT_SIZE..]));
    let mut listing = FdListing { bytes: Vec::with_capacity(raw.len()), starts: Vec::with_capacity(entries.len()) };
    for (i, entry) in entries.into_iter().enumerate() {
        let start = listing.bytes.len();
        listing.starts.push(start);
        listing.bytes.extend_from_slice(entry);
        listing.bytes[start..start + 8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        listing.bytes[start + 8..start + 16].fill(0);
    }
    Ok(Ok(listing))
}

/// A deterministic job's view of a preview 2 `stat`: every time the
/// clock's start, a directory's size 0.
fn stable_stat(mut stat: DescriptorStat) -> DescriptorStat {
    let start = wall_clock::Datetime { seconds: WALL_CLOCK_START.as_secs(), nanoseconds: 0 };
    stat.data_access_timestamp = Some(start);
    stat.data_modification_timestamp = Some(start);
    stat.status_change_timestamp = Some(start);
    if stat.type_ == DescriptorType::Directory {
        stat.size = 0;
    }
    stat
}

/// The result of a preview 2 `stat` or `stat-at` as the job sees it.
type StatResult = wasmtime::Result<(Result<DescriptorStat, ErrorCode>,)>;
/// The result of a preview 2 `metadata-hash` or `metadata-hash-at`.
type HashResult = wasmtime::Result<(Result<MetadataHashValue, ErrorCode>,)>;

/// Replaces `stat`, `stat-at`, `metadata-hash` and `metadata-hash-at` in
/// `linker` (which already holds WASI preview 2) with ones that tell a
/// deterministic job no host times, directory sizes or inode hashes.
pub(super) fn component_stats(linker: &mut component::Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.stat",
        |mut store: StoreContextMut<'_, JobCtx>, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let ctx = store.data_mut();
                let deterministic = ctx.clock.is_some();
                let mut fs = ctx.filesystem();
                let stat: StatResult = match fs.stat(fd).await {
                    Ok(stat) if deterministic => Ok((Ok(stable_stat(stat)),)),
                    Ok(stat) => Ok((Ok(stat),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                };
                stat
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.stat-at",
        |mut store: StoreContextMut<'_, JobCtx>, (fd, flags, path): (Resource<Descriptor>, PathFlags, String)| {
            Box::new(async move {
                let ctx = store.data_mut();
                let deterministic = ctx.clock.is_some();
                let mut fs = ctx.filesystem();
                let stat: StatResult = match fs.stat_at(fd, flags, path).await {
                    Ok(stat) if deterministic => Ok((Ok(stable_stat(stat)),)),
                    Ok(stat) => Ok((Ok(stat),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                };
                stat
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.metadata-hash",
        |mut store: StoreContextMut<'_, JobCtx>, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let ctx = store.data_mut();
                let deterministic = ctx.clock.is_some();
                let mut fs = ctx.filesystem();
                let hash: HashResult = match fs.metadata_hash(fd).await {
                    Ok(_) if deterministic => Ok((Ok(MetadataHashValue { lower: 0, upper: 0 }),)),
                    Ok(hash) => Ok((Ok(hash),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                };
                hash
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.metadata-hash-at",
        |mut store: StoreContextMut<'_, JobCtx>, (fd, flags, path): (Resource<Descriptor>, PathFlags, String)| {
            Box::new(async move {
                let ctx = store.data_mut();
                let deterministic = ctx.clock.is_some();
                let mut fs = ctx.filesystem();
                let hash: HashResult = match fs.metadata_hash_at(fd, flags, path).await {
                    Ok(_) if deterministic => Ok((Ok(MetadataHashValue { lower: 0, upper: 0 }),)),
                    Ok(hash) => Ok((Ok(hash),)),
                    Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                };
                hash
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The most directory entries a deterministic job may hold read ahead,
/// over all its directory streams and descriptors.
const MAX_LISTED: usize = 1 << 20;

/// The result of a preview 2 `read-directory-entry` as the job sees it.
type EntryResult = wasmtime::Result<(Result<Option<DirectoryEntry>, ErrorCode>,)>;

/// Replaces `read-directory` and `read-directory-entry` in `linker` (which
/// already holds WASI preview 2) with ones that give a deterministic job
/// each directory's entries sorted by name: its stream is read to its end
/// at the first entry asked for, and served from `JobCtx::listings`.
pub(super) fn component_listings(linker: &mut component::Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.read-directory",
        |mut store: StoreContextMut<'_, JobCtx>, (fd,): (Resource<Descriptor>,)| {
            Box::new(async move {
                let ctx = store.data_mut();
                let mut fs = ctx.filesystem();
                let stream = match fs.read_directory(fd).await {
                    Ok(stream) => stream,
                    Err(e) => return Ok((Err(fs.convert_error_code(e)?),)),
                };
                // A new stream: nothing left of an old one with its id.
                ctx.listings.remove(&stream.rep());
                Ok((Ok(stream),))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]directory-entry-stream.read-directory-entry",
        |mut store: StoreContextMut<'_, JobCtx>, (stream,): (Resource<ReaddirIterator>,)| {
            Box::new(async move {
                let ctx = store.data_mut();
                let rep = stream.rep();
                if ctx.clock.is_none() {
                    let mut fs = ctx.filesystem();
                    let entry: EntryResult = match fs.read_directory_entry(stream).await {
                        Ok(entry) => Ok((Ok(entry),)),
                        Err(e) => Ok((Err(fs.convert_error_code(e)?),)),
                    };
                    return entry;
                }
                if !ctx.listings.contains_key(&rep) {
                    let held = ctx.listed_entries();
                    let mut entries = Vec::new();
                    loop {
                        let mut fs = ctx.filesystem();
                        match fs.read_directory_entry(Resource::new_borrow(rep)).await {
                            Ok(Some(entry)) => entries.push(entry),
                            Ok(None) => break,
                            Err(e) => return Ok((Err(fs.convert_error_code(e)?),)),
                        }
                        if held + entries.len() > MAX_LISTED {
                            return Ok((Err(ErrorCode::InsufficientMemory),));
                        }
                    }
                    entries.sort_by(|a, b| a.name.cmp(&b.name));
                    ctx.listings.insert(rep, entries.into());
                }
                let next = ctx.listings.get_mut(&rep).and_then(VecDeque::pop_front);
                if next.is_none() {
                    ctx.listings.remove(&rep);
                }
                Ok((Ok(next),))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
