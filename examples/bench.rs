//! The benchmark: the workloads of `../shared/anchors/README.md`, printed as the same JSON lines
//! as the Curator and kazoo harnesses there, so all three compare side by side in one run:
//!
//! ```sh
//! cargo build --release --examples
//! ../shared/anchors/run-all results.jsonl -- target/release/examples/bench
//! ../shared/anchors/summarize results.jsonl
//! ```
//!
//! Environment: `ZK_CONNECT` (else a private server is started), `BENCH_CLIENTS` (default 4),
//! `BENCH_OPS` (overrides every workload's size), `BENCH_WARMUP_S` (default 1). Arguments: the
//! workloads to run (default: all). Each client is a separate ZooKeeper session.
//!
//! Large values (not in the default set): `blob_write_5mb`, `blob_read_5mb`, `blob_write_20mb`,
//! `blob_read_20mb` and their floors `blob_floor_{5,20}mb`, `blob_floor_pipelined_{5,20}mb`,
//! `blob_floor_read_{5,20}mb` (see `bench/blob.rs`); their lines carry `mb_per_s`.
//!
//! Also not in the default set: `reentrant_cost` (see `bench/cost.rs`), a nested lock plus release
//! timed in bulk, without per-op clock reads, next to the floor of any `'static` guard; and
//! `noop`, the harness alone.

#[path = "bench/blob.rs"]
mod blob;
mod common;
#[path = "bench/cost.rs"]
mod cost;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mazurka::testkit::four_letter_word;
use mazurka::{Atom, DistributedLock, DistributedRwLock, Ref, Session};

const SYSTEM: &str = concat!("mazurka-", env!("CARGO_PKG_VERSION"));

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One client's operation: returns the latency to record. Statically dispatched, so the loop
/// around an operation costs what the anchors' loops cost (no allocation per op).
trait Op: Send + Sync + 'static {
    /// Runs once in the client's own task before its warm-up.
    fn setup(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Runs the client's loop (warm-up and measured ops, after `setup`): by default as it is;
    /// `reentrant` runs it in its outer hold's scope (re-entry is scoped to the holder).
    fn scoped<'a, T: 'a>(&self, body: BoxFut<'a, T>) -> BoxFut<'a, T> {
        body
    }

    fn run(&self) -> impl Future<Output = Result<Duration, String>> + Send;
}

struct Config {
    connect: String,
    clients: usize,
    ops: Option<usize>,
    warmup: Duration,
    counters: Option<SocketAddr>,
}

struct Counters {
    reads: u64,
    writes: u64,
    received: u64,
    sent: u64,
}

fn number(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?;
        rest.trim_start_matches([':', ' ', '\t'])
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// mntr request counts and srvr packet counts; mntr queried outside the srvr window, as the
/// anchors do, so the 4lw queries cancel out.
fn counters(addr: SocketAddr, before: bool) -> Option<Counters> {
    let mntr_first = if before {
        four_letter_word(addr, "mntr").ok()
    } else {
        None
    };
    let srvr = four_letter_word(addr, "srvr").ok()?;
    let mntr = if before {
        mntr_first?
    } else {
        four_letter_word(addr, "mntr").ok()?
    };
    Some(Counters {
        reads: number(&mntr, "zk_cnt_readlatency")?,
        writes: number(&mntr, "zk_cnt_updatelatency")?,
        received: number(&srvr, "Received")?,
        sent: number(&srvr, "Sent")?,
    })
}

/// Nearest-rank percentile of sorted latencies in nanoseconds, in microseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e3
}

/// Jain's fairness index of the clients' op counts, as the anchors compute it: (Σx)² / (n·Σx²),
/// 1 for equal shares, 1/n when one client did every op.
fn jain(per_client: &[u64]) -> f64 {
    let sum: f64 = per_client.iter().map(|&x| x as f64).sum();
    let squares: f64 = per_client.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if squares == 0.0 {
        1.0
    } else {
        sum * sum / (per_client.len() as f64 * squares)
    }
}

/// Runs one workload: connect, warm up, run `ops` tickets across clients, print one JSON line.
async fn run_workload<W: Op, F>(
    cfg: &Config,
    name: &str,
    clients: usize,
    default_ops: usize,
    make: F,
    extra: impl FnOnce() -> BoxFut<'static, Vec<(String, serde_json::Value)>>,
) -> Result<(), Box<dyn std::error::Error>>
where
    F: Fn(Session, usize) -> BoxFut<'static, Result<Arc<W>, mazurka::Error>>,
{
    let ops = cfg.ops.unwrap_or(default_ops);
    let mut sessions = Vec::new();
    for _ in 0..clients {
        sessions.push(
            Session::builder(&cfg.connect)
                .session_timeout(Duration::from_secs(10))
                .connect()
                .await?,
        );
    }
    let mut workers = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        workers.push(make(s.clone(), i).await?);
    }
    // Each client is one task from warm-up to the end, with two
    // rendezvous: warm-up done (the server counters are read), then a common start.
    let warm_ops = 2.max(ops / (10 * clients));
    let warmed = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let go = Arc::new(tokio::sync::Barrier::new(clients + 1));
    // As the anchors' `tickets.getAndDecrement() > 0`: one atomic operation per ticket.
    let tickets = Arc::new(AtomicIsize::new(ops.try_into()?));
    let mut running = Vec::new();
    for w in &workers {
        let (w, tickets, warmed, go) = (w.clone(), tickets.clone(), warmed.clone(), go.clone());
        let warmup = cfg.warmup;
        running.push(tokio::spawn(async move {
            let setup_failed = w.setup().await.err();
            let op = w.clone();
            op.scoped(Box::pin(async move {
                let until = Instant::now() + warmup;
                let mut n = 0;
                let mut failed = setup_failed;
                while failed.is_none() && (n < warm_ops || Instant::now() < until) {
                    failed = w.run().await.err();
                    n += 1;
                }
                // Nanoseconds, one word each, as the anchors' `long[n]`. Written once before the start:
                // a fresh `Vec` gets its pages from the kernel on first touch, which put a page fault
                // every 256 ops inside the window (the JVM's heap pages are in memory already).
                let mut latencies = vec![u64::MAX; ops];
                let mut recorded = 0;
                warmed.wait().await;
                go.wait().await;
                while failed.is_none() && tickets.fetch_sub(1, Ordering::SeqCst) > 0 {
                    match w.run().await {
                        Ok(latency) => {
                            // Never more tickets than slots; `get_mut` only keeps the loop panic-free.
                            if let Some(slot) = latencies.get_mut(recorded) {
                                *slot = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                                recorded += 1;
                            }
                        }
                        Err(e) => failed = Some(e),
                    }
                }
                latencies.truncate(recorded);
                match failed {
                    Some(e) => Err(e),
                    None => Ok((latencies, Instant::now())),
                }
            }))
            .await
        }));
    }
    warmed.wait().await;
    let before = cfg.counters.and_then(|a| counters(a, true));
    go.wait().await;
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(ops);
    // Measured ops per client: the tickets are shared, so a client that starves the others
    // shows here (and in `fairness`), not in ops/s.
    let mut per_client = Vec::with_capacity(clients);
    let mut end = start;
    for r in running {
        let (mine, finished) = r.await??;
        per_client.push(mine.len() as u64);
        latencies.extend(mine);
        end = end.max(finished);
    }
    let seconds = (end - start).as_secs_f64();
    let after = cfg.counters.and_then(|a| counters(a, false));
    latencies.sort();
    let mut line = serde_json::json!({
        "system": SYSTEM,
        "workload": name,
        "clients": clients,
        "ops": ops,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "ops_per_s": ((ops as f64 / seconds) * 1000.0).round() / 1000.0,
        "p50_us": (percentile(&latencies, 50.0) * 1000.0).round() / 1000.0,
        "p99_us": (percentile(&latencies, 99.0) * 1000.0).round() / 1000.0,
        "max_us": (latencies.last().map_or(0.0, |&ns| ns as f64 / 1e3) * 1000.0).round() / 1000.0,
        "fairness": (jain(&per_client) * 1000.0).round() / 1000.0,
        "client_ops_min": per_client.iter().min().copied().unwrap_or(0),
        "client_ops_max": per_client.iter().max().copied().unwrap_or(0),
        "mode": "tasks",
    });
    if let (Some(b), Some(a)) = (before, after) {
        let per = |x: u64| ((x as f64 / ops as f64) * 1000.0).round() / 1000.0;
        line["srv_reads_per_op"] = per(a.reads - b.reads).into();
        line["srv_writes_per_op"] = per(a.writes - b.writes).into();
        line["srv_events_per_op"] = per((a.sent - b.sent).saturating_sub(a.received - b.received)).into();
    }
    for (k, v) in extra().await {
        line[k] = v;
    }
    println!("{line}");
    for s in sessions {
        s.close().await?;
    }
    Ok(())
}

/// `lock_uncontended`: acquire; release (awaited, as Curator's `release()` is).
struct Uncontended {
    lock: DistributedLock,
    await_release: bool,
}

impl Op for Uncontended {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let guard = self.lock.lock().await.map_err(|e| e.to_string())?;
        if self.await_release {
            guard.release().await.map_err(|e| e.to_string())?;
        } else {
            drop(guard);
        }
        Ok(t.elapsed())
    }
}

/// `rwlock_readers`: read lock of a read-write lock: acquire; release (awaited, as Curator's
/// `release()` is). Readers never wait for each other: a create and a listing sent together,
/// then a delete — 1 read + 2 writes.
struct RwReaders {
    lock: DistributedRwLock,
    await_release: bool,
}

impl Op for RwReaders {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let guard = self.lock.read().await.map_err(|e| e.to_string())?;
        if self.await_release {
            guard.release().await.map_err(|e| e.to_string())?;
        } else {
            drop(guard);
        }
        Ok(t.elapsed())
    }
}

/// `lock_contended`: acquire (timed); critical section on a shared in-process counter; release.
struct Contended {
    lock: DistributedLock,
    counter: Arc<AtomicI64>,
    sections: Arc<AtomicI64>,
    violations: Arc<AtomicI64>,
}

impl Op for Contended {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let guard = self.lock.lock().await.map_err(|e| e.to_string())?;
        let waited = t.elapsed();
        let seen = self.counter.load(Ordering::SeqCst);
        self.counter.store(seen + 1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        if self.counter.load(Ordering::SeqCst) != seen + 1 {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
        self.sections.fetch_add(1, Ordering::SeqCst);
        guard.release().await.map_err(|e| e.to_string())?;
        Ok(waited)
    }
}

/// `reentrant`: the lock is held once outside the loop; re-acquire; release (nested).
struct Reentrant {
    lock: DistributedLock,
    /// The outer hold, taken by the client's own task in `setup`; the client's loop runs in its
    /// scope, entered once (re-entry is scoped to the future that holds).
    outer: std::sync::Mutex<Option<mazurka::LockGuard>>,
}

impl Op for Reentrant {
    async fn setup(&self) -> Result<(), String> {
        let guard = self.lock.lock().await.map_err(|e| e.to_string())?;
        *self.outer.lock().map_err(|e| e.to_string())? = Some(guard);
        Ok(())
    }

    fn scoped<'a, T: 'a>(&self, body: BoxFut<'a, T>) -> BoxFut<'a, T> {
        let outer = self
            .outer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match outer.as_ref() {
            Some(guard) => Box::pin(guard.scope(body)),
            None => body,
        }
    }

    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let guard = self.lock.lock().await.map_err(|e| e.to_string())?;
        guard.release().await.map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    }
}

fn no_extra() -> BoxFut<'static, Vec<(String, serde_json::Value)>> {
    Box::pin(async { Vec::new() })
}

/// `stm_transfer`: the anchors' `transfer_locked` done as a transaction: move a random amount
/// (1–100) between two distinct random accounts of K; whole op timed, conflicts included.
struct StmTransfer {
    accounts: Vec<Ref<i64>>,
    rng: std::sync::Mutex<rand::rngs::StdRng>,
    attempts: Arc<AtomicI64>,
}

impl Op for StmTransfer {
    async fn run(&self) -> Result<Duration, String> {
        let (a, b, amount) = {
            use rand::Rng;
            let mut rng = self.rng.lock().map_err(|e| e.to_string())?;
            let a = rng.gen_range(0..self.accounts.len());
            let b = (a + rng.gen_range(1..self.accounts.len())) % self.accounts.len();
            (a, b, rng.gen_range(1..=100i64))
        };
        let t = Instant::now();
        transfer(&self.accounts[a], &self.accounts[b], amount, &self.attempts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(t.elapsed())
    }
}

/// `stm_audit`: a read-only transaction over 100 refs of 16 bytes (`get` of each in turn, as an
/// audit is written), next to the anchors' `raw_multiread` (one `multiRead` of 100 nodes, the
/// floor of a consistent read from the server). Nothing else writes them, so every replica's
/// watch vouches for its value and the audit sends no request (`srv_reads_per_op`); the line
/// also reports one cold audit after a write of every ref (`cold_*`: no watch vouches then).
struct StmAudit {
    refs: Vec<Ref<[u8; 16]>>,
}

impl Op for StmAudit {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        let refs = &self.refs;
        let n = mazurka::dosync(|| async move {
            let mut n = 0usize;
            for r in refs {
                n += usize::from(r.get().await?[0] < 255);
            }
            Ok::<_, mazurka::Error>(n)
        })
        .await
        .map_err(|e| e.to_string())?;
        if n != refs.len() {
            return Err(format!("an audit saw {n} of {} values", refs.len()));
        }
        Ok(t.elapsed())
    }
}

/// Node reads (`getData`s, also inside a `multiRead`) served under `/<namespace>`, from `mntr`.
fn node_reads(addr: SocketAddr, namespace: &str) -> Option<u64> {
    number(
        &four_letter_word(addr, "mntr").ok()?,
        &format!("zk_cnt_{namespace}_read_per_namespace"),
    )
}

#[mazurka::dosync]
async fn transfer(from: &Ref<i64>, to: &Ref<i64>, amount: i64, attempts: &AtomicI64) -> mazurka::Result<()> {
    attempts.fetch_add(1, Ordering::Relaxed);
    from.alter(|v| v - amount).await?;
    to.alter(|v| v + amount).await?;
    Ok(())
}

/// `counter_contended`: increment a shared counter (an atom's swap: one versioned write; writers
/// take turns, a loser retries at once with the newer value); the whole increment is timed,
/// including a winner's wait for its next turn.
struct Counter {
    atom: Atom<i64>,
    attempts: Arc<AtomicI64>,
    increments: Arc<AtomicI64>,
}

impl Op for Counter {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        self.atom
            .swap(|n| {
                self.attempts.fetch_add(1, Ordering::Relaxed);
                n + 1
            })
            .await
            .map_err(|e| e.to_string())?;
        self.increments.fetch_add(1, Ordering::Relaxed);
        Ok(t.elapsed())
    }
}

/// `noop`: nothing; what the harness itself costs per op.
struct Noop;

impl Op for Noop {
    async fn run(&self) -> Result<Duration, String> {
        let t = Instant::now();
        Ok(t.elapsed())
    }
}

/// As `common::zookeeper`, but a private server gets a 4 GiB heap: ZooKeeper holds every value in
/// memory, and its last 500 committed transactions too (`zookeeper.commitLogCount`): with 1 MB
/// chunks that alone is ~500 MB, and 2 GiB ran out during a full run of the blob workloads.
fn blob_zookeeper() -> Result<(String, Option<mazurka::testkit::ZkServer>), Box<dyn std::error::Error>> {
    if std::env::var("ZK_CONNECT").is_ok_and(|c| !c.trim().is_empty()) {
        return common::zookeeper("ZK_CONNECT");
    }
    eprintln!("ZK_CONNECT is not set: starting a private ZooKeeper server (4 GiB heap) for this run …");
    let server = mazurka::testkit::ZkServer::builder()
        .tick_time(Duration::from_millis(500))
        .heap_mb(4096)
        .start()?;
    Ok((server.connect_string(), Some(server)))
}

fn all_workloads() -> Vec<&'static str> {
    vec![
        "lock_uncontended",
        "lock_uncontended_drop",
        "lock_contended",
        "rwlock_readers",
        "reentrant",
        "counter_contended",
        "stm_transfer",
        "stm_audit",
    ]
}

/// The audit workload's refs, handed from its setup to its cold-read measurement.
type SharedRefs = Arc<std::sync::Mutex<Option<Vec<Ref<[u8; 16]>>>>>;

async fn main_inner() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = if std::env::args().skip(1).any(|a| blob::is_blob(&a)) {
        blob_zookeeper()?
    } else {
        common::zookeeper("ZK_CONNECT")?
    };
    let env_num = |k: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .and_then(|v| v.parse::<usize>().ok())
    };
    let single_host = !connect.contains(',');
    let cfg = Config {
        counters: if single_host {
            connect.split('/').next().and_then(|h| h.parse().ok())
        } else {
            None
        },
        clients: env_num("BENCH_CLIENTS").unwrap_or(4),
        ops: env_num("BENCH_OPS"),
        warmup: Duration::from_secs_f64(
            std::env::var("BENCH_WARMUP_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1.0),
        ),
        connect,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let selected: Vec<&str> = if args.is_empty() {
        all_workloads()
    } else {
        args.iter().map(String::as_str).collect()
    };
    for name in selected {
        let t = Instant::now();
        eprintln!("bench: {name} …");
        match name {
            "lock_uncontended" | "lock_uncontended_drop" => {
                let await_release = name == "lock_uncontended";
                run_workload(
                    &cfg,
                    name,
                    1,
                    2000,
                    move |s, _| {
                        Box::pin(async move {
                            let lock = s.lock("/bench/lock")?;
                            Ok(Arc::new(Uncontended { lock, await_release }))
                        })
                    },
                    no_extra,
                )
                .await?
            }
            "rwlock_readers" | "rwlock_readers_drop" => {
                let await_release = name == "rwlock_readers";
                run_workload(
                    &cfg,
                    name,
                    cfg.clients,
                    2000,
                    move |s, _| {
                        Box::pin(async move {
                            let lock = s.rw_lock("/bench/rwlock")?;
                            Ok(Arc::new(RwReaders { lock, await_release }))
                        })
                    },
                    no_extra,
                )
                .await?
            }
            "lock_contended" => {
                let counter = Arc::new(AtomicI64::new(0));
                let sections = Arc::new(AtomicI64::new(0));
                let violations = Arc::new(AtomicI64::new(0));
                let (c2, s2, v2) = (counter.clone(), sections.clone(), violations.clone());
                run_workload(
                    &cfg,
                    name,
                    cfg.clients,
                    2000,
                    move |s, _| {
                        let (counter, sections, violations) = (c2.clone(), s2.clone(), v2.clone());
                        Box::pin(async move {
                            let lock = s.lock("/bench/lock_contended")?;
                            Ok(Arc::new(Contended {
                                lock,
                                counter,
                                sections,
                                violations,
                            }))
                        })
                    },
                    move || {
                        let v = violations.load(Ordering::SeqCst);
                        let ok = v == 0 && counter.load(Ordering::SeqCst) == sections.load(Ordering::SeqCst);
                        let fields = vec![("violations".into(), v.into()), ("verified".into(), ok.into())];
                        Box::pin(async move { fields })
                    },
                )
                .await?
            }
            "reentrant" => {
                run_workload(
                    &cfg,
                    name,
                    1,
                    200_000,
                    |s, _| {
                        Box::pin(async move {
                            let lock = s.lock("/bench/reentrant")?;
                            Ok(Arc::new(Reentrant {
                                lock,
                                outer: Default::default(),
                            }))
                        })
                    },
                    no_extra,
                )
                .await?
            }
            "stm_transfer" => {
                const ACCOUNTS: usize = 10;
                let root = format!("/bench/stm-{}", std::process::id());
                let attempts = Arc::new(AtomicI64::new(0));
                let verify_with: Arc<std::sync::Mutex<Option<Vec<Ref<i64>>>>> = Default::default();
                let (root2, attempts2, verify2) = (root.clone(), attempts.clone(), verify_with.clone());
                run_workload(
                    &cfg,
                    name,
                    cfg.clients,
                    4000,
                    move |s, i| {
                        let (root, attempts, verify) = (root2.clone(), attempts2.clone(), verify2.clone());
                        Box::pin(async move {
                            let mut accounts = Vec::new();
                            for k in 0..ACCOUNTS {
                                accounts.push(Ref::<i64>::new(&s, format!("{root}/{k}"), 1000).await?);
                            }
                            if i == 0 {
                                if let Ok(mut v) = verify.lock() {
                                    *v = Some(accounts.clone());
                                }
                            }
                            let rng = std::sync::Mutex::new(rand::SeedableRng::seed_from_u64(i as u64));
                            Ok(Arc::new(StmTransfer {
                                accounts,
                                rng,
                                attempts,
                            }))
                        })
                    },
                    move || {
                        Box::pin(async move {
                            let accounts = verify_with
                                .lock()
                                .ok()
                                .and_then(|mut v| v.take())
                                .unwrap_or_default();
                            let mut total = 0;
                            for a in &accounts {
                                total += a.deref_sync().await.unwrap_or(i64::MIN / 64);
                            }
                            let ok = total == 1000 * ACCOUNTS as i64;
                            vec![
                                ("accounts".into(), ACCOUNTS.into()),
                                ("verified".into(), ok.into()),
                                ("total".into(), total.into()),
                                ("attempts_total".into(), attempts.load(Ordering::SeqCst).into()),
                            ]
                        })
                    },
                )
                .await?
            }
            "stm_audit" => {
                const REFS: usize = 100;
                let root = format!("/bench/audit-{}", std::process::id());
                let cold_with: SharedRefs = Default::default();
                let (root2, cold2) = (root.clone(), cold_with.clone());
                let counters = cfg.counters;
                run_workload(
                    &cfg,
                    name,
                    1,
                    2000,
                    move |s, _| {
                        let (root, cold) = (root2.clone(), cold2.clone());
                        Box::pin(async move {
                            let mut refs = Vec::new();
                            for k in 0..REFS {
                                refs.push(Ref::<[u8; 16]>::new(&s, format!("{root}/{k:03}"), [1; 16]).await?);
                            }
                            if let Ok(mut c) = cold.lock() {
                                *c = Some(refs.clone());
                            }
                            Ok(Arc::new(StmAudit { refs }))
                        })
                    },
                    move || {
                        Box::pin(async move {
                            let Some(refs) = cold_with.lock().ok().and_then(|mut c| c.take()) else {
                                return Vec::new();
                            };
                            // One write of every ref through the same session fires every watch.
                            let refs = &refs;
                            let touched = mazurka::dosync(|| async move {
                                for r in refs {
                                    r.alter(|v| {
                                        [
                                            v[0],
                                            v[1].wrapping_add(1),
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                            1,
                                        ]
                                    })
                                    .await?;
                                }
                                Ok::<_, mazurka::Error>(())
                            })
                            .await;
                            let audit = StmAudit { refs: refs.clone() };
                            let before = counters.and_then(|a| node_reads(a, "bench"));
                            let cold = audit.run().await;
                            let after = counters.and_then(|a| node_reads(a, "bench"));
                            let mut extra = vec![("refs".into(), REFS.into())];
                            if let (Ok(()), Ok(latency)) = (touched, cold) {
                                extra.push(("cold_us".into(), (latency.as_secs_f64() * 1e6).round().into()));
                            }
                            if let (Some(b), Some(a)) = (before, after) {
                                extra.push(("cold_node_reads".into(), (a - b).into()));
                            }
                            extra
                        })
                    },
                )
                .await?
            }
            "counter_contended" => {
                let path = format!("/bench/counter-{}", std::process::id());
                let attempts = Arc::new(AtomicI64::new(0));
                let increments = Arc::new(AtomicI64::new(0));
                let check: Arc<std::sync::Mutex<Option<Atom<i64>>>> = Default::default();
                let (p2, a2, i2, c2) = (path.clone(), attempts.clone(), increments.clone(), check.clone());
                run_workload(
                    &cfg,
                    name,
                    cfg.clients,
                    2000,
                    move |s, i| {
                        let (path, attempts, increments, check) =
                            (p2.clone(), a2.clone(), i2.clone(), c2.clone());
                        Box::pin(async move {
                            let atom = Atom::<i64>::new(&s, path, 0).await?;
                            if i == 0 {
                                if let Ok(mut c) = check.lock() {
                                    *c = Some(atom.clone());
                                }
                            }
                            Ok(Arc::new(Counter {
                                atom,
                                attempts,
                                increments,
                            }))
                        })
                    },
                    move || {
                        Box::pin(async move {
                            let atom = check.lock().ok().and_then(|mut c| c.take());
                            let value = match atom {
                                Some(a) => a.deref_sync().await.unwrap_or(-1),
                                None => -1,
                            };
                            let done = increments.load(Ordering::SeqCst);
                            let tried = attempts.load(Ordering::SeqCst);
                            vec![
                                ("verified".into(), (value == done).into()),
                                (
                                    "attempts_per_op".into(),
                                    ((tried as f64 / done.max(1) as f64 * 100.0).round() / 100.0).into(),
                                ),
                                (
                                    "retry".into(),
                                    "turns: up to 4 wins in a row, then the winner yields about half the others' turns and reads; a loser writes again at once".into(),
                                ),
                            ]
                        })
                    },
                )
                .await?
            }
            name if blob::is_blob(name) => blob::run(&cfg, name).await?,
            "reentrant_cost" => cost::run(&cfg.connect).await?,
            "noop" => {
                // Calibration: the harness's own cost per op (ticket, two clock reads, record).
                run_workload(
                    &cfg,
                    name,
                    1,
                    200_000,
                    |_, _| Box::pin(async { Ok(Arc::new(Noop)) }),
                    no_extra,
                )
                .await?
            }
            other => {
                println!(
                    "{}",
                    serde_json::json!({"system": SYSTEM, "workload": other, "skipped": "not supported"})
                );
            }
        }
        eprintln!("bench: {name} took {:.1}s", t.elapsed().as_secs_f64());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_inner()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
