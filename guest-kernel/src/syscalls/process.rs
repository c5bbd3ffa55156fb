//! clone, execve, exit, ids, sessions, rlimits, prctl, arch_prctl.

use alloc::vec::Vec;

use super::{arg_i32, Args};
use crate::abi::linux::*;
use crate::abi::{Errno, KResult, UserRegs};
use crate::kernel::Kernel;
use crate::mm::MmStruct;
use crate::platform::Platform;
use crate::task::exit::{exit_thread, group_exit};
use crate::task::{GroupExit, Task, ThreadGroup, WaitKey};

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_PARENT: u64 = 0x8000;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
/// Namespace flags: the sandbox already is the container's namespace.
const CLONE_NEWNS_ETC: u64 = 0x7e02_0000;

/// Bound on argv/envp entries read by `execve`.
const MAX_ARG_STRINGS: usize = 0x7fff_ffff / 8;

/// exit(2): this thread ends.
pub fn sys_exit<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let tid = k.cur;
    exit_thread(k, tid, GroupExit::Exited(arg_i32(a[0]) & 0xff));
    Ok(0)
}

/// exit_group(2).
pub fn sys_exit_group<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let tgid = k.cur().tgid;
    group_exit(k, tgid, GroupExit::Exited(arg_i32(a[0]) & 0xff));
    Ok(0)
}

/// clone(2), fork(2), vfork(2).
pub fn sys_clone<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let (flags, newsp, ptid, ctid, tls) = (a[0], a[1], a[2], a[3], a[4]);
    if flags & CLONE_THREAD != 0 && flags & CLONE_SIGHAND == 0
        || flags & CLONE_SIGHAND != 0 && flags & CLONE_VM == 0
    {
        return Err(Errno::EINVAL);
    }
    // As arch_prctl(ARCH_SET_FS): a base the CPU would refuse.
    if flags & CLONE_SETTLS != 0 && tls >= TASK_SIZE {
        return Err(Errno::EPERM);
    }
    if flags & CLONE_NEWNS_ETC != 0 {
        log::debug!(
            "clone: namespace flags {:#x} ignored inside the sandbox",
            flags & CLONE_NEWNS_ETC
        );
    }
    // RLIMIT_NPROC, and the sandbox's memory: a fork bomb stops there, not
    // at the host's limits.
    let nproc = k.group().rlimits[6].0;
    if flags & CLONE_THREAD == 0 && k.groups.len() as u64 >= nproc.min(k.plat.process_limit()) {
        return Err(Errno::EAGAIN);
    }
    // A new process copies the descriptor table first: past the sandbox's
    // descriptor budget, fork fails before anything else is made.
    let mut child_fds = if flags & CLONE_THREAD == 0 {
        Some(k.group().fds.try_clone()?)
    } else {
        None
    };
    let parent_tid = k.cur;
    let parent_mm = k.cur().mm;
    // The child's address space: shared, or a copy-on-write fork.
    let child_mm = if flags & CLONE_VM != 0 {
        if let Some(e) = k.mms.get_mut(&parent_mm) {
            e.users += 1;
        }
        parent_mm
    } else {
        let space = k.plat.new_address_space().map_err(|_| Errno::EAGAIN)?;
        let (mm, frames, plat) = k.mm_parts();
        let forked = mm.fork(plat, frames, space)?;
        k.add_mm(forked)
    };
    let thread = match k
        .mms
        .get_mut(&child_mm)
        .map(|e| k.plat.new_thread(&mut e.mm.space))
    {
        Some(Ok(th)) => th,
        _ => {
            k.put_mm(child_mm);
            return Err(Errno::EAGAIN);
        }
    };
    let tid = k.alloc_tid();
    let parent = k.cur();
    let mut regs: UserRegs = parent.regs;
    regs.rax = 0;
    if newsp != 0 {
        regs.rsp = newsp;
    }
    if flags & CLONE_SETTLS != 0 {
        regs.fs_base = tls;
    }
    let mut child = Task::new(tid, tid, child_mm, thread);
    child.regs = regs;
    child.sig.blocked = parent.sig.blocked;
    child.sig.altstack = if flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
        (0, 2, 0)
    } else {
        parent.sig.altstack
    };
    child.comm = parent.comm;
    if let (Some(pt), Some(ct)) = (parent.thread.as_ref(), child.thread.as_mut()) {
        if let Some(st) = k.plat.fpu_state(pt) {
            k.plat.set_fpu_state(ct, &st);
        }
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        child.clear_child_tid = ctid;
    }
    if flags & CLONE_THREAD != 0 {
        child.tgid = k.cur().tgid;
        k.group_mut().threads.push(tid);
    } else {
        let g = k.group();
        let parent_tgid = if flags & CLONE_PARENT != 0 {
            g.parent
        } else {
            g.tgid
        };
        let group = ThreadGroup {
            tgid: tid,
            parent: parent_tgid,
            pgid: g.pgid,
            sid: g.sid,
            threads: alloc::vec![tid],
            children: Vec::new(),
            sighand: g.sighand.clone(),
            pending: 0,
            siginfo: Default::default(),
            creds: g.creds,
            fds: child_fds.take().unwrap_or_default(),
            cwd: g.cwd.clone(),
            exe_path: g.exe_path.clone(),
            cmdline: g.cmdline.clone(),
            environ: g.environ.clone(),
            rlimits: g.rlimits,
            umask: g.umask,
            exit_signal: (flags & 0xff) as i32,
            group_exit: None,
            zombie: None,
            exec_id: None,
            root: g.root,
            job: Default::default(),
        };
        if flags & CLONE_FILES != 0 || flags & CLONE_FS != 0 {
            log::debug!("clone: CLONE_FILES/CLONE_FS without CLONE_THREAD share by copy");
        }
        k.groups.insert(tid, group);
        if let Some(pg) = k.groups.get_mut(&parent_tgid) {
            pg.children.push(tid);
        }
    }
    if flags & CLONE_VFORK != 0 {
        child.vfork_parent = Some(parent_tid);
    }
    k.tasks.insert(tid, child);
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = k.copy_out(ptid, &tid.to_le_bytes());
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        if let Some(e) = k.mms.get_mut(&child_mm) {
            let _ =
                e.mm.copy_out(k.plat, &mut k.frames, ctid, &tid.to_le_bytes());
        }
    }
    k.runq.push_back(tid);
    // A new thread is worth an idle CPU at once (see `sched::kick_idle`).
    // A new process waits a little for this one: its parent mostly waits
    // for it (fork+exec+wait, a shell) and leaves this CPU to it, where its
    // address space was just built, instead of a hand-over to another.
    k.new_work = flags & CLONE_VM != 0;
    if flags & CLONE_VFORK != 0 {
        k.block_done(WaitKey::Vfork(tid));
    }
    Ok(tid as u64)
}

/// Read a NULL-terminated array of string pointers.
fn read_strings<P: Platform>(k: &mut Kernel<'_, P>, mut ptr: u64) -> KResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut total = 0usize;
    if ptr == 0 {
        return Ok(out);
    }
    loop {
        let p = k.read_u64(ptr)?;
        if p == 0 {
            return Ok(out);
        }
        let s = k.read_cstr(p, crate::loader::stack::MAX_ARG_STRLEN)?;
        total += s.len() + 1 + 8;
        if out.len() >= MAX_ARG_STRINGS || total > 2 << 20 {
            return Err(Errno::E2BIG);
        }
        out.push(s);
        ptr = ptr.checked_add(8).ok_or(Errno::EFAULT)?;
    }
}

/// execve(2).
/// Strings each followed by a NUL, as `/proc/PID/cmdline` shows them.
pub fn nul_joined(items: &[Vec<u8>]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|a| a.iter().copied().chain(core::iter::once(0)))
        .collect()
}

pub fn sys_execve<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let path = k.read_cstr(a[0], 4095)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    let argv = read_strings(k, a[1])?;
    let envp = read_strings(k, a[2])?;
    let full = crate::loader::join(&k.group().cwd, &path);
    // Build the new image in a fresh address space; the old one stays
    // intact until the point of no return.
    let mut space = k.plat.new_address_space().map_err(|_| Errno::ENOMEM)?;
    let thread = k.plat.new_thread(&mut space).map_err(|_| Errno::ENOMEM)?;
    k.plat.begin_batch(&mut space);
    let new_mm = k.add_mm(MmStruct::new(space, k.plat.max_user_address()));
    let loaded = k.load_program(new_mm, &full, &argv, &envp);
    // The new image's mappings, as one batch where the platform batches.
    let ended = match k.mms.get_mut(&new_mm) {
        Some(e) => k.plat.end_batch(&mut e.mm.space),
        None => Ok(()),
    };
    let loaded = match (loaded, ended) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(errno)) => Err(crate::loader::LoadError::from(errno)),
        (Ok(e), Ok(())) => Ok(e),
    };
    let entry = match loaded {
        Ok(e) => e,
        Err(e) => {
            if let Some(en) = k.mms.get_mut(&new_mm) {
                k.plat.release_thread(&mut en.mm.space, thread);
            }
            k.put_mm(new_mm);
            return Err(e.errno);
        }
    };
    // Point of no return: other threads die, the task takes the new image.
    let tid = k.cur;
    let others: Vec<_> = k
        .group()
        .threads
        .iter()
        .copied()
        .filter(|t| *t != tid)
        .collect();
    for t in others {
        exit_thread(k, t, GroupExit::Exited(0));
    }
    // The old image's robust locks are released as at thread exit.
    let (cur_mm, robust_head) = (k.cur().mm, k.cur().robust_list.0);
    if robust_head != 0 {
        super::futex::exit_robust_list(k, cur_mm, tid, robust_head);
    }
    let t = k.cur_mut();
    let old_mm = core::mem::replace(&mut t.mm, new_mm);
    let old_thread = t.thread.replace(thread);
    t.regs = UserRegs::new_user(entry.rip, entry.rsp);
    t.clear_child_tid = 0;
    t.robust_list = (0, 0);
    t.sig.altstack = (0, 2, 0);
    let vfork_parent = t.vfork_parent.take();
    if let (Some(th), Some(e)) = (old_thread, k.mms.get_mut(&old_mm)) {
        k.plat.release_thread(&mut e.mm.space, th);
    }
    k.put_mm(old_mm);
    if vfork_parent.is_some() {
        k.wake(WaitKey::Vfork(tid), 1);
    }
    let _ = full;
    let exe = core::mem::take(&mut k.last_exe);
    let g = k.group_mut();
    g.exe_path = exe;
    g.cmdline = nul_joined(&argv);
    g.environ = nul_joined(&envp);
    g.sighand.reset_for_exec();
    let tgid = g.tgid;
    k.ptimers.remove_group(tgid);
    let g = k.group_mut();
    let closing = g.fds.take_cloexec();
    for e in closing {
        super::fd::descriptor_closed(k, e.file);
    }
    Ok(0)
}

/// getpid(2).
pub fn sys_getpid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(k.cur().tgid as u64)
}

/// getppid(2): init's parent is outside the container.
pub fn sys_getppid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(k.group().parent as u64)
}

/// gettid(2).
pub fn sys_gettid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(k.cur as u64)
}

pub fn sys_getuid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.group().creds.uid))
}

pub fn sys_geteuid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.group().creds.euid))
}

pub fn sys_getgid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.group().creds.gid))
}

pub fn sys_getegid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    Ok(u64::from(k.group().creds.egid))
}

/// setpgid(2).
pub fn sys_setpgid<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let me = k.cur().tgid;
    let (pid, pgid) = (arg_i32(a[0]), arg_i32(a[1]));
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let target = if pid == 0 { me } else { pid };
    let g = k.groups.get(&target).ok_or(Errno::ESRCH)?;
    if target != me && g.parent != me {
        return Err(Errno::ESRCH);
    }
    let sid = k.group().sid;
    if g.sid != sid || g.tgid == g.sid {
        return Err(Errno::EPERM);
    }
    let pgid = if pgid == 0 { target } else { pgid };
    if pgid != target && !k.groups.values().any(|o| o.pgid == pgid && o.sid == sid) {
        return Err(Errno::EPERM);
    }
    if let Some(g) = k.groups.get_mut(&target) {
        g.pgid = pgid;
    }
    Ok(0)
}

/// getpgid(2).
pub fn sys_getpgid<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let pid = arg_i32(a[0]);
    let target = if pid == 0 { k.cur().tgid } else { pid };
    Ok(k.groups.get(&target).ok_or(Errno::ESRCH)?.pgid as u64)
}

/// setsid(2).
pub fn sys_setsid<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    let me = k.cur().tgid;
    if k.groups.values().any(|g| g.pgid == me) && k.group().pgid == me {
        return Err(Errno::EPERM);
    }
    let g = k.group_mut();
    g.sid = me;
    g.pgid = me;
    Ok(me as u64)
}

/// getsid(2).
pub fn sys_getsid<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let pid = arg_i32(a[0]);
    let target = if pid == 0 { k.cur().tgid } else { pid };
    Ok(k.groups.get(&target).ok_or(Errno::ESRCH)?.sid as u64)
}

/// set_tid_address(2).
pub fn sys_set_tid_address<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    k.cur_mut().clear_child_tid = a[0];
    Ok(k.cur as u64)
}

/// set_robust_list(2).
pub fn sys_set_robust_list<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    // sizeof(struct robust_list_head)
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    k.cur_mut().robust_list = (a[0], a[1]);
    Ok(0)
}

/// prlimit64(2).
pub fn sys_prlimit64<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let pid = arg_i32(a[0]);
    let target = if pid == 0 { k.cur().tgid } else { pid };
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let res = a[1] as u32;
    if res >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let euid = k.group().creds.euid;
    let old = k.groups.get(&target).ok_or(Errno::ESRCH)?.rlimits[res as usize];
    if a[2] != 0 {
        let mut b = [0u8; 16];
        k.copy_in(a[2], &mut b)?;
        let soft = u64::from_le_bytes(b[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let hard = u64::from_le_bytes(b[8..].try_into().map_err(|_| Errno::EFAULT)?);
        if soft > hard {
            return Err(Errno::EINVAL);
        }
        // Raising the hard limit needs CAP_SYS_RESOURCE, which only root holds here.
        if hard > old.1 && euid != 0 {
            return Err(Errno::EPERM);
        }
        if res == RLIMIT_NOFILE && hard > 1 << 20 {
            return Err(Errno::EPERM);
        }
        if let Some(g) = k.groups.get_mut(&target) {
            g.rlimits[res as usize] = (soft, hard);
        }
    }
    if a[3] != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&old.0.to_le_bytes());
        b[8..].copy_from_slice(&old.1.to_le_bytes());
        k.copy_out(a[3], &b)?;
    }
    Ok(0)
}

/// getrlimit(2).
pub fn sys_getrlimit<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    sys_prlimit64(k, [0, a[0], 0, a[1], 0, 0])
}

/// arch_prctl(2).
pub fn sys_arch_prctl<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let canonical = |v: u64| v < TASK_SIZE;
    match a[0] {
        ARCH_SET_FS if canonical(a[1]) => k.cur_mut().regs.fs_base = a[1],
        ARCH_SET_GS if canonical(a[1]) => k.cur_mut().regs.gs_base = a[1],
        ARCH_SET_FS | ARCH_SET_GS => return Err(Errno::EPERM),
        ARCH_GET_FS => {
            let v = k.cur().regs.fs_base;
            k.copy_out(a[1], &v.to_le_bytes())?;
        }
        ARCH_GET_GS => {
            let v = k.cur().regs.gs_base;
            k.copy_out(a[1], &v.to_le_bytes())?;
        }
        ARCH_GET_CPUID => return Ok(1),
        ARCH_SET_CPUID => return Err(Errno::ENODEV),
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// prctl(2): names, the parent-death signal, and harmless queries.
pub fn sys_prctl<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    const PR_SET_PDEATHSIG: u64 = 1;
    const PR_GET_PDEATHSIG: u64 = 2;
    const PR_GET_DUMPABLE: u64 = 3;
    const PR_SET_DUMPABLE: u64 = 4;
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const PR_SET_NO_NEW_PRIVS: u64 = 38;
    const PR_GET_NO_NEW_PRIVS: u64 = 39;
    match a[0] {
        PR_SET_NAME => {
            // Like strncpy_from_user: at most 15 bytes, stopping at NUL.
            let mut comm = [0u8; 16];
            for (i, slot) in comm.iter_mut().take(15).enumerate() {
                let mut b = [0u8; 1];
                k.copy_in(a[1] + i as u64, &mut b)?;
                if b[0] == 0 {
                    break;
                }
                *slot = b[0];
            }
            k.cur_mut().comm = comm;
            Ok(0)
        }
        PR_GET_NAME => {
            let comm = k.cur().comm;
            k.copy_out(a[1], &comm)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG => {
            if a[1] > SIGRTMAX as u64 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            k.copy_out(a[1], &0i32.to_le_bytes())?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE | PR_SET_NO_NEW_PRIVS => Ok(0),
        PR_GET_NO_NEW_PRIVS => Ok(1),
        _ => Err(Errno::EINVAL),
    }
}

/// umask(2).
pub fn sys_umask<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let g = k.group_mut();
    let old = g.umask;
    g.umask = a[0] as u32 & 0o777;
    Ok(u64::from(old))
}

/// sched_yield(2): let other runnable tasks go first.
pub fn sys_sched_yield<P: Platform>(k: &mut Kernel<'_, P>, _a: Args) -> KResult<u64> {
    if !k.runq.is_empty() {
        let tid = k.cur;
        // Requeue behind the others; the scheduler loop picks the next one.
        k.cur_mut().regs.rax = 0;
        k.runq.push_back(tid);
        k.yield_now = true;
    }
    Ok(0)
}

/// sched_getaffinity(2): every CPU of the sandbox.
pub fn sys_sched_getaffinity<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let len = a[1] as usize;
    if len < 8 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut mask = alloc::vec![0u8; len.min(128)];
    for c in 0..k.plat.cpus().clamp(1, crate::sched::MAX_CPUS) {
        mask[c / 8] |= 1 << (c % 8);
    }
    k.copy_out(a[2], &mask)?;
    Ok(mask.len() as u64)
}

/// getcpu(2): the CPU serving the call, which is the one the task runs
/// on; one NUMA node.
pub fn sys_getcpu<P: Platform>(k: &mut Kernel<'_, P>, a: Args) -> KResult<u64> {
    let cpu = k.cpu as u32;
    if a[0] != 0 {
        k.copy_out(a[0], &cpu.to_le_bytes())?;
    }
    if a[1] != 0 {
        k.copy_out(a[1], &0u32.to_le_bytes())?;
    }
    Ok(0)
}
