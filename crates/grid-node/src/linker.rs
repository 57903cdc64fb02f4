//! The two linkers every job is instantiated through, built once at
//! start-up: WASI preview 1 for core modules, WASI preview 2 for
//! components. Both cap the files a job holds open, so a guest fails to
//! open one more instead of exhausting the node's descriptors. For a
//! module, `path_open` and `fd_close` from WASI preview 1 are wrapped so
//! each job counts its own descriptors, and an open past the cap fails with
//! `EMFILE`. For a component, preview 2's `open-at` is wrapped to count the
//! descriptors in the job's resource table, and fails with
//! `insufficient-memory` (preview 2 has no `EMFILE`). `stable` wraps what
//! a deterministic job could tell nodes apart by.

mod stable;

use crate::ctx::JobCtx;
use stable::{component_clocks, component_listings, component_stats, module_clocks, module_files};
use wasmtime::component::{self, Resource};
use wasmtime::{AsContextMut, Caller, Engine, Linker, StoreContextMut};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, Host as _, HostDescriptor as _, OpenFlags, PathFlags,
};

/// Files one job may hold open at once.
pub const MAX_OPEN_FILES: u32 = 256;

/// The linker for core modules: WASI preview 1, with open files capped.
pub fn for_modules(engine: &Engine) -> anyhow::Result<Linker<JobCtx>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx: &mut JobCtx| &mut ctx.wasi)
        .map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
    cap_module_files(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
    module_clocks(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
    module_files(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI: {e}"))?;
    Ok(linker)
}

/// The linker for components: WASI preview 2, with open files capped.
pub fn for_components(engine: &Engine) -> anyhow::Result<component::Linker<JobCtx>> {
    let mut linker = component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| anyhow::anyhow!("failed to link WASI preview 2: {e}"))?;
    cap_component_files(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI preview 2: {e}"))?;
    component_clocks(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI preview 2: {e}"))?;
    component_stats(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI preview 2: {e}"))?;
    component_listings(&mut linker).map_err(|e| anyhow::anyhow!("failed to link WASI preview 2: {e}"))?;
    Ok(linker)
}

/// WASI preview 1 `errno::mfile`: too many open files.
const ERRNO_MFILE: i32 = 33;
/// WASI preview 1 `errno::success`.
const ERRNO_SUCCESS: i32 = 0;

const MODULE: &str = "wasi_snapshot_preview1";

/// What wiggle's own glue does on entering a WASI call: the guest's memory,
/// and the context with its per-call host fuel set.
fn enter<'a>(caller: &'a mut Caller<'_, JobCtx>) -> wasmtime::Result<(&'a mut JobCtx, wiggle::GuestMemory<'a>)> {
    let Some(wasmtime::Extern::Memory(mem)) = caller.get_export("memory") else {
        return Err(wasmtime::format_err!("missing required memory export"));
    };
    let fuel = caller.as_context_mut().hostcall_fuel();
    let (data, ctx) = mem.data_and_store_mut(caller);
    ctx.wasi.set_hostcall_fuel(fuel);
    Ok((ctx, wiggle::GuestMemory::Unshared(data)))
}

/// Replaces `path_open` and `fd_close` in `linker` (which already holds
/// WASI preview 1) with counting versions.
fn cap_module_files(linker: &mut Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap_async(
        MODULE,
        "path_open",
        |mut caller: Caller<'_, JobCtx>,
         (fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, out): (
            i32,
            i32,
            i32,
            i32,
            i32,
            i64,
            i64,
            i32,
            i32,
        )| {
            Box::new(async move {
                if caller.data().open_files >= MAX_OPEN_FILES {
                    return Ok(ERRNO_MFILE);
                }
                let (ctx, mut guest) = enter(&mut caller)?;
                let errno = p1::path_open(
                    &mut ctx.wasi,
                    &mut guest,
                    fd,
                    dirflags,
                    path,
                    path_len,
                    oflags,
                    base,
                    inheriting,
                    fdflags,
                    out,
                )
                .await?;
                if errno == ERRNO_SUCCESS {
                    ctx.open_files += 1;
                }
                Ok(errno)
            })
        },
    )?;
    linker.func_wrap_async(MODULE, "fd_close", |mut caller: Caller<'_, JobCtx>, (fd,): (i32,)| {
        Box::new(async move {
            let (ctx, mut guest) = enter(&mut caller)?;
            let errno = p1::fd_close(&mut ctx.wasi, &mut guest, fd).await?;
            ctx.fd_listings.remove(&fd);
            // The preopens and stdio were never counted.
            if errno == ERRNO_SUCCESS && fd > 2 {
                ctx.open_files = ctx.open_files.saturating_sub(1);
            }
            Ok(errno)
        })
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The interface preview 2's `open-at` lives in, as `wasmtime-wasi` defines it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Replaces `open-at` in `linker` (which already holds WASI preview 2) with
/// one that refuses to open past [`MAX_OPEN_FILES`] descriptors, preopened
/// directories included.
fn cap_component_files(linker: &mut component::Linker<JobCtx>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(FILESYSTEM_TYPES)?.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, JobCtx>,
         (dir, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let ctx = store.data_mut();
                let open = ctx.ctx().table.iter_mut().filter(|entry| entry.is::<Descriptor>()).count();
                if open >= MAX_OPEN_FILES as usize {
                    return Ok((Err(ErrorCode::InsufficientMemory),));
                }
                let mut fs = ctx.filesystem();
                let opened = match fs.open_at(dir, path_flags, path, open_flags, flags).await {
                    Ok(descriptor) => Ok(descriptor),
                    Err(e) => Err(fs.convert_error_code(e)?),
                };
                Ok((opened,))
            })
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
