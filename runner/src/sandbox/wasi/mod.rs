//! WASI preview 1 under the call budget.
//!
//! wasmtime-wasi implements preview 1; [`GuardedWasi`] wraps its context and is what the
//! linker sees, so every WASI call passes through here first:
//! - every call is async and runs inside the call's deadline (see [`run_bounded`]): a call that
//!   blocks (a clock subscription in `poll_oneoff`, a read from a FIFO, an open that waits for
//!   a writer) is abandoned at the deadline and the call ends `timeout`;
//! - `path_open` refuses what is not a regular file or a directory (FIFOs, sockets, devices)
//!   before opening it, and charges each open descriptor to the memory budget;
//! - `fd_readdir` lists an entry at a time (see [`directories`]);
//! - bytes written to stdout and stderr are charged to the budget as they are captured, and
//!   bytes written to files count against the disk quotas (per call and per plugin): past
//!   them a write fails with `ENOSPC`, as on a full disk, and the outcome says so.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::LazyLock;
use std::time::Instant;

use wasmtime_wasi::p1::{WasiP1Ctx, types};
use wiggle::{GuestMemory, GuestPtr};

use crate::budget::{DESCRIPTOR_COST, MemoryBudget};
use crate::capability::FsMode;
use crate::policy::FsGrant;

mod directories;

/// What a new directory entry counts against the disk quota: a block.
const ENTRY_BYTES: u64 = 4096;
/// Host bytes per `poll_oneoff` subscription while it polls, rounded up from what was measured
/// (RSS growth under `/usr/bin/time -v`: 268 MiB for 490,000).
const POLL_SUBSCRIPTION_COST: u64 = 1024;
/// `random_get` fills the plugin's memory this many bytes at a time.
const RANDOM_CHUNK: u32 = 4096;

/// The runtime WASI calls run on. One for the process and never dropped: a host call abandoned
/// at its deadline may leave a blocking thread behind (a read from a FIFO nobody writes), and
/// dropping a runtime would wait for it.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("stockade-wasi")
        .enable_time()
        .enable_io()
        .build()
        .expect("the WASI runtime starts")
});

/// Runs `future` (an instantiation or a call of a WASI module) until it finishes or the
/// deadline comes, whichever is first; `None` at the deadline, whatever the plugin was doing.
pub(super) fn run_bounded<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
    RUNTIME.block_on(async move { tokio::time::timeout_at(deadline.into(), future).await.ok() })
}

/// How to give a WASI module its context on each call.
pub(super) struct WasiSetup {
    pub preopens: Vec<(FsGrant, FsMode)>,
    /// Bytes the plugin has written to files over all its calls.
    pub written_total: Arc<AtomicU64>,
    pub quota_call: u64,
    pub quota_total: u64,
}

/// A WASI program's captured stdout and stderr.
pub(crate) struct Stdio {
    pub stdout: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
    pub stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
}

impl WasiSetup {
    /// A context with only granted authority: the input on stdin, stdout and stderr in pipes
    /// capped at the output limit, no environment or arguments, the granted preopens.
    pub fn context(&self, input: &[u8], output_cap: u64, budget: MemoryBudget) -> Result<(GuardedWasi, Stdio), String> {
        use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
        // `before_write` ends the call at the output limit before a write reaches the pipe; the
        // pipes' own capacity is the same limit, a second layer.
        let cap = usize::try_from(output_cap).unwrap_or(usize::MAX);
        let stdio = Stdio { stdout: MemoryOutputPipe::new(cap), stderr: MemoryOutputPipe::new(cap) };
        let mut builder = wasmtime_wasi::WasiCtxBuilder::new();
        // Reads and writes of files go straight between the file and the plugin's memory on
        // this thread, instead of through a host buffer as long as the plugin's iovec (a read of
        // a sparse file into a 1 GiB iovec was a 1 GiB host buffer). Only regular files and
        // directories are ever opened (see `path_open`), so this thread blocks no longer than a
        // disk read takes.
        builder.allow_blocking_current_thread(true);
        budget.charge(input.len() as u64, "the input").map_err(|e| e.to_string())?;
        builder.stdin(MemoryInputPipe::new(input.to_vec()));
        builder.stdout(stdio.stdout.clone());
        builder.stderr(stdio.stderr.clone());
        // A context that is not made holds nothing: the input's charge goes back.
        let directories = self.preopen(&mut builder).inspect_err(|_| budget.release(input.len() as u64))?;
        let guarded = GuardedWasi {
            ctx: builder.build_p1(),
            budget,
            opened: HashSet::new(),
            directories,
            stdio_written: [0, 0],
            stdio_fds: [Some(1), Some(2)],
            output_cap,
            written_call: 0,
            written_total: self.written_total.clone(),
            quota_call: self.quota_call,
            quota_total: self.quota_total,
            quota_reached: false,
            input_bytes: input.len() as u64,
            hostcall_fuel: 0,
        };
        Ok((guarded, stdio))
    }

    /// Gives `builder` the granted directories, and opens the sandbox's own handle to each
    /// (see [`directories`]): preopens are descriptors 3, 4, ... in the order they are given.
    fn preopen(&self, builder: &mut wasmtime_wasi::WasiCtxBuilder) -> Result<directories::Directories, String> {
        for (grant, mode) in &self.preopens {
            let perms = match mode {
                FsMode::Ro => wasmtime_wasi::FsPerms::ReadOnly,
                FsMode::Rw => wasmtime_wasi::FsPerms::ReadWrite,
            };
            builder
                .preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| format!("cannot preopen {} as {}: {e:#}", grant.host, grant.guest))?;
        }
        let mut directories = directories::Directories::default();
        for (fd, (grant, _)) in (3u32..).zip(&self.preopens) {
            directories
                .preopened(fd, std::path::Path::new(&grant.host))
                .map_err(|e| format!("cannot preopen {} as {}: {e}", grant.host, grant.guest))?;
        }
        Ok(directories)
    }
}

/// The first of `lengths` that is not zero, or zero.
fn first_non_empty(lengths: impl Iterator<Item = Result<types::Size, types::Error>>) -> Result<u64, types::Error> {
    for length in lengths {
        let length = length?;
        if length != 0 {
            return Ok(u64::from(length));
        }
    }
    Ok(0)
}

/// wasmtime-wasi's preview 1 context, with the call budget's checks in front of it.
pub struct GuardedWasi {
    ctx: WasiP1Ctx,
    budget: MemoryBudget,
    /// Descriptors opened by the plugin (each charged [`DESCRIPTOR_COST`]).
    opened: HashSet<u32>,
    /// Handles of the plugin's directory descriptors, for `fd_readdir`.
    directories: directories::Directories,
    /// Bytes written to stdout and stderr (each charged to the budget).
    stdio_written: [u64; 2],
    /// Where stdout and stderr are now: their descriptors move with `fd_renumber` and are gone
    /// after `fd_close`. What counts as stdio is the stream, whatever number it has; a file
    /// renumbered onto 1 is a file, under the disk quota.
    stdio_fds: [Option<u32>; 2],
    output_cap: u64,
    written_call: u64,
    written_total: Arc<AtomicU64>,
    quota_call: u64,
    quota_total: u64,
    /// A write was refused for the quota.
    pub quota_reached: bool,
    /// The stdin copy of the input, charged while the context lives.
    input_bytes: u64,
    /// The hostcall fuel this WASI call started with (see [`crate::budget::HOSTCALL_BYTES`]).
    hostcall_fuel: usize,
}

/// What the context holds goes back to the plugin's budget with it.
impl Drop for GuardedWasi {
    fn drop(&mut self) {
        let descriptors = self.opened.len() as u64 * DESCRIPTOR_COST;
        self.budget.release(descriptors + self.stdio_written[0] + self.stdio_written[1] + self.input_bytes);
    }
}

impl GuardedWasi {
    /// Bytes written to files in this call.
    pub fn written(&self) -> u64 {
        self.written_call
    }

    /// How many more bytes files may take in this call.
    fn quota_left(&self) -> u64 {
        let total_left = self.quota_total.saturating_sub(self.written_total.load(Relaxed));
        self.quota_call.saturating_sub(self.written_call).min(total_left)
    }

    fn count_written(&mut self, bytes: u64) {
        self.written_call = self.written_call.saturating_add(bytes);
        self.written_total.fetch_add(bytes, Relaxed);
    }

    /// What the next `fd_write` will write: wasmtime-wasi writes the first non-empty buffer.
    fn first_buffer_len(&self, memory: &GuestMemory<'_>, ciovs: types::CiovecArray) -> Result<u64, types::Error> {
        self.within_hostcall_bytes(ciovs.len(), size_of::<types::Ciovec>())?;
        first_non_empty(ciovs.iter().map(|iov| Ok(memory.read(iov?)?.buf_len)))
    }

    /// What the next `fd_read` will read at most: wasmtime-wasi reads into the first
    /// non-empty buffer.
    fn first_read_len(&self, memory: &GuestMemory<'_>, iovs: types::IovecArray) -> Result<u64, types::Error> {
        self.within_hostcall_bytes(iovs.len(), size_of::<types::Iovec>())?;
        first_non_empty(iovs.iter().map(|iov| Ok(memory.read(iov?)?.buf_len)))
    }

    /// An array the plugin hands over is refused by its length, as wasmtime-wasi refuses it
    /// (`ENOMEM`, past the hostcall fuel), before it is walked: walking a 1 GiB array of empty
    /// iovecs for its first buffer took a second that no deadline could interrupt.
    fn within_hostcall_bytes(&self, entries: u32, entry_bytes: usize) -> Result<(), types::Error> {
        if (entries as usize).saturating_mul(entry_bytes) > self.hostcall_fuel {
            return Err(types::Errno::Nomem.into());
        }
        Ok(())
    }

    /// wasmtime-wasi takes the data buffer of a read or write out of the hostcall fuel as if
    /// it copied it, so a plugin could not read a file in one call of more than the fuel.
    /// With the plugin's memory unshared it does not copy it: a file's bytes go straight
    /// between the file and that memory, and stdout's are charged to the budget and capped by
    /// the output limit (`before_write`). Then the buffer gets fuel of its own; the iovec array
    /// still draws on the call's. A shared memory is copied through a host buffer: no fuel
    /// beyond the call's.
    fn exempt_data(&mut self, memory: &GuestMemory<'_>, len: u64) {
        if matches!(memory, GuestMemory::Unshared(_)) {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1::set_hostcall_fuel(&mut self.ctx, self.hostcall_fuel.saturating_add(len));
        }
    }

    /// Before a write of `len` bytes to `fd`: stdio is charged to the memory budget and capped
    /// by the output limit (past it the call ends `output-too-large` at once, as Extism output
    /// does, rather than spinning on refused writes until its deadline); files count against
    /// the disk quota.
    fn before_write(&mut self, fd: types::Fd, len: u64) -> Result<(), types::Error> {
        let fd = u32::from(fd);
        if let Some(stream) = self.stdio_fds.iter().position(|s| *s == Some(fd)) {
            let written = &mut self.stdio_written[stream];
            if written.saturating_add(len) > self.output_cap {
                let stream = if stream == 0 { "stdout" } else { "stderr" };
                let fault = crate::fault::HostFault::OutputTooLarge(format!("more than {} bytes to {stream}", self.output_cap));
                return Err(types::Error::trap(wasmtime::Error::new(fault)));
            }
            self.budget.charge(len, "captured stdio").map_err(|fault| types::Error::trap(wasmtime::Error::new(fault)))?;
            *written += len;
        } else if self.opened.contains(&fd) && len > self.quota_left() {
            self.quota_reached = true;
            return Err(types::Errno::Nospc.into());
        }
        Ok(())
    }

    /// Before a new directory entry (a file, directory or link): it takes an inode and a block
    /// whatever its size, so it counts [`ENTRY_BYTES`] against the disk quota. Otherwise a
    /// plugin could fill a disk's inodes with empty files without writing a byte.
    fn before_new_entry(&mut self) -> Result<(), types::Error> {
        if ENTRY_BYTES > self.quota_left() {
            self.quota_reached = true;
            return Err(types::Errno::Nospc.into());
        }
        Ok(())
    }

    fn after_write(&mut self, fd: types::Fd, written: types::Size) {
        if self.opened.contains(&u32::from(fd)) {
            self.count_written(u64::from(written));
        }
    }
}

impl wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1 for GuardedWasi {
    fn set_hostcall_fuel(&mut self, fuel: usize) {
        self.hostcall_fuel = fuel;
        self.ctx.set_hostcall_fuel(fuel)
    }

    fn args_get(&mut self, memory: &mut GuestMemory<'_>, argv: GuestPtr<GuestPtr<u8>>, argv_buf: GuestPtr<u8>) -> Result<(), types::Error> {
        self.ctx.args_get(memory, argv, argv_buf)
    }

    fn args_sizes_get(&mut self, memory: &mut GuestMemory<'_>) -> Result<(types::Size, types::Size), types::Error> {
        self.ctx.args_sizes_get(memory)
    }

    fn environ_get(&mut self, memory: &mut GuestMemory<'_>, environ: GuestPtr<GuestPtr<u8>>, environ_buf: GuestPtr<u8>) -> Result<(), types::Error> {
        self.ctx.environ_get(memory, environ, environ_buf)
    }

    fn environ_sizes_get(&mut self, memory: &mut GuestMemory<'_>) -> Result<(types::Size, types::Size), types::Error> {
        self.ctx.environ_sizes_get(memory)
    }

    fn clock_res_get(&mut self, memory: &mut GuestMemory<'_>, id: types::Clockid) -> Result<types::Timestamp, types::Error> {
        self.ctx.clock_res_get(memory, id)
    }

    fn clock_time_get(&mut self, memory: &mut GuestMemory<'_>, id: types::Clockid, precision: types::Timestamp) -> Result<types::Timestamp, types::Error> {
        self.ctx.clock_time_get(memory, id, precision)
    }

    async fn fd_advise(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, offset: types::Filesize, len: types::Filesize, advice: types::Advice) -> Result<(), types::Error> {
        self.ctx.fd_advise(memory, fd, offset, len, advice).await
    }

    fn fd_allocate(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, offset: types::Filesize, len: types::Filesize) -> Result<(), types::Error> {
        self.ctx.fd_allocate(memory, fd, offset, len)
    }

    async fn fd_datasync(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<(), types::Error> {
        self.ctx.fd_datasync(memory, fd).await
    }

    async fn fd_fdstat_get(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Fdstat, types::Error> {
        self.ctx.fd_fdstat_get(memory, fd).await
    }

    fn fd_fdstat_set_flags(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, flags: types::Fdflags) -> Result<(), types::Error> {
        self.ctx.fd_fdstat_set_flags(memory, fd, flags)
    }

    fn fd_fdstat_set_rights(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, fs_rights_base: types::Rights, fs_rights_inheriting: types::Rights) -> Result<(), types::Error> {
        self.ctx.fd_fdstat_set_rights(memory, fd, fs_rights_base, fs_rights_inheriting)
    }

    async fn fd_filestat_get(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filestat, types::Error> {
        self.ctx.fd_filestat_get(memory, fd).await
    }

    async fn fd_filestat_set_times(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, atim: types::Timestamp, mtim: types::Timestamp, fst_flags: types::Fstflags) -> Result<(), types::Error> {
        self.ctx.fd_filestat_set_times(memory, fd, atim, mtim, fst_flags).await
    }

    async fn fd_read(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, iovs: types::IovecArray) -> Result<types::Size, types::Error> {
        let len = self.first_read_len(memory, iovs)?;
        self.exempt_data(memory, len);
        self.ctx.fd_read(memory, fd, iovs).await
    }

    async fn fd_pread(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, iovs: types::IovecArray, offset: types::Filesize) -> Result<types::Size, types::Error> {
        let len = self.first_read_len(memory, iovs)?;
        self.exempt_data(memory, len);
        self.ctx.fd_pread(memory, fd, iovs, offset).await
    }

    fn fd_prestat_get(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Prestat, types::Error> {
        self.ctx.fd_prestat_get(memory, fd)
    }

    fn fd_prestat_dir_name(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, path: GuestPtr<u8>, path_max_len: types::Size) -> Result<(), types::Error> {
        self.ctx.fd_prestat_dir_name(memory, fd, path, path_max_len)
    }

    async fn fd_seek(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, offset: types::Filedelta, whence: types::Whence) -> Result<types::Filesize, types::Error> {
        self.ctx.fd_seek(memory, fd, offset, whence).await
    }

    async fn fd_sync(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<(), types::Error> {
        self.ctx.fd_sync(memory, fd).await
    }

    fn fd_tell(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<types::Filesize, types::Error> {
        self.ctx.fd_tell(memory, fd)
    }

    async fn fd_readdir(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, buf: GuestPtr<u8>, buf_len: types::Size, cookie: types::Dircookie) -> Result<types::Size, types::Error> {
        match self.directories.get(u32::from(fd)) {
            Some(dir) => directories::list(dir, memory, buf, buf_len, cookie).await,
            None => match self.ctx.fd_fdstat_get(memory, fd).await?.fs_filetype {
                // A directory the sandbox could not open a handle to: not listed unbounded.
                types::Filetype::Directory => Err(types::Errno::Io.into()),
                _ => Err(types::Errno::Badf.into()),
            },
        }
    }

    async fn path_create_directory(&mut self, memory: &mut GuestMemory<'_>, dirfd: types::Fd, path: GuestPtr<str>) -> Result<(), types::Error> {
        self.before_new_entry()?;
        self.ctx.path_create_directory(memory, dirfd, path).await?;
        self.count_written(ENTRY_BYTES);
        Ok(())
    }

    async fn path_filestat_get(&mut self, memory: &mut GuestMemory<'_>, dirfd: types::Fd, flags: types::Lookupflags, path: GuestPtr<str>) -> Result<types::Filestat, types::Error> {
        self.ctx.path_filestat_get(memory, dirfd, flags, path).await
    }

    async fn path_filestat_set_times(&mut self, memory: &mut GuestMemory<'_>, dirfd: types::Fd, flags: types::Lookupflags, path: GuestPtr<str>, atim: types::Timestamp, mtim: types::Timestamp, fst_flags: types::Fstflags) -> Result<(), types::Error> {
        self.ctx.path_filestat_set_times(memory, dirfd, flags, path, atim, mtim, fst_flags).await
    }

    async fn path_link(&mut self, memory: &mut GuestMemory<'_>, src_fd: types::Fd, src_flags: types::Lookupflags, src_path: GuestPtr<str>, target_fd: types::Fd, target_path: GuestPtr<str>) -> Result<(), types::Error> {
        self.before_new_entry()?;
        self.ctx.path_link(memory, src_fd, src_flags, src_path, target_fd, target_path).await?;
        self.count_written(ENTRY_BYTES);
        Ok(())
    }

    async fn path_readlink(&mut self, memory: &mut GuestMemory<'_>, dirfd: types::Fd, path: GuestPtr<str>, buf: GuestPtr<u8>, buf_len: types::Size) -> Result<types::Size, types::Error> {
        self.ctx.path_readlink(memory, dirfd, path, buf, buf_len).await
    }

    async fn path_remove_directory(&mut self, memory: &mut GuestMemory<'_>, dirfd: types::Fd, path: GuestPtr<str>) -> Result<(), types::Error> {
        self.ctx.path_remove_directory(memory, dirfd, path).await
    }

    async fn path_rename(&mut self, memory: &mut GuestMemory<'_>, src_fd: types::Fd, src_path: GuestPtr<str>, dest_fd: types::Fd, dest_path: GuestPtr<str>) -> Result<(), types::Error> {
        self.ctx.path_rename(memory, src_fd, src_path, dest_fd, dest_path).await
    }

    async fn path_symlink(&mut self, memory: &mut GuestMemory<'_>, src_path: GuestPtr<str>, dirfd: types::Fd, dest_path: GuestPtr<str>) -> Result<(), types::Error> {
        self.before_new_entry()?;
        self.ctx.path_symlink(memory, src_path, dirfd, dest_path).await?;
        self.count_written(ENTRY_BYTES);
        Ok(())
    }

    async fn path_unlink_file(&mut self, memory: &mut GuestMemory<'_>, dirfd: types::Fd, path: GuestPtr<str>) -> Result<(), types::Error> {
        self.ctx.path_unlink_file(memory, dirfd, path).await
    }

    async fn poll_oneoff(&mut self, memory: &mut GuestMemory<'_>, subs: GuestPtr<types::Subscription>, events: GuestPtr<types::Event>, nsubscriptions: types::Size) -> Result<types::Size, types::Error> {
        // One relative clock subscription is a sleep, which wasmtime-wasi (with blocking on this
        // thread allowed, as it is here for file I/O) would do with `std::thread::sleep`, past
        // the deadline: here it is a sleep the deadline abandons.
        if nsubscriptions == 1 {
            let sub = memory.read(subs)?;
            if let types::SubscriptionU::Clock(clock) = sub.u
                && !clock.flags.contains(types::Subclockflags::SUBSCRIPTION_CLOCK_ABSTIME)
            {
                tokio::time::sleep(std::time::Duration::from_nanos(clock.timeout)).await;
                let event = types::Event {
                    userdata: sub.userdata,
                    error: types::Errno::Success,
                    type_: types::Eventtype::Clock,
                    fd_readwrite: types::EventFdReadwrite { flags: types::Eventrwflags::empty(), nbytes: 1 },
                };
                memory.write(events, event)?;
                return Ok(1);
            }
        }
        // wasmtime-wasi keeps a pollable, a future and an event for each subscription while it
        // polls (about 550 bytes each, measured: 490,000 of them took 268 MiB): charged first.
        let held = u64::from(nsubscriptions).saturating_mul(POLL_SUBSCRIPTION_COST);
        self.budget.charge(held, "poll subscriptions").map_err(|fault| types::Error::trap(wasmtime::Error::new(fault)))?;
        let polled = self.ctx.poll_oneoff(memory, subs, events, nsubscriptions).await;
        self.budget.release(held);
        polled
    }

    fn proc_exit(&mut self, memory: &mut GuestMemory<'_>, status: types::Exitcode) -> wasmtime::Error {
        self.ctx.proc_exit(memory, status)
    }

    fn proc_raise(&mut self, memory: &mut GuestMemory<'_>, sig: types::Signal) -> Result<(), types::Error> {
        self.ctx.proc_raise(memory, sig)
    }

    fn sched_yield(&mut self, memory: &mut GuestMemory<'_>) -> Result<(), types::Error> {
        self.ctx.sched_yield(memory)
    }

    fn random_get(&mut self, memory: &mut GuestMemory<'_>, buf: GuestPtr<u8>, buf_len: types::Size) -> Result<(), types::Error> {
        // wasmtime-wasi fills a host buffer as long as the request before copying it in (64 MiB
        // for a plugin that asks for that much): here a chunk at a time, straight into the
        // plugin's memory, which the plugin already pays for.
        let mut chunk = [0u8; RANDOM_CHUNK as usize];
        let mut done = 0;
        while done < buf_len {
            let n = (buf_len - done).min(RANDOM_CHUNK);
            let bytes = &mut chunk[..n as usize];
            getrandom::fill(bytes).map_err(|e| types::Error::trap(wasmtime::Error::msg(format!("no random bytes: {e}"))))?;
            memory.copy_from_slice(bytes, buf.add(done)?.as_array(n))?;
            done += n;
        }
        Ok(())
    }

    fn sock_accept(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, flags: types::Fdflags) -> Result<types::Fd, types::Error> {
        self.ctx.sock_accept(memory, fd, flags)
    }

    fn sock_recv(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, ri_data: types::IovecArray, ri_flags: types::Riflags) -> Result<(types::Size, types::Roflags), types::Error> {
        self.ctx.sock_recv(memory, fd, ri_data, ri_flags)
    }

    fn sock_send(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, si_data: types::CiovecArray, si_flags: types::Siflags) -> Result<types::Size, types::Error> {
        self.ctx.sock_send(memory, fd, si_data, si_flags)
    }

    fn sock_shutdown(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, how: types::Sdflags) -> Result<(), types::Error> {
        self.ctx.sock_shutdown(memory, fd, how)
    }

    async fn fd_write(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, ciovs: types::CiovecArray) -> Result<types::Size, types::Error> {
        let len = self.first_buffer_len(memory, ciovs)?;
        self.before_write(fd, len)?;
        self.exempt_data(memory, len);
        let written = self.ctx.fd_write(memory, fd, ciovs).await?;
        self.after_write(fd, written);
        Ok(written)
    }

    async fn fd_pwrite(
        &mut self,
        memory: &mut GuestMemory<'_>,
        fd: types::Fd,
        ciovs: types::CiovecArray,
        offset: types::Filesize,
    ) -> Result<types::Size, types::Error> {
        let len = self.first_buffer_len(memory, ciovs)?;
        self.before_write(fd, len)?;
        self.exempt_data(memory, len);
        let written = self.ctx.fd_pwrite(memory, fd, ciovs, offset).await?;
        self.after_write(fd, written);
        Ok(written)
    }

    async fn fd_filestat_set_size(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd, size: types::Filesize) -> Result<(), types::Error> {
        // Growing a file counts as writing the bytes it grows by (they may be allocated).
        let current = self.ctx.fd_filestat_get(memory, fd).await?.size;
        let growth = size.saturating_sub(current);
        if growth > self.quota_left() {
            self.quota_reached = true;
            return Err(types::Errno::Nospc.into());
        }
        self.ctx.fd_filestat_set_size(memory, fd, size).await?;
        self.count_written(growth);
        Ok(())
    }

    async fn path_open(
        &mut self,
        memory: &mut GuestMemory<'_>,
        dirfd: types::Fd,
        dirflags: types::Lookupflags,
        path: GuestPtr<str>,
        oflags: types::Oflags,
        fs_rights_base: types::Rights,
        fs_rights_inheriting: types::Rights,
        fdflags: types::Fdflags,
    ) -> Result<types::Fd, types::Error> {
        // What the path names now, resolved as the open will resolve it: opening a FIFO blocks
        // until a writer comes, and devices and sockets are not files a plugin was granted.
        // Not there (yet): the open itself decides, with O_CREAT or an error.
        let existed = self.ctx.path_filestat_get(memory, dirfd, dirflags, path).await.ok();
        if let Some(stat) = &existed
            && !matches!(
                stat.filetype,
                types::Filetype::RegularFile | types::Filetype::Directory | types::Filetype::SymbolicLink
            )
        {
            return Err(types::Errno::Acces.into());
        }
        // A file the open creates takes a directory entry and an inode: it counts as written.
        let creates = oflags.contains(types::Oflags::CREAT) && existed.is_none();
        if creates {
            self.before_new_entry()?;
        }
        self.budget.charge(DESCRIPTOR_COST, "an open descriptor").map_err(|_| types::Error::from(types::Errno::Nfile))?;
        match self.ctx.path_open(memory, dirfd, dirflags, path, oflags, fs_rights_base, fs_rights_inheriting, fdflags).await {
            Ok(fd) => {
                self.opened.insert(u32::from(fd));
                if existed.is_some_and(|stat| stat.filetype == types::Filetype::Directory) {
                    let follow = dirflags.contains(types::Lookupflags::SYMLINK_FOLLOW);
                    let path = memory.as_cow_str(path)?;
                    self.directories.opened(u32::from(fd), u32::from(dirfd), &path, follow);
                }
                if creates {
                    self.count_written(ENTRY_BYTES);
                }
                Ok(fd)
            }
            Err(error) => {
                self.budget.release(DESCRIPTOR_COST);
                Err(error)
            }
        }
    }

    async fn fd_close(&mut self, memory: &mut GuestMemory<'_>, fd: types::Fd) -> Result<(), types::Error> {
        self.ctx.fd_close(memory, fd).await?;
        let fd = u32::from(fd);
        if self.opened.remove(&fd) {
            self.budget.release(DESCRIPTOR_COST);
        }
        self.directories.closed(fd);
        self.stdio_fds.iter_mut().filter(|s| **s == Some(fd)).for_each(|s| *s = None);
        Ok(())
    }

    async fn fd_renumber(&mut self, memory: &mut GuestMemory<'_>, from: types::Fd, to: types::Fd) -> Result<(), types::Error> {
        self.ctx.fd_renumber(memory, from, to).await?;
        let (from, to) = (u32::from(from), u32::from(to));
        if from == to {
            return Ok(());
        }
        // `to` was closed and now is `from`'s descriptor, whatever each was.
        if self.opened.remove(&to) {
            self.budget.release(DESCRIPTOR_COST);
        }
        if self.opened.remove(&from) {
            self.opened.insert(to);
        }
        self.directories.renumbered(from, to);
        for stream in &mut self.stdio_fds {
            *stream = match *stream {
                Some(fd) if fd == to => None,
                Some(fd) if fd == from => Some(to),
                other => other,
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;

    /// Runs `list` over a fresh memory, the buffer at offset 64; returns its result (or errno)
    /// and the memory.
    fn listing<F>(list: F) -> (Result<u32, String>, Vec<u8>)
    where
        F: AsyncFnOnce(&mut GuestMemory<'_>, GuestPtr<u8>) -> Result<types::Size, types::Error>,
    {
        let mut bytes = vec![0xa5u8; 8192];
        let result = {
            let mut memory = GuestMemory::Unshared(&mut bytes);
            RUNTIME.block_on(list(&mut memory, GuestPtr::new(64)))
        };
        (result.map_err(|e| format!("{:?}", e.downcast())), bytes)
    }

    /// A context that cannot be made (a granted directory that is gone) holds nothing of the
    /// budget; one that is made holds the input until it is dropped.
    #[test]
    fn a_context_not_made_gives_the_input_back() {
        let gone = FsGrant { host: "/nonexistent/stockade-test".into(), guest: "/d".into(), mode: FsMode::Ro };
        let setup = WasiSetup { preopens: vec![(gone, FsMode::Ro)], written_total: Arc::default(), quota_call: 0, quota_total: 0 };
        let budget = MemoryBudget::standalone(1 << 20);
        assert!(setup.context(b"some input", 1 << 20, budget.clone()).is_err());
        assert_eq!(budget.in_use(), 0);
        let setup = WasiSetup { preopens: Vec::new(), written_total: Arc::default(), quota_call: 0, quota_total: 0 };
        let made = setup.context(b"some input", 1 << 20, budget.clone()).unwrap();
        assert_eq!(budget.in_use(), 10);
        drop(made);
        assert_eq!(budget.in_use(), 0);
    }

    /// The sandbox's own `fd_readdir` writes exactly what wasmtime-wasi's does, byte for byte
    /// (entries, order, cookies, inode numbers, the cut at the end of the buffer, errors), for
    /// a directory of files, a subdirectory, links (one dangling) and a FIFO, at every cookie
    /// and buffer sizes around an entry's.
    #[test]
    fn the_listing_is_wasmtime_wasis() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.txt", "bb", "a-much-longer-name-than-the-others.json"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/nowhere", dir.path().join("dangling")).unwrap();
        let fifo = std::ffi::CString::new(dir.path().join("fifo").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let grant = FsGrant { host: dir.path().display().to_string(), guest: "/d".into(), mode: FsMode::Ro };
        let setup = WasiSetup { preopens: vec![(grant, FsMode::Ro)], written_total: Arc::default(), quota_call: 0, quota_total: 0 };
        let budget = MemoryBudget::new(64 << 20, Arc::default());
        let (mut guarded, _stdio) = setup.context(b"", 1 << 20, budget).unwrap();
        let mut compared = 0;
        for fd in [3u32, 0, 1, 9] {
            for cookie in 0..12u64 {
                for len in [0u32, 1, 8, 23, 24, 25, 30, 33, 64, 100, 200, 4096] {
                    let ours = listing(async |m: &mut GuestMemory<'_>, buf| guarded.fd_readdir(m, fd.into(), buf, len, cookie).await);
                    let theirs = listing(async |m: &mut GuestMemory<'_>, buf| guarded.ctx.fd_readdir(m, fd.into(), buf, len, cookie).await);
                    assert_eq!(ours.0, theirs.0, "fd {fd}, cookie {cookie}, {len} bytes");
                    assert!(ours.1 == theirs.1, "fd {fd}, cookie {cookie}, {len} bytes: the memory differs");
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 4 * 12 * 12);
    }
}
