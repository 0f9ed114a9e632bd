//! One campaign: servers and proxies up, worker processes contending, the nemesis injecting
//! faults for the configured time, then every worker stopped, the final state read, and the
//! checker run over it all.

#![allow(clippy::disallowed_types)] // the controller's bare client (see `zk`)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mazurka::testkit::unique_chroot;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::check::stm::StmStats;
use crate::check::{self, FaultSpan, Stats, Violation};
use crate::cluster::Cluster;
use crate::event::{now_us, Event, Line};
use crate::nemesis::{FaultKind, Nemesis, Planned};
use crate::observer::Observer;
use crate::procs::WorkerProc;
use crate::workload::{paths, WorkerArgs, Workload};
use crate::ChaosError;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The primitive.
    pub workload: Workload,
    /// Worker processes.
    pub workers: usize,
    /// How long the nemesis runs.
    pub duration: Duration,
    /// Seed of the nemesis and of the workers' choices.
    pub seed: u64,
    /// A 3-node ensemble (and leader kills) instead of one server.
    pub ensemble: bool,
    /// Workers' session timeout.
    pub session_timeout: Duration,
    /// Longest hold between reading the counter and writing it.
    pub hold: Duration,
    /// Range of the quiet time between faults.
    pub quiet: (Duration, Duration),
    /// Whether to inject faults at all.
    pub nemesis: bool,
    /// A broken mode for the workers ([`crate::workload::Broken`]), by name.
    pub broken: Option<String>,
    /// The `chaos-worker` executable.
    pub worker_exe: PathBuf,
    /// Where the log, the workers' stderr and the report go.
    pub out_dir: PathBuf,
}

impl Config {
    /// Defaults: 4 workers, 20 s, seed 1, one server, sessions of 1.5 s, holds of up to 5 ms,
    /// quiet gaps of 0.5–5 s.
    #[must_use]
    pub fn new(workload: Workload, worker_exe: PathBuf, out_dir: PathBuf) -> Config {
        Config {
            workload,
            workers: 4,
            duration: Duration::from_secs(20),
            seed: 1,
            ensemble: false,
            session_timeout: Duration::from_millis(1500),
            hold: Duration::from_millis(5),
            quiet: (Duration::from_millis(500), Duration::from_secs(5)),
            nemesis: true,
            broken: None,
            worker_exe,
            out_dir,
        }
    }

    /// Time after a fault heals before every worker must make progress again: an expired
    /// session is noticed, replaced and back in the queue well within one more session timeout.
    #[must_use]
    pub fn recovery(&self) -> Duration {
        self.session_timeout + Duration::from_secs(1)
    }
}

/// What a campaign found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The workload's name.
    pub workload: &'static str,
    /// The seed.
    pub seed: u64,
    /// Worker processes.
    pub workers: usize,
    /// Ensemble or single server.
    pub ensemble: bool,
    /// Counts.
    pub stats: Stats,
    /// The STM workload's counts (`None` for the locks).
    pub stm: Option<StmStats>,
    /// Faults injected, per kind.
    pub faults: BTreeMap<String, u64>,
    /// Violations found.
    pub violations: Vec<Violation>,
    /// Wall time of the whole campaign, servers included (ms).
    pub wall_ms: u64,
    /// The run's directory (log, report, workers' stderr).
    pub out_dir: PathBuf,
}

impl Report {
    /// A human summary: counts, faults, and the first violations of each kind.
    #[must_use]
    pub fn summary(&self) -> String {
        let mut s = format!(
            "chaos {} — seed {}, {} workers, {}, {:.1} s wall\n  acquisitions: {} (per worker {:?}), lock errors: {}\n  fenced writes: {:?}, history entries: {}\n  faults injected: {:?}\n  quiet windows checked for progress: {}\n  violations found: {}\n",
            self.workload,
            self.seed,
            self.workers,
            if self.ensemble { "3-node ensemble" } else { "one server" },
            self.wall_ms as f64 / 1000.0,
            self.stats.acquisitions,
            self.stats.per_worker,
            self.stats.lock_errors,
            self.stats.writes,
            self.stats.history_len,
            self.faults,
            self.stats.windows_checked,
            self.violations.len(),
        );
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            let n = shown.entry(v.kind).or_default();
            *n += 1;
            if *n <= 3 {
                s.push_str(&format!("    [{}] {}\n", v.kind, v.detail));
            }
        }
        for (kind, n) in shown.iter().filter(|(_, n)| **n > 3) {
            s.push_str(&format!("    [{kind}] … {} more\n", n - 3));
        }
        if let Some(stm) = &self.stm {
            let lr = &stm.lost_replies;
            s.push_str(&format!(
                "  stm ops (kind → outcome → count): {:?}\n  acknowledged per worker: {:?}, audits: {}, epochs: {}, unacknowledged found applied: {}\n  lost replies (ops in flight at a reply cut): {} — decided applied {}, decided not applied {}, OutcomeUnknown {} ({} of them applied), no end {}\n",
                stm.ops,
                stm.per_worker_ok,
                stm.audits,
                stm.epochs,
                stm.unacknowledged_applied,
                lr.in_flight,
                lr.decided_applied,
                lr.decided_not_applied,
                lr.outcome_unknown,
                lr.unknown_found_applied,
                lr.no_end,
            ));
        }
        s.push_str(&format!(
            "  log: {}\n",
            self.out_dir.join("events.jsonl").display()
        ));
        s
    }
}

/// The controller's live view of the workers, from their log lines.
#[derive(Debug, Default, Clone)]
struct WorkerView {
    inc: u32,
    started: bool,
    holding: bool,
    waiting: bool,
    stopped: bool,
    expiries: u64,
}

#[derive(Debug)]
struct Live {
    view: Mutex<Vec<WorkerView>>,
    changed: watch::Sender<u64>,
}

impl Live {
    fn update(&self, line: &Line) {
        let Some(w) = line.w else { return };
        let mut view = self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(v) = view.get_mut(w) else { return };
        if line.inc != v.inc {
            return; // a late line of an incarnation that was killed
        }
        match &line.ev {
            Event::Start { .. } => v.started = true,
            Event::Request { .. } => v.waiting = true,
            Event::Granted { .. } => (v.waiting, v.holding) = (false, true),
            // STM: "holding" is being inside an op (a transaction, a swap) that writes.
            Event::StmBegin { kind, .. } => v.holding = *kind != crate::event::StmKind::Audit,
            Event::StmEnd { .. } => v.holding = false,
            Event::LockError { .. } => v.waiting = false,
            Event::Released { .. } => v.holding = false,
            Event::Expired { .. } => v.expiries += 1,
            Event::Stopped => (v.stopped, v.waiting) = (true, false),
            _ => {}
        }
        drop(view);
        self.changed.send_modify(|n| *n += 1);
    }

    fn snapshot(&self) -> Vec<WorkerView> {
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn new_incarnation(&self, w: usize, inc: u32) {
        let mut view = self
            .view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = view.get_mut(w) {
            *v = WorkerView {
                inc,
                ..WorkerView::default()
            };
        }
    }

    /// Waits until `cond` holds for the view, up to `timeout`; returns whether it did.
    async fn wait_until(&self, timeout: Duration, cond: impl Fn(&[WorkerView]) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                if cond(&self.snapshot()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && cond(&self.snapshot())
    }
}

/// The running campaign's parts.
struct Run<'a> {
    cfg: &'a Config,
    cluster: Arc<Cluster>,
    procs: Vec<WorkerProc>,
    live: Arc<Live>,
    tx: mpsc::UnboundedSender<Line>,
    chroot: String,
    faults: BTreeMap<String, u64>,
    next_fault: u64,
}

/// Runs a campaign to its end and checks it.
///
/// # Errors
/// [`ChaosError`] if the servers, the workers or the controller's own client cannot be set up;
/// violations are not errors, they are in the [`Report`].
pub async fn run(cfg: &Config) -> Result<Report, ChaosError> {
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.out_dir)
        .map_err(|e| ChaosError::Io(format!("{}: {e}", cfg.out_dir.display())))?;
    let (ensemble, workers) = (cfg.ensemble, cfg.workers);
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(ensemble, workers))
        .await
        .map_err(|e| ChaosError::Server(e.to_string()))??;
    let cluster = Arc::new(cluster);
    let chroot = unique_chroot(&format!("chaos-{}", cfg.workload.name()));
    crate::zk::setup(&cluster.connect_string(), &chroot).await?;
    let direct = format!("{}{chroot}", cluster.connect_string());
    // The lock directory the observer watches and that must empty at the end (none for the STM).
    let dir = match cfg.workload {
        Workload::Lock => Some(paths::LOCK),
        Workload::RwLock => Some(paths::RW),
        Workload::Stm => None,
    };
    let observer = dir.map(|dir| Observer::start(direct.clone(), dir.to_owned()));

    let (tx, rx) = mpsc::unbounded_channel::<Line>();
    let live = Arc::new(Live {
        view: Mutex::new(vec![WorkerView::default(); cfg.workers]),
        changed: watch::channel(0).0,
    });
    let log_path = cfg.out_dir.join("events.jsonl");
    let collector = tokio::spawn(collect(rx, log_path, live.clone()));

    let mut run = Run {
        cfg,
        cluster,
        procs: Vec::new(),
        live,
        tx,
        chroot,
        faults: BTreeMap::new(),
        next_fault: 0,
    };
    for w in 0..cfg.workers {
        let proc = run.spawn(w, 0)?;
        run.procs.push(proc);
    }
    if !run
        .live
        .wait_until(Duration::from_secs(60), |v| v.iter().all(|w| w.started))
        .await
    {
        return Err(ChaosError::Timeout(
            "the workers did not all connect within 60 s".into(),
        ));
    }
    let run_start = now_us();
    let deadline = Instant::now() + cfg.duration;
    // The last stretch is always quiet, long enough for one progress window: after the last
    // fault, every worker must be back to acquiring.
    let nemesis_end = deadline
        .checked_sub(cfg.recovery() + Duration::from_secs(2))
        .unwrap_or(deadline);
    if cfg.nemesis {
        let mut nemesis = Nemesis::new(cfg.seed, cfg.session_timeout, cfg.quiet, cfg.ensemble);
        if cfg.workload == Workload::Stm {
            nemesis = nemesis.with_reply_cuts();
        }
        loop {
            let plan = nemesis.next_fault();
            if Instant::now() + plan.quiet + plan.duration >= nemesis_end {
                break;
            }
            tokio::time::sleep(plan.quiet).await;
            run.inject(plan).await?;
        }
    }
    tokio::time::sleep_until(deadline).await;

    // Stop: every worker stops contending, then the lock directory must empty by itself.
    let stop_time = now_us();
    for p in &mut run.procs {
        let _ = p.send("stop").await;
    }
    let stop_bound = cfg.session_timeout * 2 + Duration::from_secs(10);
    run.live
        .wait_until(stop_bound, |v| v.iter().all(|w| w.stopped))
        .await;
    let stuck: Vec<usize> = run
        .live
        .snapshot()
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.stopped)
        .map(|(w, _)| w)
        .collect();
    let client = crate::zk::connect(&direct).await?;
    let orphans = match dir {
        Some(dir) => wait_empty(&client, dir, cfg.session_timeout * 2 + Duration::from_secs(3)).await?,
        None => Vec::new(),
    };
    for p in &mut run.procs {
        let _ = p.send("exit").await;
    }
    for p in &mut run.procs {
        p.wait_exit(Duration::from_secs(10)).await;
    }
    let (counter_children, history, junk) = crate::zk::read_history(&client).await?;
    let gone = observer.as_ref().map(Observer::gone).unwrap_or_default();
    drop(observer);
    let stm_state = match cfg.workload {
        Workload::Stm => Some(crate::stm_read::read_final(&run.cluster.connect_string(), &run.chroot).await?),
        _ => None,
    };
    let Run { tx, faults, .. } = run;
    drop(tx);
    let lines = tokio::time::timeout(Duration::from_secs(10), collector)
        .await
        .map_err(|_| ChaosError::Timeout("the log did not close".into()))?
        .map_err(|e| ChaosError::Io(e.to_string()))??;

    let fault_spans = FaultSpan::from_lines(&lines, stop_time);
    let input = check::Input {
        lines: &lines,
        counter_children: &counter_children,
        history: &history,
        junk: &junk,
        gone: &gone,
        faults: &fault_spans,
        orphans: &orphans,
        stuck: &stuck,
        run: (run_start, stop_time),
        recovery_us: micros(cfg.recovery()),
        min_window_us: 1_000_000,
        workers: cfg.workers,
    };
    let (stats, mut violations) = check::check(&input);
    let stm =
        stm_state.map(|state| check::stm::check(&lines, &state, &fault_spans, cfg.workers, &mut violations));
    let report = Report {
        workload: cfg.workload.name(),
        seed: cfg.seed,
        workers: cfg.workers,
        ensemble: cfg.ensemble,
        stats,
        stm,
        faults,
        violations,
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        out_dir: cfg.out_dir.clone(),
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| ChaosError::Io(e.to_string()))?;
    std::fs::write(cfg.out_dir.join("report.json"), json).map_err(|e| ChaosError::Io(e.to_string()))?;
    Ok(report)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Writes every line to the log file as it arrives, updates the live view, and returns all
/// lines once every sender is gone.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Line>,
    path: PathBuf,
    live: Arc<Live>,
) -> Result<Vec<Line>, ChaosError> {
    use std::io::Write as _;
    let file =
        std::fs::File::create(&path).map_err(|e| ChaosError::Io(format!("{}: {e}", path.display())))?;
    let mut out = std::io::BufWriter::new(file);
    let mut lines = Vec::new();
    while let Some(line) = rx.recv().await {
        live.update(&line);
        writeln!(out, "{}", line.to_json()).map_err(|e| ChaosError::Io(e.to_string()))?;
        lines.push(line);
    }
    out.flush().map_err(|e| ChaosError::Io(e.to_string()))?;
    Ok(lines)
}

/// Waits up to `bound` for `dir` to have no children, woken by its watch; returns what is left.
async fn wait_empty(
    client: &zk::Client,
    dir: &str,
    bound: Duration,
) -> Result<Vec<(String, i64)>, ChaosError> {
    let deadline = Instant::now() + bound;
    loop {
        match client.get_and_watch_children(dir).await {
            Ok((children, _, watcher)) if !children.is_empty() => {
                if tokio::time::timeout_at(deadline, watcher.changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Ok(_) | Err(zk::Error::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(ChaosError::Zk(format!("watch {dir}: {e}"))),
        }
    }
    crate::zk::nodes_with_owners(client, dir).await
}

impl Run<'_> {
    fn spawn(&self, w: usize, inc: u32) -> Result<WorkerProc, ChaosError> {
        let proxy = self
            .cluster
            .proxy(w)
            .ok_or_else(|| ChaosError::Spawn(format!("no proxy for worker {w}")))?;
        let args = WorkerArgs {
            workload: self.cfg.workload,
            worker: w,
            inc,
            connect: proxy.connect_string(),
            chroot: self.chroot.clone(),
            session_timeout: self.cfg.session_timeout,
            hold: self.cfg.hold,
            seed: self.cfg.seed,
        };
        self.live.new_incarnation(w, inc);
        WorkerProc::spawn(
            &self.cfg.worker_exe,
            &args,
            self.cfg.broken.as_deref(),
            &self.cfg.out_dir.join(format!("worker-{w}.stderr")),
            self.tx.clone(),
        )
    }

    fn log(&self, ev: Event) {
        let _ = self.tx.send(Line {
            t: now_us(),
            w: None,
            inc: 0,
            ev,
        });
    }

    /// Picks the target: among the workers `eligible` says yes to (waiting up to 1 s for one),
    /// else among all.
    async fn target(&self, pick: usize, eligible: impl Fn(&WorkerView) -> bool) -> usize {
        let n = self.cfg.workers.max(1);
        self.live
            .wait_until(Duration::from_secs(1), |v| v.iter().any(&eligible))
            .await;
        let candidates: Vec<usize> = self
            .live
            .snapshot()
            .iter()
            .enumerate()
            .filter(|(_, v)| eligible(v))
            .map(|(w, _)| w)
            .collect();
        if candidates.is_empty() {
            pick % n
        } else {
            candidates[pick % candidates.len()]
        }
    }

    async fn inject(&mut self, plan: Planned) -> Result<(), ChaosError> {
        let target = match plan.kind {
            FaultKind::PauseHolder => Some(self.target(plan.pick, |v| v.holding).await),
            FaultKind::PauseWaiter => Some(self.target(plan.pick, |v| v.waiting).await),
            FaultKind::LeaderKill => None,
            FaultKind::CutReplies => Some(self.target(plan.pick, |v| v.holding).await),
            _ => Some(self.target(plan.pick, |_| true).await),
        };
        self.next_fault += 1;
        let id = self.next_fault;
        *self.faults.entry(plan.kind.name().to_owned()).or_default() += 1;
        self.log(Event::FaultStart {
            id,
            kind: plan.kind.name().to_owned(),
            target,
        });
        let w = target.unwrap_or(0);
        match plan.kind {
            FaultKind::PauseHolder | FaultKind::PauseWaiter | FaultKind::PauseShort => {
                if let Some(p) = self.procs.get_mut(w) {
                    p.pause()?;
                    tokio::time::sleep(plan.duration).await;
                    p.resume()?;
                }
            }
            FaultKind::Kill => {
                if let Some(p) = self.procs.get_mut(w) {
                    p.kill().await;
                    let inc = p.inc + 1;
                    tokio::time::sleep(plan.duration).await;
                    let fresh = self.spawn(w, inc)?;
                    self.procs[w] = fresh;
                    self.live
                        .wait_until(Duration::from_secs(30), |v| v.get(w).is_some_and(|v| v.started))
                        .await;
                }
            }
            FaultKind::CutLong | FaultKind::CutShort | FaultKind::StallLong | FaultKind::StallShort => {
                if let Some(proxy) = self.cluster.proxy(w) {
                    if matches!(plan.kind, FaultKind::CutLong | FaultKind::CutShort) {
                        proxy.cut();
                    } else {
                        proxy.stall();
                    }
                    tokio::time::sleep(plan.duration).await;
                    proxy.heal();
                }
            }
            FaultKind::Expire => {
                let before = self.live.snapshot().get(w).map_or(0, |v| v.expiries);
                if let Some(p) = self.procs.get_mut(w) {
                    // A worker that died on its own cannot take the command: the fault is
                    // skipped (its stderr says why it died), the campaign goes on.
                    if let Err(err) = p.send("expire").await {
                        eprintln!("chaos: expire skipped: {err}");
                        return Ok(());
                    }
                }
                self.live
                    .wait_until(Duration::from_secs(15), |v| {
                        v.get(w).is_some_and(|v| v.expiries > before)
                    })
                    .await;
            }
            FaultKind::CutReplies => {
                if let Some(proxy) = self.cluster.proxy(w) {
                    // Requests go through, replies wait: whatever the worker sends in this moment
                    // (a commit, a swap) is applied while its reply is then lost with the cut.
                    proxy.stall_replies();
                    let held = 20 + u64::try_from(plan.pick % 130).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(held)).await;
                    proxy.cut();
                    tokio::time::sleep(plan.duration).await;
                    proxy.heal();
                }
            }
            FaultKind::LeaderKill => {
                let cluster = self.cluster.clone();
                let killed = tokio::task::spawn_blocking(move || cluster.kill_leader())
                    .await
                    .map_err(|e| ChaosError::Server(e.to_string()))??;
                tokio::time::sleep(plan.duration).await;
                if let Some(i) = killed {
                    let cluster = self.cluster.clone();
                    tokio::task::spawn_blocking(move || cluster.restart(i))
                        .await
                        .map_err(|e| ChaosError::Server(e.to_string()))??;
                }
            }
        }
        self.log(Event::FaultEnd { id });
        Ok(())
    }
}
