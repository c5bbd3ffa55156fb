//! Parallel speed-up on several CPUs: `c/smp.c work N T`, where each of T
//! threads does N units of arithmetic with no system calls, run natively
//! and under `ringfence --platform P --vcpus V do` for each platform P
//! (`RINGFENCE_BENCH_PLATFORMS`, default `ptrace,kvm`; one that cannot run
//! here is skipped loudly), with V the host's CPUs (at most 8). Reported
//! per T: wall time natively and in each sandbox, the ratios, and each
//! side's speed-up over one thread. The sandbox's figure includes its
//! start-up (about 20 ms of a run of about half a second).
//!
//! `cargo bench -p ringfence-tests --bench smp`. Repetitions interleave
//! native and sandboxed runs; figures are medians. Writes the table to
//! `target/bench-smp.md`. `RINGFENCE_BENCH_QUICK=1` (or running it as a
//! test) is a small smoke run.

use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use ringfence_tests::{compile, ringfence_bin, Link, Platform};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Wall time in ms of `cmd`, which must exit 0 and print "work done".
fn wall_ms(mut cmd: Command) -> Result<f64, String> {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("work done") {
        return Err(format!(
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(ms)
}

fn main() -> ExitCode {
    let bench_mode = std::env::args().skip(1).any(|a| a == "--bench");
    let quick = !bench_mode
        || std::env::var_os("RINGFENCE_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let list = std::env::var("RINGFENCE_BENCH_PLATFORMS").unwrap_or("ptrace,kvm".into());
    let mut platforms = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Platform::parse(name).map(|p| (p, p.unavailable())) {
            None => {
                eprintln!("bench: unknown platform {name:?}");
                return ExitCode::FAILURE;
            }
            Some((_, Some(why))) => eprintln!("SKIPPED smp bench on {name}: {why}"),
            Some((p, None)) => platforms.push(p),
        }
    }
    let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let prog = compile("smp", Link::Static);
    // `do` gives the sandbox its own /tmp, where the compiler's cache is.
    let path = format!("/var/tmp/ringfence-bench-smp-{}", std::process::id());
    if let Err(e) = std::fs::copy(&prog.path, &path) {
        eprintln!("bench: copy {}: {e}", prog.path.display());
        return ExitCode::FAILURE;
    }
    let code = run(&path, quick, vcpus, &platforms);
    let _ = std::fs::remove_file(&path);
    code
}

fn run(path: &str, quick: bool, vcpus: usize, platforms: &[Platform]) -> ExitCode {
    let (reps, units) = if quick {
        (1, 1_000_000u64)
    } else {
        (5, 400_000_000u64)
    };
    let mut threads = vec![1];
    if vcpus > 1 {
        threads.push(vcpus);
    }
    let mut rows = Vec::new();
    for &t in &threads {
        let args = ["work".to_string(), units.to_string(), t.to_string()];
        let mut nat = Vec::new();
        let mut sb = vec![Vec::new(); platforms.len()];
        for _ in 0..reps {
            let mut c = Command::new(path);
            c.args(&args);
            match wall_ms(c) {
                Ok(ms) => nat.push(ms),
                Err(e) => {
                    eprintln!("bench: native: {e}");
                    return ExitCode::FAILURE;
                }
            }
            for (p, sb) in platforms.iter().zip(sb.iter_mut()) {
                let mut c = Command::new(ringfence_bin());
                c.args([
                    "--platform",
                    p.name(),
                    "--vcpus",
                    &vcpus.to_string(),
                    "do",
                    "--",
                ])
                .arg(path)
                .args(&args);
                match wall_ms(c) {
                    Ok(ms) => sb.push(ms),
                    Err(e) => {
                        eprintln!("bench: {p}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        let sb: Vec<f64> = sb.iter_mut().map(|v| median(v)).collect();
        rows.push((t, median(&mut nat), sb));
    }
    let mut table = String::new();
    let title = if quick { " (QUICK smoke run)" } else { "" };
    let mut head = "| threads | native ms |".to_string();
    let mut rule = "|---|---|".to_string();
    for p in platforms {
        let _ = write!(head, " {p} ms | {p} / native |");
        rule.push_str("---|---|");
    }
    head.push_str(" native speed-up |");
    rule.push_str("---|");
    for p in platforms {
        let _ = write!(head, " {p} speed-up |");
        rule.push_str("---|");
    }
    let _ = writeln!(
        table,
        "### Parallel threads on {vcpus} CPUs{title}\n\n`smp work {units} T`: T threads of arithmetic, no system calls; wall ms, median of {reps}.\n\n{head}\n{rule}"
    );
    let (n1, s1) = (rows[0].1, rows[0].2.clone());
    for (t, n, sb) in &rows {
        let per_thread = |one: f64, ms: f64| one / (ms / *t as f64);
        let mut line = format!("| {t} | {n:.1} |");
        for ms in sb {
            let _ = write!(line, " {ms:.1} | {:.2}x |", ms / n);
        }
        let _ = write!(line, " {:.2}x |", per_thread(n1, *n));
        for (one, ms) in s1.iter().zip(sb) {
            let _ = write!(line, " {:.2}x |", per_thread(*one, *ms));
        }
        let _ = writeln!(table, "{line}");
    }
    print!("{table}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-smp.md");
    let _ = std::fs::write(out, &table);
    ExitCode::SUCCESS
}
