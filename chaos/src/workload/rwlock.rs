//! The read-write lock's workload. A holder of either side creates a marker (fenced) naming its
//! side and its lock node, lists the markers and the lock's directory, and notes every other
//! marker whose node still exists and that it must not share the lock with (a writer with
//! anyone, a reader with a writer). After its hold it removes its marker with a fenced commit —
//! a writer together with an increment of the counter — and only if that commit lands (so its
//! node existed after the listings) does it report the others as an [`Event::Overlap`].
//!
//! Why a marker seen with its node is a violation: a holder creates its marker after its grant
//! and deletes it before its release, and a lock node is never re-created; so a listed marker
//! whose node is listed afterwards belongs to a holder that held at the time of the listing.

use std::collections::{HashMap, HashSet};

use mazurka::DistributedRwLock;
use tokio::sync::watch;

use super::{backoff, basename, counter, paths, stopped, timed, Broken, Ctx, Flow};
use crate::event::{Event, Mode};

/// Share of requests that are for the write side.
const WRITE_SHARE: f64 = 0.3;

pub(crate) async fn run(ctx: &Ctx, mut stop: watch::Receiver<bool>) {
    let path = match ctx.broken {
        Some(Broken::SplitLock) => format!("{}-w{}", paths::RW, ctx.worker),
        _ => paths::RW.to_owned(),
    };
    let lock = match ctx.session.rw_lock(path) {
        Ok(lock) => lock,
        Err(e) => {
            ctx.log(Event::StepError {
                op: 0,
                step: "rwlock path".into(),
                error: e.to_string(),
            });
            return;
        }
    };
    let mut op = 0;
    loop {
        op += 1;
        if let Flow::Stop = one(ctx, &lock, op, &mut stop).await {
            return;
        }
        ctx.note_session();
    }
}

/// A marker's name: `<r|w>.w<worker>.i<inc>.o<op>.<lock node name>`.
#[must_use]
pub fn marker_name(mode: Mode, worker: usize, inc: u32, op: u64, node: &str) -> String {
    let side = if mode == Mode::Write { 'w' } else { 'r' };
    format!("{side}.w{worker}.i{inc}.o{op}.{node}")
}

/// A marker's side, worker and lock node name.
#[must_use]
pub fn parse_marker(name: &str) -> Option<(Mode, usize, &str)> {
    let mut parts = name.splitn(5, '.');
    let mode = match parts.next()? {
        "w" => Mode::Write,
        "r" => Mode::Read,
        _ => return None,
    };
    let worker = parts.next()?.strip_prefix('w')?.parse().ok()?;
    let node = parts.nth(2)?;
    Some((mode, worker, node))
}

enum Guard {
    Read(mazurka::ReadGuard),
    Write(mazurka::WriteGuard),
}

impl Guard {
    fn fenced(&self) -> mazurka::Fenced<'_> {
        match self {
            Guard::Read(g) => g.fenced(),
            Guard::Write(g) => g.fenced(),
        }
    }

    async fn release(self) -> mazurka::Result<()> {
        match self {
            Guard::Read(g) => g.release().await,
            Guard::Write(g) => g.release().await,
        }
    }
}

async fn one(ctx: &Ctx, lock: &DistributedRwLock, op: u64, stop: &mut watch::Receiver<bool>) -> Flow {
    if *stop.borrow() {
        return Flow::Stop;
    }
    let mode = if ctx.chance(WRITE_SHARE) {
        Mode::Write
    } else {
        Mode::Read
    };
    ctx.log(Event::Request { op, mode });
    let acquire = async {
        match mode {
            Mode::Write => lock.write().await.map(|g| {
                let (t, n) = (g.fencing_token(), g.node_path().to_owned());
                (Guard::Write(g), t, n)
            }),
            _ => lock.read().await.map(|g| {
                let (t, n) = (g.fencing_token(), g.node_path().to_owned());
                (Guard::Read(g), t, n)
            }),
        }
    };
    let (result, poll_start) = tokio::select! {
        biased;
        () = stopped(stop) => return Flow::Stop,
        r = timed(acquire) => r,
    };
    let (guard, token, node_path) = match result {
        Ok(held) => held,
        Err(e) => {
            ctx.log(Event::LockError {
                op,
                error: e.to_string(),
            });
            backoff(ctx).await;
            return Flow::Continue;
        }
    };
    let node = basename(&node_path);
    ctx.log(Event::Granted {
        op,
        mode,
        token,
        node: node.clone(),
        poll_start,
    });
    section(ctx, &guard, op, mode, token, &node_path, &node).await;
    let error = guard.release().await.err().map(|e| e.to_string());
    ctx.log(Event::Released { op, error });
    Flow::Continue
}

async fn section(ctx: &Ctx, guard: &Guard, op: u64, mode: Mode, token: i64, node_path: &str, node: &str) {
    let step_error = |step: &str, error: String| {
        ctx.log(Event::StepError {
            op,
            step: step.into(),
            error,
        });
    };
    let marker = format!(
        "{}/{}",
        paths::MARKERS,
        marker_name(mode, ctx.worker, ctx.inc, op, node)
    );
    let created = match guard.fenced().create(&marker, Vec::new()) {
        Ok(fenced) => fenced.commit().await,
        Err(e) => Err(e),
    };
    if let Err(e) = created {
        return step_error("create marker", e.to_string());
    }
    let dir = node_path.rsplit_once('/').map_or("/", |(d, _)| d);
    let markers = match ctx.session.list_children(paths::MARKERS).await {
        Ok(m) => m,
        Err(e) => return step_error("list markers", e.to_string()),
    };
    let own = basename(&marker);
    // Markers of holders this one must not share the lock with, whatever their node's state.
    let candidates: Vec<(String, String)> = markers
        .into_iter()
        .filter(|m| *m != own)
        .filter_map(|m| {
            let (other, worker, other_node) = parse_marker(&m)?;
            let clash = mode == Mode::Write || other == Mode::Write;
            // A split lock (broken mode) puts each worker's nodes in a directory of its own.
            let other_dir = match ctx.broken {
                Some(Broken::SplitLock) => format!("{}-w{worker}", paths::RW),
                _ => dir.to_owned(),
            };
            let node = other_node.to_owned();
            clash.then_some((m, format!("{other_dir}/{node}")))
        })
        .collect();
    // Listed after the markers: a node still there was there when its marker was listed.
    let mut listed: HashMap<String, HashSet<String>> = HashMap::new();
    let mut others = Vec::new();
    for (m, node_path) in candidates {
        let (other_dir, other_node) = node_path.rsplit_once('/').unwrap_or(("/", &node_path));
        if !listed.contains_key(other_dir) {
            match ctx.session.list_children(other_dir).await {
                Ok(n) => listed.insert(other_dir.to_owned(), n.into_iter().collect()),
                Err(mazurka::Error::ZooKeeper {
                    code: mazurka::ZkErrorCode::NoNode,
                    ..
                }) => listed.insert(other_dir.to_owned(), HashSet::new()),
                Err(e) => return step_error("list lock directory", e.to_string()),
            };
        }
        if listed.get(other_dir).is_some_and(|n| n.contains(other_node)) {
            others.push(m);
        }
    }
    let current = if mode == Mode::Write {
        match counter::read(&ctx.session).await {
            Ok(c) => Some(c),
            Err(e) => return step_error("read counter", e),
        }
    } else {
        None
    };
    tokio::time::sleep(ctx.random_up_to(ctx.hold)).await;
    let batch = guard.fenced().delete(&marker).and_then(|f| match current {
        Some(c) => counter::add_increment(f, ctx, op, c + 1, token),
        None => Ok(f),
    });
    let fenced = match batch {
        Ok(f) => f,
        Err(e) => return step_error("fenced batch", e.to_string()),
    };
    let n = current.map_or(0, |c| c + 1);
    if counter::commit_logged(ctx, op, n, token, fenced).await && !others.is_empty() {
        ctx.log(Event::Overlap { op, mode, others });
    }
}
