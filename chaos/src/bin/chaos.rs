//! `chaos`: runs a fault campaign and prints its summary; exits non-zero on violations.
//! Usually started by `cargo xtask chaos`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mazurka_chaos::workload::Workload;
use mazurka_chaos::Config;

const USAGE: &str = "usage: chaos [--secs N] [--seed S] [--workers N] [--ensemble] [--workload lock|rwlock|stm|both|all] (both = the locks) [--session-ms MS] [--out DIR]";

fn main() -> ExitCode {
    match parse(std::env::args().skip(1).collect()) {
        Ok((configs, out)) => run(configs, &out),
        Err(message) => {
            eprintln!("chaos: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: Vec<String>) -> Result<(Vec<Config>, PathBuf), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let worker_exe = exe.with_file_name("chaos-worker");
    let seed_default = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut secs = 60_u64;
    let mut seed = seed_default;
    let mut workers = 4_usize;
    let mut ensemble = false;
    let mut workloads = vec![Workload::Lock, Workload::RwLock];
    let mut session_ms = 1500_u64;
    let mut out = std::env::temp_dir().join(format!("mazurka-chaos-{}", std::process::id()));
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |v: String, name: &str| v.parse::<u64>().map_err(|e| format!("{name}: {e}"));
        match arg.as_str() {
            "--secs" => secs = num(value("--secs")?, "--secs")?,
            "--seed" => seed = num(value("--seed")?, "--seed")?,
            "--workers" => {
                workers =
                    usize::try_from(num(value("--workers")?, "--workers")?).map_err(|e| e.to_string())?;
            }
            "--session-ms" => session_ms = num(value("--session-ms")?, "--session-ms")?,
            "--ensemble" => ensemble = true,
            "--out" => out = PathBuf::from(value("--out")?),
            "--workload" => {
                workloads = match value("--workload")?.as_str() {
                    "both" => vec![Workload::Lock, Workload::RwLock],
                    "all" => vec![Workload::Lock, Workload::RwLock, Workload::Stm],
                    other => {
                        vec![Workload::parse(other).ok_or_else(|| format!("unknown workload {other:?}"))?]
                    }
                }
            }
            "-h" | "--help" => return Err("help".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    // The time is split between the workloads, run one after the other.
    let per = Duration::from_secs(secs) / u32::try_from(workloads.len()).unwrap_or(1);
    let configs = workloads
        .into_iter()
        .map(|w| {
            let mut c = Config::new(w, worker_exe.clone(), out.join(w.name()));
            c.duration = per;
            c.seed = seed;
            c.workers = workers;
            c.ensemble = ensemble;
            c.session_timeout = Duration::from_millis(session_ms);
            c
        })
        .collect();
    Ok((configs, out))
}

fn run(configs: Vec<Config>, out: &std::path::Path) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut violations = 0;
    for cfg in configs {
        println!(
            "chaos: {} for {} s, seed {}, {} workers{} (reproduce with --seed {})",
            cfg.workload.name(),
            cfg.duration.as_secs(),
            cfg.seed,
            cfg.workers,
            if cfg.ensemble { ", 3-node ensemble" } else { "" },
            cfg.seed
        );
        match runtime.block_on(mazurka_chaos::run(&cfg)) {
            Ok(report) => {
                violations += report.violations.len();
                print!("{}", report.summary());
            }
            Err(e) => {
                eprintln!("chaos: the campaign could not run: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "chaos: {violations} violations in all; logs under {}",
        out.display()
    );
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
