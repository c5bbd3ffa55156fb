//! Issue 5's file measures, each against native in the same run:
//!
//! - sequential read of a 256 MiB host file (the bundle's lower layer) with
//!   1 MiB reads: at least 50% of native throughput;
//! - `stat` of a cached path: at most 3x native;
//! - `python3 -c pass` under `ringfence do`, wall time: at most 3x native;
//! - random 4 KiB reads of a 32 MiB tmpfs file (`/dev/shm`, a tmpfs on the
//!   host too): at least 30% of native throughput.
//!
//! `cargo bench -p ringfence-tests --bench files`. Native and sandboxed
//! repetitions are interleaved and each figure is a median. The programs
//! (`c/bench_fileio.c`) time their own loops, so start-up is excluded,
//! except for python, whose whole run is the measure. Writes the table to
//! `target/bench-files.md`. `RINGFENCE_BENCH_QUICK=1` (or running it as a
//! test) is a small smoke run.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use ringfence_tests::{compile, platforms, Bundle, Link, Platform, Ringfence, RunOutput};

const PYTHON: &str = "/usr/bin/python3";

/// A platform's series, or why it failed.
type PlatformSeries = Vec<(Platform, Result<Vec<f64>, String>)>;
/// Native samples and every platform's.
type Series = Result<(Vec<f64>, PlatformSeries), String>;

/// What one measure is about.
struct Measure {
    title: String,
    /// `higher`: a throughput (target: at least `target` of native);
    /// otherwise a time (target: at most `target` times native).
    higher: bool,
    target: f64,
    unit: &'static str,
    native: Vec<f64>,
    sandbox: PlatformSeries,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `ns_per_op=` of a run that exited 0.
fn ns_per_op(out: &RunOutput) -> Result<f64, String> {
    if out.exit.shell_code() != 0 {
        return Err(format!(
            "exit {:?}: {}",
            out.exit,
            out.stderr_str().lines().last().unwrap_or_default()
        ));
    }
    out.stdout_str()
        .lines()
        .find_map(|l| l.strip_prefix("ns_per_op="))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no ns_per_op in {:?}", out.stdout_str()))
}

/// Wall time in ms of `cmd`, which must exit 0.
fn wall_ms(mut cmd: Command) -> Result<f64, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ringfence_tests::settle();
    let start = Instant::now();
    let out = cmd.output().map_err(|e| e.to_string())?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ));
    }
    Ok(ms)
}

/// Runs `reps` interleaved repetitions: native, then each platform.
fn measure(
    reps: usize,
    plats: &[Platform],
    native: impl Fn() -> Result<f64, String>,
    sandboxed: impl Fn(Platform) -> Result<f64, String>,
    key: &str,
) -> Series {
    let mut nat = Vec::new();
    let mut sb: PlatformSeries = plats.iter().map(|p| (*p, Ok(Vec::new()))).collect();
    for rep in 1..=reps {
        let mut line = format!("bench: {key} {rep}/{reps}:");
        let v = native().map_err(|e| format!("native {key}: {e}"))?;
        let _ = write!(line, " native {v:.1}");
        nat.push(v);
        for (p, series) in &mut sb {
            let Ok(s) = series else { continue };
            match sandboxed(*p) {
                Ok(v) => {
                    let _ = write!(line, ", {p} {v:.1}");
                    s.push(v);
                }
                Err(e) => {
                    let _ = write!(line, ", {p} failed");
                    *series = Err(e);
                }
            }
        }
        eprintln!("{line}");
    }
    Ok((nat, sb))
}

fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "MiB/s" => format!("{v:.0} MiB/s"),
        "ms" => format!("{v:.1} ms"),
        _ if v >= 10_000.0 => format!("{:.1} µs", v / 1e3),
        _ => format!("{v:.0} ns"),
    }
}

fn main() -> ExitCode {
    let bench_mode = std::env::args().skip(1).any(|a| a == "--bench");
    let quick = !bench_mode
        || std::env::var_os("RINGFENCE_BENCH_QUICK").is_some_and(|v| !v.is_empty() && v != "0");
    let (reps, big_mib, stats, rand_n, py_reps) = if quick {
        (1, 8, 2_000, 2_000, 1)
    } else {
        (5, 256, 200_000, 200_000, 10)
    };
    let plats = platforms();
    let load_start = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();

    eprintln!("bench: building the C program and a {big_mib} MiB bundle file...");
    let prog = compile("bench_fileio", Link::Static);
    // Incompressible bytes, so no layer can shortcut the read.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..big_mib << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let bundle_for = |args: &[String]| {
        Bundle::builder(&prog)
            .args(args)
            .file("data/big", big.clone())
            .file("data/small", "small\n")
            .build()
    };
    let run_op = |bundle: &Bundle, p: Option<Platform>| -> Result<f64, String> {
        let out = match p {
            None => bundle.run_native(),
            Some(p) => Ringfence::new(p).run(bundle, "bench"),
        };
        ns_per_op(&out)
    };

    let mut results: Vec<Measure> = Vec::new();
    let mut failed = false;
    let mut add = |title: String, higher: bool, target: f64, unit: &'static str, r: Series| match r
    {
        Ok((native, sandbox)) => results.push(Measure {
            title,
            higher,
            target,
            unit,
            native,
            sandbox,
        }),
        Err(e) => {
            eprintln!("bench: {e}");
            failed = true;
        }
    };

    // 1. Sequential read, as MiB/s.
    let seq = bundle_for(&["seqread".into(), "data/big".into(), "1048576".into()]);
    let to_mibs = |ns: f64| 1e9 / ns;
    let r = measure(
        reps,
        &plats,
        || run_op(&seq, None).map(to_mibs),
        |p| run_op(&seq, Some(p)).map(to_mibs),
        "seqread",
    );
    add(
        format!("sequential read of a {big_mib} MiB host file, 1 MiB reads"),
        true,
        0.5,
        "MiB/s",
        r,
    );

    // 2. stat of a cached path.
    let st = bundle_for(&["stat".into(), "data/small".into(), stats.to_string()]);
    let r = measure(
        reps,
        &plats,
        || run_op(&st, None),
        |p| run_op(&st, Some(p)),
        "stat",
    );
    add(
        format!("stat of a cached path (N={stats})"),
        false,
        3.0,
        "ns",
        r,
    );

    // 3. tmpfs random reads, as MiB/s.
    let rr = bundle_for(&[
        "randread".into(),
        "/dev/shm".into(),
        "32".into(),
        rand_n.to_string(),
    ]);
    let to_mibs_4k = |ns: f64| 4096.0 / ns * 1e9 / 1048576.0;
    let r = measure(
        reps,
        &plats,
        || run_op(&rr, None).map(to_mibs_4k),
        |p| run_op(&rr, Some(p)).map(to_mibs_4k),
        "randread",
    );
    add(
        format!("tmpfs random 4 KiB reads, 32 MiB file (N={rand_n})"),
        true,
        0.3,
        "MiB/s",
        r,
    );

    // 4. python3 -c pass, wall, through `ringfence do`.
    if Path::new(PYTHON).exists() {
        let rf: Vec<(Platform, Ringfence)> =
            plats.iter().map(|p| (*p, Ringfence::new(*p))).collect();
        let bin = ringfence_tests::ringfence_bin();
        let r = measure(
            py_reps,
            &plats,
            || {
                let mut c = Command::new(PYTHON);
                c.args(["-c", "pass"]);
                wall_ms(c)
            },
            |p| {
                let root = rf.iter().find(|(q, _)| *q == p).map(|(_, r)| r.root());
                let mut c = Command::new(bin);
                c.arg("--root").arg(root.unwrap_or_default()).args([
                    "--platform",
                    p.name(),
                    "do",
                    "--",
                    PYTHON,
                    "-c",
                    "pass",
                ]);
                wall_ms(c)
            },
            "python3",
        );
        add(
            format!("`{PYTHON} -c pass` under `ringfence do`, wall"),
            false,
            3.0,
            "ms",
            r,
        );
    } else {
        eprintln!("bench: {PYTHON} is missing: the python measure is SKIPPED");
    }

    // The report.
    let mut md = String::new();
    let title = if quick { " (QUICK smoke run)" } else { "" };
    let _ = writeln!(md, "## ringfence file benchmark{title}\n");
    let _ = writeln!(
        md,
        "- command: `cargo bench -p ringfence-tests --bench files`"
    );
    let _ = writeln!(
        md,
        "- load average {} at the start, {} at the end; {:.0} s",
        load_start
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        md,
        "- medians of {reps} repetitions ({py_reps} for python)\n"
    );
    let _ = writeln!(
        md,
        "| measure | platform | native | sandbox | vs native | target |"
    );
    let _ = writeln!(md, "| --- | --- | --- | --- | --- | --- |");
    for m in &results {
        let n = median(&m.native);
        for (p, s) in &m.sandbox {
            let (sandbox, versus, verdict) = match s {
                Err(e) => (format!("failed: {e}"), "—".into(), "—".to_string()),
                Ok(v) => {
                    let s = median(v);
                    if m.higher {
                        let share = s / n;
                        let met = share >= m.target;
                        (
                            fmt(s, m.unit),
                            format!("{:.0}%", share * 100.0),
                            format!(
                                "≥ {:.0}%: {}",
                                m.target * 100.0,
                                if met { "met" } else { "**NOT met**" }
                            ),
                        )
                    } else {
                        let ratio = s / n;
                        let met = ratio <= m.target;
                        (
                            fmt(s, m.unit),
                            format!("{ratio:.2}×"),
                            format!(
                                "≤ {:.0}×: {}",
                                m.target,
                                if met { "met" } else { "**NOT met**" }
                            ),
                        )
                    }
                }
            };
            let _ = writeln!(
                md,
                "| {} | {p} | {} | {sandbox} | {versus} | {verdict} |",
                m.title,
                fmt(n, m.unit)
            );
        }
    }
    println!("\n{md}");
    let target = std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| "target".into());
    let file = target.join(if quick {
        "bench-files-quick.md"
    } else {
        "bench-files.md"
    });
    if let Err(e) = fs::write(&file, &md) {
        eprintln!("bench: cannot write {}: {e}", file.display());
    }
    if failed {
        eprintln!("bench: a native measure failed: the bench itself is broken");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
