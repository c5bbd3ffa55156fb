//! procfs: `/proc` generated from the sentry's own state.
//!
//! Files are rendered when opened (a snapshot, as a `seq_file` read in one
//! go) and served from memory; directories list live processes.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::linux::{Stat, S_IFDIR, S_IFLNK, S_IFREG};
use crate::abi::{Errno, KResult};
use crate::kernel::Kernel;
use crate::mm::VmaKind;
use crate::platform::{Clock, Platform};
use crate::task::Tid;

/// What a `/proc` path is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcNode {
    /// A directory and its entries (name, `d_type`).
    Dir(Vec<(Vec<u8>, u8)>),
    File(Vec<u8>),
    Symlink(Vec<u8>),
}

/// Whether `path` (normalized) is under `/proc` (or the sentry's `/sys`,
/// which the same machinery serves).
pub fn is_proc(path: &[u8]) -> bool {
    path == b"/proc" || path.starts_with(b"/proc/") || path == b"/sys" || path.starts_with(b"/sys/")
}

fn dirent(name: &str, dtype: u8) -> (Vec<u8>, u8) {
    (name.as_bytes().to_vec(), dtype)
}

const PID_ENTRIES: &[(&str, u8)] = &[
    ("cmdline", 8),
    ("comm", 8),
    ("cwd", 10),
    ("environ", 8),
    ("exe", 10),
    ("fd", 4),
    ("fdinfo", 4),
    ("maps", 8),
    ("mounts", 8),
    ("root", 10),
    ("stat", 8),
    ("status", 8),
    ("task", 4),
];

/// Resolve a `/proc` path.
pub fn resolve<P: Platform>(k: &mut Kernel<'_, P>, path: &[u8]) -> KResult<ProcNode> {
    let s = core::str::from_utf8(path).map_err(|_| Errno::ENOENT)?;
    let parts: Vec<&str> = s.split('/').filter(|c| !c.is_empty()).skip(1).collect();
    if s == "/sys" || s.starts_with("/sys/") {
        return super::sysfs::resolve(k, &parts);
    }
    let me = k.cur().tgid;
    match parts.as_slice() {
        [] => {
            let mut e = alloc::vec![dirent("self", 10), dirent("thread-self", 10)];
            for name in [
                "cpuinfo",
                "meminfo",
                "uptime",
                "loadavg",
                "version",
                "filesystems",
                "stat",
                "mounts",
            ] {
                e.push(dirent(name, 8));
            }
            e.push(dirent("sys", 4));
            for g in k.groups.values().filter(|g| g.zombie.is_none()) {
                e.push(dirent(&format!("{}", g.tgid), 4));
            }
            Ok(ProcNode::Dir(e))
        }
        ["self", ..] | ["thread-self", ..] if parts.len() == 1 => {
            Ok(ProcNode::Symlink(format!("{me}").into_bytes()))
        }
        ["self", rest @ ..] | ["thread-self", rest @ ..] => pid_node(k, me, rest),
        ["cpuinfo"] => Ok(ProcNode::File(cpuinfo(k.plat.cpus()))),
        ["meminfo"] => Ok(ProcNode::File(meminfo(k))),
        ["uptime"] => {
            let up = k.plat.now(Clock::Monotonic).saturating_sub(k.boot_ns);
            Ok(ProcNode::File(
                format!(
                    "{}.{:02} 0.00\n",
                    up / 1_000_000_000,
                    (up / 10_000_000) % 100
                )
                .into_bytes(),
            ))
        }
        ["loadavg"] => Ok(ProcNode::File(
            format!(
                "0.00 0.00 0.00 {}/{} {}\n",
                k.runq.len().max(1),
                k.tasks.len(),
                k.tasks.keys().max().copied().unwrap_or(1)
            )
            .into_bytes(),
        )),
        ["version"] => Ok(ProcNode::File(
            format!(
                "Linux version {} (ringfence) #1 SMP\n",
                core::str::from_utf8(super::misc::UTS_RELEASE).unwrap_or("6.1.0")
            )
            .into_bytes(),
        )),
        ["filesystems"] => Ok(ProcNode::File(
            b"nodev\ttmpfs\nnodev\tproc\nnodev\toverlay\n".to_vec(),
        )),
        ["stat"] => {
            let n = k.tasks.len();
            Ok(ProcNode::File(
                format!(
                    "cpu  0 0 0 0 0 0 0 0 0 0\n{}intr 0\nctxt {}\nbtime {}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\n",
                    (0..k.plat.cpus().max(1))
                        .map(|c| format!("cpu{c} 0 0 0 0 0 0 0 0 0 0\n"))
                        .collect::<String>(),
                    k.stats.switches,
                    (k.plat.now(Clock::Realtime) - k.plat.now(Clock::Monotonic).saturating_sub(k.boot_ns)) / 1_000_000_000,
                    n
                )
                .into_bytes(),
            ))
        }
        ["mounts"] => Ok(ProcNode::File(mounts())),
        ["sys"] => Ok(ProcNode::Dir(alloc::vec![
            dirent("fs", 4),
            dirent("kernel", 4),
            dirent("vm", 4)
        ])),
        ["sys", "fs"] => Ok(ProcNode::Dir(alloc::vec![
            dirent("file-max", 8),
            dirent("file-nr", 8)
        ])),
        ["sys", "fs", "file-max"] => {
            let (_, max) = crate::fs::file_counts();
            Ok(ProcNode::File(format!("{max}\n").into_bytes()))
        }
        ["sys", "fs", "file-nr"] => {
            let (open, max) = crate::fs::file_counts();
            Ok(ProcNode::File(format!("{open}\t0\t{max}\n").into_bytes()))
        }
        ["sys", "kernel"] => Ok(ProcNode::Dir(alloc::vec![
            dirent("hostname", 8),
            dirent("osrelease", 8),
            dirent("pid_max", 8)
        ])),
        ["sys", "kernel", "hostname"] => {
            let mut h = k.hostname.clone();
            h.push(b'\n');
            Ok(ProcNode::File(h))
        }
        ["sys", "kernel", "osrelease"] => {
            let mut r = super::misc::UTS_RELEASE.to_vec();
            r.push(b'\n');
            Ok(ProcNode::File(r))
        }
        ["sys", "kernel", "pid_max"] => Ok(ProcNode::File(b"32768\n".to_vec())),
        ["sys", "vm"] => Ok(ProcNode::Dir(alloc::vec![dirent("overcommit_memory", 8)])),
        ["sys", "vm", "overcommit_memory"] => Ok(ProcNode::File(b"0\n".to_vec())),
        [pid, rest @ ..] => {
            let pid: Tid = pid.parse().map_err(|_| Errno::ENOENT)?;
            pid_node(k, pid, rest)
        }
    }
}

fn pid_node<P: Platform>(k: &mut Kernel<'_, P>, pid: Tid, rest: &[&str]) -> KResult<ProcNode> {
    let g = k
        .groups
        .get(&pid)
        .filter(|g| g.zombie.is_none())
        .ok_or(Errno::ENOENT)?;
    let leader = g.threads.first().copied().unwrap_or(pid);
    match rest {
        [] => Ok(ProcNode::Dir(
            PID_ENTRIES.iter().map(|(n, t)| dirent(n, *t)).collect(),
        )),
        ["exe"] => Ok(ProcNode::Symlink(g.exe_path.clone())),
        ["cwd"] => Ok(ProcNode::Symlink(g.cwd.clone())),
        ["root"] => Ok(ProcNode::Symlink(b"/".to_vec())),
        ["comm"] => {
            let comm = k.tasks.get(&leader).map(|t| t.comm).unwrap_or_default();
            let mut c: Vec<u8> = comm.iter().copied().take_while(|b| *b != 0).collect();
            if c.is_empty() {
                c = basename(&g.exe_path);
            }
            c.push(b'\n');
            Ok(ProcNode::File(c))
        }
        ["cmdline"] => Ok(ProcNode::File(g.cmdline.clone())),
        ["environ"] => Ok(ProcNode::File(g.environ.clone())),
        ["mounts"] => Ok(ProcNode::File(mounts())),
        ["fd"] => {
            let fds = g.fds.fds();
            Ok(ProcNode::Dir(
                fds.iter().map(|fd| dirent(&format!("{fd}"), 10)).collect(),
            ))
        }
        ["fd", n] => {
            let fd: i32 = n.parse().map_err(|_| Errno::ENOENT)?;
            let file = g.fds.get(fd).map_err(|_| Errno::ENOENT)?;
            let target = match file.path() {
                Some(p) => p.to_vec(),
                None => match &*file {
                    crate::fs::File::Pipe(end) => format!("pipe:[{}]", end.pipe.id).into_bytes(),
                    crate::fs::File::HostStream { handle } => {
                        format!("host:[{}]", handle.0).into_bytes()
                    }
                    crate::fs::File::Dev(_) => b"/dev/null".to_vec(),
                    _ => b"anon_inode:[eventpoll]".to_vec(),
                },
            };
            Ok(ProcNode::Symlink(target))
        }
        ["fdinfo"] => Ok(ProcNode::Dir(
            g.fds
                .fds()
                .iter()
                .map(|fd| dirent(&format!("{fd}"), 8))
                .collect(),
        )),
        ["fdinfo", n] => {
            let fd: i32 = n.parse().map_err(|_| Errno::ENOENT)?;
            let g = k.groups.get_mut(&pid).ok_or(Errno::ENOENT)?;
            let cloexec = g.fds.entry_mut(fd).map_err(|_| Errno::ENOENT)?.cloexec;
            let file = g.fds.get(fd).map_err(|_| Errno::ENOENT)?;
            let pos = match &*file {
                crate::fs::File::HostFile { offset, .. } => {
                    offset.load(core::sync::atomic::Ordering::Relaxed)
                }
                crate::fs::File::Tmpfs(t) => t.offset.load(core::sync::atomic::Ordering::Relaxed),
                crate::fs::File::Dir(d) => d.pos.load(core::sync::atomic::Ordering::Relaxed),
                _ => 0,
            };
            let flags = super::fd::status_flags(&file) | if cloexec { 0o2000000 } else { 0 };
            let ino = super::io::stat_of(k, &file).map(|s| s.st_ino).unwrap_or(0);
            Ok(ProcNode::File(
                format!("pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t1\nino:\t{ino}\n").into_bytes(),
            ))
        }
        ["task"] => Ok(ProcNode::Dir(
            g.threads
                .iter()
                .map(|t| dirent(&format!("{t}"), 4))
                .collect(),
        )),
        ["stat"] => Ok(ProcNode::File(pid_stat(k, pid).into_bytes())),
        ["status"] => Ok(ProcNode::File(pid_status(k, pid).into_bytes())),
        ["maps"] => Ok(ProcNode::File(maps(k, pid).into_bytes())),
        _ => Err(Errno::ENOENT),
    }
}

fn basename(p: &[u8]) -> Vec<u8> {
    p.rsplit(|b| *b == b'/').next().unwrap_or(p).to_vec()
}

fn mounts() -> Vec<u8> {
    b"overlay / overlay rw,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec 0 0\n\
tmpfs /dev tmpfs rw,nosuid 0 0\ntmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0\ntmpfs /tmp tmpfs rw,nosuid,nodev 0 0\nsysfs /sys sysfs ro,nosuid,nodev,noexec 0 0\n"
        .to_vec()
}

fn cpuinfo(cpus: usize) -> Vec<u8> {
    (0..cpus.max(1))
        .map(|c| {
            format!(
                "processor\t: {c}\nvendor_id\t: ringfence\ncpu family\t: 6\nmodel name\t: ringfence virtual CPU\n\
flags\t\t: fpu tsc cx8 cmov mmx fxsr sse sse2 ht syscall nx lm sse3 ssse3 cx16 sse4_1 sse4_2 popcnt\n\n"
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn meminfo<P: Platform>(k: &Kernel<'_, P>) -> Vec<u8> {
    let (_, len) = k.plat.phys_range();
    let total = len / 1024;
    let free = k.frames.free_frames() * 4;
    format!(
        "MemTotal:       {total:8} kB\nMemFree:        {free:8} kB\nMemAvailable:   {free:8} kB\nBuffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
    )
    .into_bytes()
}

fn pid_stat<P: Platform>(k: &Kernel<'_, P>, pid: Tid) -> String {
    let Some(g) = k.groups.get(&pid) else {
        return String::new();
    };
    let comm = String::from_utf8_lossy(&basename(&g.exe_path)).into_owned();
    let state = proc_state(k, pid).0;
    let rss = k
        .tasks
        .get(&pid)
        .and_then(|t| k.mms.get(&t.mm))
        .map(|e| e.mm.resident_pages())
        .unwrap_or(0);
    format!(
        "{pid} ({comm}) {state} {} {} {} 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 {} 0 0 0 {rss} 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n",
        g.parent, g.pgid, g.sid, g.threads.len()
    )
}

/// A process's state letter and name: its group's job-control stop, else
/// its leader's scheduling state.
fn proc_state<P: Platform>(k: &Kernel<'_, P>, pid: Tid) -> (char, &'static str) {
    use crate::task::TaskState;
    if k.groups.get(&pid).is_some_and(|g| g.job.stopped.is_some()) {
        return ('T', "stopped");
    }
    match k.tasks.get(&pid).map(|t| t.state) {
        Some(TaskState::Runnable) => ('R', "running"),
        Some(TaskState::Stopped) => ('T', "stopped"),
        _ => ('S', "sleeping"),
    }
}

fn pid_status<P: Platform>(k: &Kernel<'_, P>, pid: Tid) -> String {
    let Some(g) = k.groups.get(&pid) else {
        return String::new();
    };
    let name = String::from_utf8_lossy(&basename(&g.exe_path)).into_owned();
    let rss = k
        .tasks
        .get(&pid)
        .and_then(|t| k.mms.get(&t.mm))
        .map(|e| e.mm.resident_pages() * 4)
        .unwrap_or(0);
    let (blocked, pending) = k
        .tasks
        .get(&pid)
        .map(|t| (t.sig.blocked, t.sig.pending))
        .unwrap_or((0, 0));
    let (state, state_name) = proc_state(k, pid);
    format!(
        "Name:\t{name}\nState:\t{state} ({state_name})\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{}\nUid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{gi}\t{gi}\t{gi}\t{gi}\nVmRSS:\t{rss} kB\nThreads:\t{}\nSigPnd:\t{pending:016x}\nSigBlk:\t{blocked:016x}\n",
        g.parent,
        g.threads.len(),
        u = g.creds.uid,
        gi = g.creds.gid,
    )
}

fn maps<P: Platform>(k: &Kernel<'_, P>, pid: Tid) -> String {
    let mut out = String::new();
    let Some(e) = k.tasks.get(&pid).and_then(|t| k.mms.get(&t.mm)) else {
        return out;
    };
    for v in e.mm.vmas() {
        let name = match v.kind {
            VmaKind::Heap => "[heap]",
            VmaKind::Stack => "[stack]",
            _ => "",
        };
        out.push_str(&format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} 00:00 0 {}\n",
            v.start,
            v.end,
            if v.prot.read { 'r' } else { '-' },
            if v.prot.write { 'w' } else { '-' },
            if v.prot.exec { 'x' } else { '-' },
            if v.shared { 's' } else { 'p' },
            v.backing.map(|b| b.offset).unwrap_or(0),
            name
        ));
    }
    out
}

/// `stat` of a `/proc` node.
pub fn stat(node: &ProcNode, ino: u64) -> Stat {
    let (mode, size) = match node {
        ProcNode::Dir(_) => (S_IFDIR | 0o555, 0),
        ProcNode::File(_) => (S_IFREG | 0o444, 0),
        ProcNode::Symlink(t) => (S_IFLNK | 0o777, t.len() as i64),
    };
    Stat {
        st_dev: 0x40,
        st_ino: ino,
        st_nlink: 1,
        st_mode: mode,
        st_size: size,
        st_blksize: 4096,
        ..Default::default()
    }
}

/// Resolve a `/proc` path, following a final symlink when `follow` (a
/// target outside `/proc` is returned as `Err(target)`).
/// `path` with its first symlink that is not its last component replaced
/// by the link's target (`/proc/self/root/etc` is `/etc`, `/proc/self/fd/3/x`
/// is the fd's path and `/x`), or `None` when no component before the last
/// is a link. The target is a container path, resolved as any other.
fn through_link<P: Platform>(k: &mut Kernel<'_, P>, path: &[u8]) -> Option<Vec<u8>> {
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for i in 2..parts.len() {
        let mut prefix = Vec::new();
        for p in &parts[..i] {
            prefix.push(b'/');
            prefix.extend_from_slice(p);
        }
        if let Ok(ProcNode::Symlink(t)) = resolve(k, &prefix) {
            let mut next = if t.starts_with(b"/") {
                t
            } else {
                let mut dir = prefix.clone();
                while dir.last() != Some(&b'/') {
                    dir.pop();
                }
                dir.extend_from_slice(&t);
                dir
            };
            for r in &parts[i..] {
                next.push(b'/');
                next.extend_from_slice(r);
            }
            return Some(super::dir::normalize(&next));
        }
    }
    None
}

pub fn lookup<P: Platform>(
    k: &mut Kernel<'_, P>,
    path: &[u8],
    follow: bool,
) -> KResult<Result<ProcNode, Vec<u8>>> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        if let Some(next) = through_link(k, &path) {
            if !is_proc(&next) {
                return Ok(Err(next));
            }
            path = next;
            continue;
        }
        match resolve(k, &path)? {
            ProcNode::Symlink(t) if follow => {
                let next = if t.starts_with(b"/") {
                    t
                } else {
                    let mut p = path.clone();
                    while p.last() != Some(&b'/') {
                        p.pop();
                    }
                    p.extend_from_slice(&t);
                    p
                };
                let next = super::dir::normalize(&next);
                if !is_proc(&next) {
                    return Ok(Err(next));
                }
                path = next;
            }
            n => return Ok(Ok(n)),
        }
    }
    Err(Errno::ELOOP)
}
