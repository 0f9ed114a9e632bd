//! The worker side of a campaign: what one worker process does, per primitive.
//!
//! A worker connects one `Session` (through a `FaultProxy` of its own, in front of the
//! controller's proxy for it, so it can expire its own session on command), then runs its
//! workload until told to stop, logging every event as a JSON line on stdout. Commands arrive on
//! stdin, one per line: `stop` (stop contending, report [`Event::Stopped`], keep the session),
//! `expire` (expire the session on the server, for real), `exit` (close the session and exit).
//! End of file on stdin (the controller is gone) exits at once.

pub mod counter;
mod lock;
pub mod rwlock;
pub mod stm;

use std::future::Future;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use mazurka::testkit::{expire_session, FaultProxy};
use mazurka::Session;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use crate::event::{now_us, Event, Line};

/// Paths of the shared state, inside the run's chroot (created by the controller).
pub mod paths {
    /// The exclusive lock.
    pub const LOCK: &str = "/lock";
    /// The read-write lock.
    pub const RW: &str = "/rw";
    /// The counter: one child `c-<n>`, replaced by every fenced write.
    pub const COUNTER: &str = "/counter";
    /// The history of fenced writes: `b<bucket>/n<n>.w<worker>.i<inc>.o<op>.t<token>`.
    pub const OPS: &str = "/ops";
    /// Markers of read-write holders while they hold.
    pub const MARKERS: &str = "/markers";
    /// Entries per history bucket (a listing of one bucket must fit ZooKeeper's 1 MB packets).
    pub const BUCKET: u64 = 1000;
}

/// Which primitive a campaign exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `DistributedLock`: every holder increments the counter with a fenced write.
    Lock,
    /// `DistributedRwLock`: writers increment the counter, readers and writers mark themselves
    /// while holding and look for holders they must not share with.
    RwLock,
    /// Refs and an atom: bank transfers whose values list the ids of the ops applied to them,
    /// an atom counter listing its increments' ids, write-skew pairs, and audits.
    Stm,
}

impl Workload {
    /// The name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Workload::Lock => "lock",
            Workload::RwLock => "rwlock",
            Workload::Stm => "stm",
        }
    }

    /// Parses [`Workload::name`].
    #[must_use]
    pub fn parse(s: &str) -> Option<Workload> {
        match s {
            "lock" => Some(Workload::Lock),
            "rwlock" => Some(Workload::RwLock),
            "stm" => Some(Workload::Stm),
            _ => None,
        }
    }
}

/// A deliberately broken worker, to show that the checker can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Each worker locks a path of its own: real guards, real tokens, real fenced writes, but no
    /// mutual exclusion between workers.
    SplitLock,
    /// STM: a transfer is two transactions (debit, then credit after a pause), not one; a
    /// skew op checks the pair in one transaction and writes in another.
    StmNoTxn,
    /// STM: a transfer that committed is run again with the same id now and then, as a client
    /// that retried blindly after a lost reply would.
    StmReapply,
}

impl Broken {
    /// The environment variable a worker reads its broken mode from.
    pub const ENV: &'static str = "MAZURKA_CHAOS_BROKEN";

    /// The mode named by [`Broken::ENV`], if any.
    #[must_use]
    pub fn from_env() -> Option<Broken> {
        match std::env::var(Self::ENV).ok()?.as_str() {
            "split-lock" => Some(Broken::SplitLock),
            "stm-no-txn" => Some(Broken::StmNoTxn),
            "stm-reapply" => Some(Broken::StmReapply),
            _ => None,
        }
    }
}

/// What a worker process is told on its command line.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The workload.
    pub workload: Workload,
    /// Worker number.
    pub worker: usize,
    /// Incarnation (restart count).
    pub inc: u32,
    /// Where to connect (the controller's proxy for this worker).
    pub connect: String,
    /// The run's chroot.
    pub chroot: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Longest time a holder spends between reading the counter and writing it.
    pub hold: Duration,
    /// Seed of this worker's choices.
    pub seed: u64,
}

impl WorkerArgs {
    /// The command-line arguments that [`WorkerArgs::parse`] reads back.
    #[must_use]
    pub fn to_args(&self) -> Vec<String> {
        vec![
            self.workload.name().to_owned(),
            self.worker.to_string(),
            self.inc.to_string(),
            self.connect.clone(),
            self.chroot.clone(),
            self.session_timeout.as_millis().to_string(),
            self.hold.as_millis().to_string(),
            self.seed.to_string(),
        ]
    }

    /// Parses [`WorkerArgs::to_args`].
    ///
    /// # Errors
    /// A message naming the bad or missing argument.
    pub fn parse(args: &[String]) -> Result<WorkerArgs, String> {
        let get = |i: usize, what: &str| {
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("missing argument {i} ({what})"))
        };
        let num = |i: usize, what: &str| -> Result<u64, String> {
            get(i, what)?
                .parse::<u64>()
                .map_err(|e| format!("argument {i} ({what}): {e}"))
        };
        let workload = get(0, "workload")?;
        Ok(WorkerArgs {
            workload: Workload::parse(&workload).ok_or_else(|| format!("unknown workload {workload:?}"))?,
            worker: usize::try_from(num(1, "worker")?).map_err(|e| e.to_string())?,
            inc: u32::try_from(num(2, "incarnation")?).map_err(|e| e.to_string())?,
            connect: get(3, "connect string")?,
            chroot: get(4, "chroot")?,
            session_timeout: Duration::from_millis(num(5, "session timeout ms")?),
            hold: Duration::from_millis(num(6, "hold ms")?),
            seed: num(7, "seed")?,
        })
    }
}

/// A worker's context: who it is, its session, its log and its random choices.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) worker: usize,
    pub(crate) inc: u32,
    pub(crate) session: Session,
    pub(crate) hold: Duration,
    pub(crate) broken: Option<Broken>,
    rng: Mutex<StdRng>,
    out: Mutex<std::io::Stdout>,
    last_session: Mutex<i64>,
}

impl Ctx {
    /// Logs one event: a JSON line on stdout, flushed at once (a killed worker loses nothing it
    /// logged before the kill).
    pub(crate) fn log(&self, ev: Event) {
        let line = Line {
            t: now_us(),
            w: Some(self.worker),
            inc: self.inc,
            ev,
        };
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A closed stdout means the controller is gone; the stdin reader exits the process.
        let _ = writeln!(out, "{}", line.to_json());
        let _ = out.flush();
    }

    /// A random duration in `0..=max`.
    pub(crate) fn random_up_to(&self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Duration::from_millis(rng.gen_range(0..=ms))
    }

    /// A random number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&self, n: u64) -> u64 {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if n == 0 {
            0
        } else {
            rng.gen_range(0..n)
        }
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&self, p: f64) -> bool {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rng.gen_bool(p)
    }

    /// Logs [`Event::Session`] when the session is a new ZooKeeper session.
    pub(crate) fn note_session(&self) {
        let id = self.session.id();
        let mut last = self
            .last_session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *last != id {
            *last = id;
            drop(last);
            self.log(Event::Session { session: id });
        }
    }
}

/// Polls `fut` to completion and also returns when the poll that completed it began: the guard
/// a lock future returns was decided within that last poll, so the grant happened after it.
pub(crate) async fn timed<F: Future>(fut: F) -> (F::Output, i64) {
    let mut fut = std::pin::pin!(fut);
    let mut last = 0;
    let out = std::future::poll_fn(|cx| {
        last = now_us();
        fut.as_mut().poll(cx)
    })
    .await;
    (out, last)
}

/// The last segment of a node path.
pub(crate) fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// Resolves once `stop` is set.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: the process is ending, so stop too.
    let _ = stop.wait_for(|s| *s).await;
}

/// What the loop does next.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Runs a worker process to its end: connect, contend until `stop`, wait for `exit`.
///
/// # Errors
/// A message if the worker cannot start (proxy, connection, runtime).
pub fn run_worker(args: &WorkerArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the runtime: {e}"))?;
    let result = runtime.block_on(worker_main(args));
    // The stdin reader is a blocking read that only the controller's end of the pipe can end:
    // do not wait for it.
    runtime.shutdown_background();
    result
}

async fn worker_main(args: &WorkerArgs) -> Result<(), String> {
    let upstream = args
        .connect
        .parse()
        .map_err(|e| format!("bad connect address {:?}: {e}", args.connect))?;
    // The worker's own proxy exists only so that it can expire its own session (the recipe needs
    // to cut the client off while a twin closes the session); cuts and stalls are the
    // controller's, on the proxy behind this one.
    let proxy = FaultProxy::start(upstream).map_err(|e| format!("cannot start the proxy: {e}"))?;
    // A restarted worker may come up while its connection is cut or the ensemble is electing a
    // leader: keep trying (bounded), as a real service would, instead of dying — a dead worker
    // would leave the controller's next command to it nowhere to go.
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
    let session = loop {
        match Session::builder(proxy.connect_string())
            .chroot(args.chroot.clone())
            .session_timeout(args.session_timeout)
            .connect()
            .await
        {
            Ok(session) => break session,
            Err(e) if tokio::time::Instant::now() < give_up => {
                eprintln!("chaos-worker: cannot connect yet ({e}); retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("cannot connect: {e}")),
        }
    };
    let ctx = std::sync::Arc::new(Ctx {
        worker: args.worker,
        inc: args.inc,
        session: session.clone(),
        hold: args.hold,
        broken: Broken::from_env(),
        rng: Mutex::new(StdRng::seed_from_u64(
            args.seed ^ ((args.worker as u64) << 32) ^ u64::from(args.inc),
        )),
        out: Mutex::new(std::io::stdout()),
        last_session: Mutex::new(session.id()),
    });
    ctx.log(Event::Start {
        session: session.id(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (exit_tx, mut exit_rx) = watch::channel(false);
    let proxy = std::sync::Arc::new(proxy);
    let commands = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match line.trim() {
                    "stop" => {
                        let _ = stop_tx.send(true);
                    }
                    "exit" => {
                        let _ = stop_tx.send(true);
                        let _ = exit_tx.send(true);
                    }
                    "expire" => {
                        let (ctx, proxy) = (ctx.clone(), proxy.clone());
                        tokio::spawn(async move {
                            let error = expire_session(&ctx.session, &proxy)
                                .await
                                .err()
                                .map(|e| e.to_string());
                            ctx.log(Event::Expired { error });
                            ctx.note_session();
                        });
                    }
                    _ => {}
                }
            }
            // End of file: the controller is gone, and so is the point of running.
            std::process::exit(3);
        })
    };
    match args.workload {
        Workload::Lock => lock::run(&ctx, stop_rx).await,
        Workload::RwLock => rwlock::run(&ctx, stop_rx).await,
        Workload::Stm => stm::run(&ctx, stop_rx).await,
    }
    ctx.log(Event::Stopped);
    let _ = exit_rx.wait_for(|e| *e).await;
    let _ = session.close().await;
    commands.abort();
    Ok(())
}

/// Sleeps a little after an error so that a persistent one (the connection is cut) does not
/// become a busy loop.
pub(crate) async fn backoff(ctx: &Ctx) {
    tokio::time::sleep(Duration::from_millis(10) + ctx.random_up_to(Duration::from_millis(20))).await;
}
