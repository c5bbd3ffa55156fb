//! What `ps` and `stats` report: the sandbox's host processes and their
//! memory.

/// Host pids of the container: the sandbox process and its children (the
/// ptrace platform's stub processes).
pub(super) fn container_pids() -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut pids = vec![me];
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The resident memory of the sandbox process and its children, in bytes
/// (`VmRSS` of each; the sentry's memory is the container's memory).
fn resident_bytes(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map(|kib| kib.saturating_mul(1024))
        .fold(0u64, u64::saturating_add)
}

/// runc's stats `data` object, with what a sandbox knows: the memory of
/// its host processes and their number.
pub(super) fn stats() -> serde_json::Value {
    let pids = container_pids();
    let usage = resident_bytes(&pids);
    serde_json::json!({
        "memory": {"usage": {"usage": usage}},
        "pids": {"current": pids.len()},
    })
}
