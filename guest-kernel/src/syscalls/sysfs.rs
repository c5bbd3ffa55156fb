//! A read-only `/sys` with what runtimes size themselves by: the CPUs
//! (`devices/system/cpu/{online,possible,present}`), the sandbox's cgroup
//! limits and usage (`fs/cgroup/*`, cgroup v2 names), and transparent huge
//! pages. It is served by the procfs machinery (`ProcNode`).

use alloc::format;
use alloc::vec::Vec;

use super::procfs::ProcNode;
use crate::abi::{Errno, KResult, PAGE_SIZE};
use crate::kernel::Kernel;
use crate::platform::Platform;

fn dir(names: &[(&str, u8)]) -> ProcNode {
    ProcNode::Dir(
        names
            .iter()
            .map(|(n, t)| (n.as_bytes().to_vec(), *t))
            .collect(),
    )
}

fn file(text: impl Into<Vec<u8>>) -> ProcNode {
    ProcNode::File(text.into())
}

/// The node at `/sys/<parts...>`.
pub fn resolve<P: Platform>(k: &Kernel<'_, P>, parts: &[&str]) -> KResult<ProcNode> {
    const D: u8 = 4;
    const F: u8 = 8;
    let n = k.plat.cpus().max(1);
    let cpus = if n == 1 {
        alloc::string::String::from("0\n")
    } else {
        format!("0-{}\n", n - 1)
    };
    let cpus = cpus.as_str();
    let (_, mem) = k.plat.phys_range();
    Ok(match parts {
        [] => dir(&[("devices", D), ("fs", D), ("kernel", D)]),
        ["devices"] => dir(&[("system", D)]),
        ["devices", "system"] => dir(&[("cpu", D)]),
        ["devices", "system", "cpu"] => dir(&[("online", F), ("possible", F), ("present", F)]),
        ["devices", "system", "cpu", "online" | "possible" | "present"] => file(cpus),
        ["fs"] => dir(&[("cgroup", D)]),
        ["fs", "cgroup"] => dir(&[
            ("cgroup.controllers", F),
            ("cpu.max", F),
            ("memory.current", F),
            ("memory.max", F),
            ("pids.current", F),
            ("pids.max", F),
        ]),
        ["fs", "cgroup", "cgroup.controllers"] => file("cpu memory pids\n"),
        ["fs", "cgroup", "cpu.max"] => file("max 100000\n"),
        ["fs", "cgroup", "memory.max"] => file(format!("{mem}\n")),
        ["fs", "cgroup", "memory.current"] => {
            file(format!("{}\n", k.frames.used_frames() * PAGE_SIZE))
        }
        ["fs", "cgroup", "pids.current"] => file(format!("{}\n", k.groups.len())),
        ["fs", "cgroup", "pids.max"] => {
            let nproc = k
                .groups
                .get(&k.cur().tgid)
                .map_or(u64::MAX, |g| g.rlimits[6].0);
            if nproc >= 1 << 22 {
                file("max\n")
            } else {
                file(format!("{nproc}\n"))
            }
        }
        ["kernel"] => dir(&[("mm", D)]),
        ["kernel", "mm"] => dir(&[("transparent_hugepage", D)]),
        ["kernel", "mm", "transparent_hugepage"] => dir(&[("enabled", F)]),
        ["kernel", "mm", "transparent_hugepage", "enabled"] => file("always madvise [never]\n"),
        _ => return Err(Errno::ENOENT),
    })
}
