//! The sentry's top level: the task tables, the scheduler, and the loop
//! that runs tasks on the platform until the container's init exits.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;

use log::{debug, info};

use crate::abi::linux::{RLIMIT_NOFILE, RLIMIT_STACK, RLIM_INFINITY, RLIM_NLIMITS};
use crate::abi::{Errno, KResult, UserRegs};
use crate::boot::{BootParams, ExitStatus};
use crate::fs::{FdTable, File};
use crate::mm::{FrameAllocator, MmStruct};
use crate::platform::{Clock, Platform, HOST_STDERR, HOST_STDIN, HOST_STDOUT};
use crate::syscalls;
use crate::task::{
    Credentials, MmId, Restart, SigHand, Task, TaskState, ThreadGroup, Tid, WaitKey,
};

/// Counters for the debug log at exit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub syscalls: u64,
    pub faults: u64,
    pub interrupts: u64,
    pub switches: u64,
    /// Time in user mode (switch to trap), in system calls and in faults.
    pub user_ns: u64,
    pub syscall_ns: u64,
    pub fault_ns: u64,
    /// Reads of root-image files served whole by the page cache, and
    /// those that asked the host.
    pub cached_reads: u64,
    pub host_reads: u64,
    /// System call sites patched (see `mm::usertrap`), and faults on the
    /// invalid opcode a patch leaves that restarted a call.
    pub patched_sites: u64,
    pub patch_restarts: u64,
}

/// An address space and how many tasks use it.
#[derive(Debug)]
pub struct MmEntry<P: Platform> {
    pub mm: MmStruct<P>,
    pub users: u32,
    /// CPUs that have it loaded (see `Kernel::cpu_mm`): it lives on,
    /// emptied, until the last of them has switched away.
    pub cpus: u64,
}

/// The sentry's state for one sandbox.
#[derive(Debug)]
pub struct Kernel<'p, P: Platform> {
    pub plat: &'p P,
    pub frames: FrameAllocator,
    pub tasks: BTreeMap<Tid, Task<P>>,
    pub groups: BTreeMap<Tid, ThreadGroup>,
    pub mms: BTreeMap<MmId, MmEntry<P>>,
    next_mm: MmId,
    next_tid: Tid,
    /// Tasks ready to run, in order.
    pub runq: VecDeque<Tid>,
    /// Deadlines of blocked tasks: (monotonic ns, tid).
    pub(crate) timers: BTreeMap<(u64, Tid), ()>,
    /// `ITIMER_REAL` per thread group: (next expiry, interval), in ns.
    pub alarms: BTreeMap<Tid, (u64, u64)>,
    /// POSIX timers (`timer_create`).
    pub ptimers: syscalls::timer::PosixTimers,
    wait_seq: u64,
    /// The task whose syscall is being served.
    pub cur: Tid,
    pub hostname: Vec<u8>,
    /// Monotonic time at boot.
    pub boot_ns: u64,
    /// Set when the container's init has ended.
    pub init_exit: Option<ExitStatus>,
    /// Set by `sched_yield`: the current task goes to the back of the queue.
    pub yield_now: bool,
    /// The program the loader last loaded (a script's interpreter).
    pub last_exe: Vec<u8>,
    /// The file namespace of the current task's pod container
    /// (`ThreadGroup::root`); see [`Kernel::enter_root`].
    pub vfs: crate::fs::vfs::Vfs,
    /// The other pod containers' file namespaces, by root number.
    other_vfs: BTreeMap<u32, crate::fs::vfs::Vfs>,
    /// Each pod container's first process (root number → tgid): the
    /// target of a host signal for its "init".
    pub container_init: BTreeMap<u32, Tid>,
    pub stats: Stats,
    /// The vDSO's frames, set up by the loader on first use.
    pub vdso: crate::loader::vdso::VdsoState,
    /// Each session's terminal foreground process group (`tcsetpgrp`);
    /// the session leader's group until set.
    pub tty_fg: BTreeMap<Tid, Tid>,
    /// Advisory file locks.
    pub locks: crate::fs::lock::LockTable,
    /// The CPU that holds the kernel lock.
    pub cpu: usize,
    /// The address space each CPU has loaded, pinned by `MmEntry::cpus`.
    pub cpu_mm: [Option<MmId>; crate::sched::MAX_CPUS],
    /// CPUs idling for want of work (woken when some turns up).
    pub idle_cpus: u64,
    /// Whether the platform was asked to bring up the other CPUs.
    pub cpus_started: bool,
    /// A task was created since the last look for an idle CPU.
    pub new_work: bool,
    /// Since when the run queue has not been empty (monotonic ns).
    pub runq_since: Option<u64>,
}

/// How long the scheduler lets a task run while others are runnable.
///
/// The platforms' timer interrupts only preempt a task that stays in user
/// mode (ptrace's ticker interrupts a single switch that outlived its own
/// slice), so the sentry keeps the time itself: a task that traps all the
/// time without ever blocking, like a loop of `poll` calls that always find
/// something ready or of `waitpid(WNOHANG)`, would otherwise hold the CPU
/// for ever, and the tasks it waits for (and every timer) with it.
pub const SLICE_NS: u64 = 10_000_000;

/// The internal errno a handler returns after `Kernel::block`.
pub const BLOCKED: Errno = Errno(530);

impl<'p, P: Platform> Kernel<'p, P> {
    pub(crate) fn new(plat: &'p P, params: &BootParams) -> Self {
        let (base, len) = plat.phys_range();
        crate::fs::filedata::set_limit(plat.tmpfs_limit());
        crate::fs::set_file_max(plat.tmpfs_limit());
        // Pipe buffers: an eighth of the kernel's memory (on KVM, 16 MiB of
        // a 128 MiB heap, 256 full pipes) before each is cut to a page.
        crate::fs::pipe::PIPE_BUDGET
            .set_limit(usize::try_from(plat.tmpfs_limit() / 4).unwrap_or(usize::MAX));
        Kernel {
            plat,
            frames: FrameAllocator::new(base, len),
            tasks: BTreeMap::new(),
            groups: BTreeMap::new(),
            mms: BTreeMap::new(),
            next_mm: 1,
            next_tid: 1,
            runq: VecDeque::new(),
            timers: BTreeMap::new(),
            alarms: BTreeMap::new(),
            ptimers: Default::default(),
            wait_seq: 0,
            cur: 1,
            hostname: params.hostname.clone(),
            boot_ns: plat.now(Clock::Monotonic),
            init_exit: None,
            yield_now: false,
            last_exe: Vec::new(),
            vfs: {
                let mut vfs = crate::fs::vfs::Vfs::default();
                vfs.readonly = params.root_readonly;
                for m in &params.tmpfs_mounts {
                    vfs.mount_tmpfs(&crate::syscalls::dir::normalize(m));
                }
                for (m, writable) in &params.bind_mounts {
                    vfs.mount_bind(&crate::syscalls::dir::normalize(m), *writable);
                }
                vfs
            },
            other_vfs: BTreeMap::new(),
            container_init: BTreeMap::new(),
            stats: Stats::default(),
            vdso: Default::default(),
            tty_fg: BTreeMap::new(),
            locks: Default::default(),
            cpu: 0,
            cpu_mm: [None; crate::sched::MAX_CPUS],
            idle_cpus: 0,
            cpus_started: false,
            new_work: false,
            runq_since: None,
        }
    }

    /// Create init's thread group and load its program.
    pub(crate) fn start(&mut self, params: &BootParams) -> Result<(), ExitStatus> {
        let platform_failed =
            |e: crate::platform::PlatformError| ExitStatus::PlatformFailed(format!("{e}"));
        let mut space = self.plat.new_address_space().map_err(platform_failed)?;
        let thread = self.plat.new_thread(&mut space).map_err(platform_failed)?;
        let mm = self.add_mm(MmStruct::new(space, self.plat.max_user_address()));
        let tid = self.alloc_tid();
        let mut rlimits = [(RLIM_INFINITY, RLIM_INFINITY); RLIM_NLIMITS as usize];
        rlimits[RLIMIT_STACK as usize] = (8 << 20, RLIM_INFINITY);
        rlimits[RLIMIT_NOFILE as usize] = (1024, 4096);
        for &(r, soft, hard) in &params.rlimits {
            if let Some(slot) = rlimits.get_mut(r as usize) {
                *slot = (soft.min(hard), hard);
            }
        }
        let mut fds = FdTable::default();
        for (fd, h) in [(0, HOST_STDIN), (1, HOST_STDOUT), (2, HOST_STDERR)] {
            // The budget holds three descriptors for the first process.
            let _ = fds.install_at(fd, Arc::new(File::HostStream { handle: h }), false);
        }
        let creds = Credentials {
            uid: params.uid,
            euid: params.uid,
            gid: params.gid,
            egid: params.gid,
        };
        self.groups.insert(
            tid,
            ThreadGroup {
                tgid: tid,
                parent: 0,
                pgid: tid,
                sid: tid,
                threads: alloc::vec![tid],
                children: Vec::new(),
                sighand: SigHand::default(),
                pending: 0,
                siginfo: BTreeMap::new(),
                creds,
                fds,
                cwd: if params.cwd.is_empty() {
                    b"/".to_vec()
                } else {
                    params.cwd.clone()
                },
                exe_path: Vec::new(),
                cmdline: crate::syscalls::process::nul_joined(&params.args),
                environ: crate::syscalls::process::nul_joined(&params.env),
                rlimits,
                umask: 0o022,
                exit_signal: 0,
                group_exit: None,
                zombie: None,
                exec_id: None,
                root: 0,
                job: Default::default(),
            },
        );
        self.tasks.insert(tid, Task::new(tid, tid, mm, thread));
        self.cur = tid;
        let name = params.args.first().cloned().unwrap_or_default();
        let cwd = self.group().cwd.clone();
        let loaded = self
            .resolve_program(&name, &params.env, &cwd)
            .and_then(|path| {
                let entry = self.load_program(mm, &path, &params.args, &params.env)?;
                Ok((path, entry))
            });
        match loaded {
            Ok((path, entry)) => {
                info!(
                    "init {} entry {:#x} sp {:#x}",
                    core::str::from_utf8(&path).unwrap_or("?"),
                    entry.rip,
                    entry.rsp
                );
                let _ = path;
                self.group_mut().exe_path = core::mem::take(&mut self.last_exe);
                self.cur_mut().regs = UserRegs::new_user(entry.rip, entry.rsp);
                self.runq.push_back(tid);
                Ok(())
            }
            Err(e) => Err(ExitStatus::ExecFailed {
                path: name,
                errno: e.errno,
                reason: e.reason,
            }),
        }
    }

    pub fn alloc_tid(&mut self) -> Tid {
        let tid = self.next_tid;
        self.next_tid += 1;
        tid
    }

    pub fn add_mm(&mut self, mm: MmStruct<P>) -> MmId {
        let id = self.next_mm;
        self.next_mm += 1;
        self.mms.insert(
            id,
            MmEntry {
                mm,
                users: 1,
                cpus: 0,
            },
        );
        id
    }

    /// Drop one user of an address space; the last one tears it down.
    pub fn put_mm(&mut self, id: MmId) {
        let Some(e) = self.mms.get_mut(&id) else {
            return;
        };
        e.users -= 1;
        if e.users == 0 {
            self.free_mm_if_unused(id);
        }
    }

    /// Tear down an address space no task uses, once no CPU has it
    /// loaded: this one switches away now, the others are kicked and do it
    /// the next time they hold the lock (`sched::drop_dead_mm`).
    pub(crate) fn free_mm_if_unused(&mut self, id: MmId) {
        let me = self.cpu;
        let Some(e) = self.mms.get_mut(&id) else {
            return;
        };
        if e.users != 0 {
            return;
        }
        if e.cpus & (1 << me) != 0 {
            self.plat.unload_space();
            e.cpus &= !(1 << me);
            self.cpu_mm[me] = None;
        }
        if e.cpus != 0 {
            for c in 0..crate::sched::MAX_CPUS {
                if e.cpus & (1 << c) != 0 {
                    self.plat.kick_cpu(c);
                }
            }
            return;
        }
        if let Some(mut e) = self.mms.remove(&id) {
            e.mm.teardown(self.plat, &mut self.frames);
            self.frames.shared_collect(self.plat);
        }
    }

    /// Make task `tid` notice a change soon if it runs on another CPU.
    pub fn kick_task(&self, tid: Tid) {
        if let Some(c) = self.tasks.get(&tid).and_then(|t| t.on_cpu) {
            if c != self.cpu {
                self.plat.kick_cpu(c);
            }
        }
    }

    /// The current task.
    pub fn cur(&self) -> &Task<P> {
        self.tasks.get(&self.cur).expect("current task exists")
    }

    pub fn cur_mut(&mut self) -> &mut Task<P> {
        self.tasks.get_mut(&self.cur).expect("current task exists")
    }

    /// The current thread group.
    pub fn group(&self) -> &ThreadGroup {
        let tgid = self.cur().tgid;
        self.groups.get(&tgid).expect("current group exists")
    }

    pub fn group_mut(&mut self) -> &mut ThreadGroup {
        let tgid = self.cur().tgid;
        self.groups.get_mut(&tgid).expect("current group exists")
    }

    /// The current address space, with the frame allocator and platform.
    pub fn mm_parts(&mut self) -> (&mut MmStruct<P>, &mut FrameAllocator, &'p P) {
        let id = self.cur().mm;
        let mm = &mut self.mms.get_mut(&id).expect("current mm exists").mm;
        (mm, &mut self.frames, self.plat)
    }

    /// Park the current task on `key` until woken, a signal, or `deadline`.
    /// The handler then returns `Err(BLOCKED)`; the call is retried on wake.
    pub fn block(&mut self, key: WaitKey, deadline: Option<u64>) -> Errno {
        self.wait_seq += 1;
        let seq = self.wait_seq;
        let tid = self.cur;
        let t = self.cur_mut();
        let nr = t.regs.orig_rax;
        t.state = TaskState::Blocked { key, seq };
        let mut r = t.restart.unwrap_or(Restart {
            nr,
            deadline: None,
            saved_mask: None,
            interrupted: false,
            timed_out: false,
        });
        r.deadline = deadline;
        t.restart = Some(r);
        if let Some(d) = deadline {
            self.timers.insert((d, tid), ());
        }
        // A signal that is already pending and not blocked (sigsuspend and
        // the p* calls change the mask just before they sleep; on another
        // CPU it may have come in between) interrupts the sleep at once, as
        // Linux's `signal_pending` check before it schedules.
        let t = self.cur();
        let pending = t.sig.pending | self.group().pending;
        if pending & (!t.sig.blocked | t.sigwait) != 0 {
            if let Some(r) = self.cur_mut().restart.as_mut() {
                r.interrupted = true;
            }
            self.make_runnable(tid);
        }
        BLOCKED
    }

    /// Block without retrying: the call already has its result (vfork).
    pub fn block_done(&mut self, key: WaitKey) {
        self.wait_seq += 1;
        let seq = self.wait_seq;
        self.cur_mut().state = TaskState::Blocked { key, seq };
    }

    /// The deadline of the call being retried, or a new one `ns` from now.
    pub fn deadline_after(&self, ns: u64) -> u64 {
        match self.cur().restart {
            Some(Restart {
                deadline: Some(d), ..
            }) => d,
            _ => self.plat.now(Clock::Monotonic).saturating_add(ns),
        }
    }

    /// Whether the call being retried has timed out.
    pub fn timed_out(&self) -> bool {
        matches!(
            self.cur().restart,
            Some(Restart {
                timed_out: true,
                ..
            })
        )
    }

    /// Make a blocked task runnable (a stopped one waits for SIGCONT).
    pub fn make_runnable(&mut self, tid: Tid) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            if matches!(t.state, TaskState::Blocked { .. }) {
                t.state = TaskState::Runnable;
                if let Some(d) = t.restart.and_then(|r| r.deadline) {
                    self.timers.remove(&(d, tid));
                }
                self.runq.push_back(tid);
            }
        }
    }

    /// Wake up to `max` tasks blocked on `key`, oldest first.
    pub fn wake(&mut self, key: WaitKey, max: usize) -> usize {
        if matches!(key, WaitKey::Pipe(_)) {
            // Pollers wait on every file at once.
            self.wake_exact(WaitKey::Poll, usize::MAX);
        }
        self.wake_exact(key, max)
    }

    fn wake_exact(&mut self, key: WaitKey, max: usize) -> usize {
        let mut waiters: Vec<(u64, Tid)> = self
            .tasks
            .values()
            .filter_map(|t| match t.state {
                TaskState::Blocked { key: k, seq } if k == key => Some((seq, t.tid)),
                _ => None,
            })
            .collect();
        waiters.sort_unstable();
        let n = waiters.len().min(max);
        for (_, tid) in waiters.into_iter().take(n) {
            self.make_runnable(tid);
        }
        n
    }

    /// Make `vfs` the file namespace of pod container `root`, creating it
    /// on first use (a fresh overlay over the host's root number `root`).
    /// Tasks of one container run one after the other, so this is a swap
    /// when the scheduler changes containers, nothing otherwise.
    pub fn enter_root(&mut self, root: u32) {
        if self.vfs.root == root {
            return;
        }
        let next = self
            .other_vfs
            .remove(&root)
            .unwrap_or_else(|| crate::fs::vfs::Vfs::for_root(root));
        let prev = core::mem::replace(&mut self.vfs, next);
        self.other_vfs.insert(prev.root, prev);
    }

    /// Start a process the host asked for (`exec`): a new process beside
    /// init, with its own stdio, whose exit is reported back.
    fn spawn_exec(&mut self, req: crate::boot::ExecRequest) {
        let id = req.id;
        let plat = self.plat;
        let fail = |k: &mut Self, code: i32| {
            for h in req.stdio {
                crate::platform::HostOps::close(plat.host(), crate::platform::HostHandle(h));
            }
            k.plat.exec_exited(id, code);
        };
        let Some(init) = self.groups.get(&1) else {
            return fail(self, 255);
        };
        let (rlimits, umask) = (init.rlimits, init.umask);
        let Ok(mut space) = self.plat.new_address_space() else {
            return fail(self, 255);
        };
        let Ok(thread) = self.plat.new_thread(&mut space) else {
            return fail(self, 255);
        };
        let mm = self.add_mm(MmStruct::new(space, self.plat.max_user_address()));
        let tid = self.alloc_tid();
        let mut fds = FdTable::default();
        for (fd, h) in req.stdio.iter().enumerate() {
            let handle = crate::platform::HostHandle(*h);
            if fds
                .install_at(fd as i32, Arc::new(File::HostStream { handle }), false)
                .is_err()
            {
                log::warn!("exec: no descriptor left for stdio {fd}");
            }
        }
        let cwd = if req.cwd.is_empty() {
            b"/".to_vec()
        } else {
            crate::syscalls::dir::normalize(&req.cwd)
        };
        self.groups.insert(
            tid,
            ThreadGroup {
                tgid: tid,
                parent: 0,
                pgid: tid,
                sid: tid,
                threads: alloc::vec![tid],
                children: Vec::new(),
                sighand: SigHand::default(),
                pending: 0,
                siginfo: BTreeMap::new(),
                creds: Credentials {
                    uid: req.uid,
                    euid: req.uid,
                    gid: req.gid,
                    egid: req.gid,
                },
                fds,
                cwd: cwd.clone(),
                exe_path: Vec::new(),
                cmdline: crate::syscalls::process::nul_joined(&req.args),
                environ: crate::syscalls::process::nul_joined(&req.env),
                rlimits,
                umask,
                exit_signal: 0,
                group_exit: None,
                zombie: None,
                exec_id: Some(id),
                root: req.root,
                job: Default::default(),
            },
        );
        self.tasks.insert(tid, Task::new(tid, tid, mm, thread));
        let saved = self.cur;
        self.cur = tid;
        self.enter_root(req.root);
        let name = req.args[0].clone();
        let loaded = self
            .resolve_program(&name, &req.env, &cwd)
            .and_then(|path| {
                self.load_program(mm, &path, &req.args, &req.env)
                    .map(|e| (path, e))
            });
        match loaded {
            Ok((_, entry)) => {
                let exe = core::mem::take(&mut self.last_exe);
                self.group_mut().exe_path = exe;
                self.cur_mut().regs = UserRegs::new_user(entry.rip, entry.rsp);
                self.runq.push_back(tid);
                if req.root != 0 {
                    self.container_init.entry(req.root).or_insert(tid);
                }
                debug!("exec {id}: pid {tid} in container {}", req.root);
            }
            Err(e) => {
                debug!("exec {id}: cannot start: {:?} {}", e.errno, e.reason);
                // Tear down quietly; the exit code says why, as a shell would.
                let code = if e.errno == crate::abi::Errno::ENOENT {
                    127
                } else {
                    126
                };
                let why = match e.errno {
                    crate::abi::Errno::ENOENT => "no such file or directory",
                    crate::abi::Errno::EACCES => "permission denied",
                    crate::abi::Errno::ENOEXEC => "exec format error",
                    _ => e.reason,
                };
                let msg = alloc::format!(
                    "ringfence: exec \"{}\": {why}\n",
                    alloc::string::String::from_utf8_lossy(&name)
                );
                let _ = crate::platform::HostOps::write(
                    self.plat.host(),
                    crate::platform::HostHandle(req.stdio[2]),
                    msg.as_bytes(),
                );
                crate::task::exit::release_task(self, tid);
                if let Some(mut g) = self.groups.remove(&tid) {
                    let files: Vec<_> = g.fds.drain().collect();
                    for f in files {
                        syscalls::io::release_file(self, f.file);
                    }
                }
                self.plat.exec_exited(id, code);
            }
        }
        self.cur = saved;
    }

    /// Deliver signals sent from outside the sandbox.
    pub(crate) fn take_host_signals(&mut self) {
        while let Some(req) = self.plat.take_exec() {
            self.spawn_exec(req);
        }
        while let Some(hs) = self.plat.take_host_signal() {
            if !crate::task::signal::valid(hs.sig) {
                continue;
            }
            let targets = crate::task::pod::host_signal_targets(self, &hs);
            debug!("host signal {} for {:?}", hs.sig, targets);
            let info = crate::task::SigInfo {
                signo: hs.sig,
                code: if hs.exec || hs.pid == crate::platform::HostSignal::FOREGROUND {
                    0x80 // SI_KERNEL, as the terminal's
                } else {
                    crate::task::SI_USER
                },
                ..Default::default()
            };
            for t in targets {
                crate::task::frame::send_to_group(self, t, hs.sig, info);
                if hs.sig == crate::abi::linux::SIGSTOP {
                    crate::task::stop::stop_now(self, t);
                }
            }
        }
    }

    pub(crate) fn fire_timers(&mut self) {
        if self.timers.is_empty() && self.alarms.is_empty() && self.ptimers.is_empty() {
            return;
        }
        let now = self.plat.now(Clock::Monotonic);
        syscalls::timer::fire(self, now);
        let due: Vec<(Tid, u64, u64)> = self
            .alarms
            .iter()
            .filter(|(_, (d, _))| *d <= now)
            .map(|(t, (d, i))| (*t, *d, *i))
            .collect();
        for (tgid, deadline, interval) in due {
            match (now - deadline).checked_div(interval) {
                // Skip the periods that passed unseen, as an overrun.
                Some(missed) => {
                    let next = deadline.saturating_add((missed + 1).saturating_mul(interval));
                    self.alarms.insert(tgid, (next, interval));
                }
                None => {
                    self.alarms.remove(&tgid);
                }
            }
            let info = crate::task::SigInfo {
                signo: crate::abi::linux::SIGALRM,
                code: 0x80, // SI_KERNEL
                ..Default::default()
            };
            crate::task::frame::send_to_group(self, tgid, crate::abi::linux::SIGALRM, info);
        }
        while let Some(&(d, tid)) = self.timers.keys().next() {
            if d > now {
                break;
            }
            self.timers.remove(&(d, tid));
            if let Some(r) = self.tasks.get_mut(&tid).and_then(|t| t.restart.as_mut()) {
                r.timed_out = true;
            }
            self.make_runnable(tid);
        }
    }

    pub(crate) fn shutdown(&mut self) {
        let tids: Vec<Tid> = self.tasks.keys().copied().collect();
        for tid in tids {
            crate::task::exit::release_task(self, tid);
        }
        let groups: Vec<Tid> = self.groups.keys().copied().collect();
        for g in groups {
            if let Some(mut group) = self.groups.remove(&g) {
                let files: Vec<_> = group.fds.drain().collect();
                for e in files {
                    syscalls::io::release_file(self, e.file);
                }
            }
        }
        info!(
            "sentry exit: {} syscalls ({} us), {} faults ({} us), {} interrupts, {} switches ({} us in user mode), {} frames in use",
            self.stats.syscalls,
            self.stats.syscall_ns / 1000,
            self.stats.faults,
            self.stats.fault_ns / 1000,
            self.stats.interrupts,
            self.stats.switches,
            self.stats.user_ns / 1000,
            self.frames.used_frames()
        );
        info!(
            "system call sites patched: {}, calls restarted through them: {}",
            self.stats.patched_sites, self.stats.patch_restarts
        );
        info!(
            "file reads: {} served by the page cache, {} from the host",
            self.stats.cached_reads, self.stats.host_reads
        );
    }

    /// Copy helpers bound to the current address space.
    pub fn copy_in(&mut self, va: u64, buf: &mut [u8]) -> KResult<()> {
        let (mm, frames, plat) = self.mm_parts();
        mm.copy_in(plat, frames, va, buf)
    }

    /// Physical runs of a user buffer (see `MmStruct::user_phys_runs`).
    pub fn user_phys_runs(
        &mut self,
        va: u64,
        len: u64,
        write: bool,
    ) -> KResult<Vec<(crate::platform::PhysAddr, usize)>> {
        let (mm, frames, plat) = self.mm_parts();
        mm.user_phys_runs(plat, frames, va, len, write)
    }

    pub fn copy_out(&mut self, va: u64, data: &[u8]) -> KResult<()> {
        let (mm, frames, plat) = self.mm_parts();
        mm.copy_out(plat, frames, va, data)
    }

    pub fn read_u64(&mut self, va: u64) -> KResult<u64> {
        let (mm, frames, plat) = self.mm_parts();
        mm.read_u64(plat, frames, va)
    }

    pub fn read_u32(&mut self, va: u64) -> KResult<u32> {
        let mut b = [0u8; 4];
        self.copy_in(va, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_cstr(&mut self, va: u64, max: usize) -> KResult<Vec<u8>> {
        let (mm, frames, plat) = self.mm_parts();
        mm.read_cstr(plat, frames, va, max)
    }
}
