//! Condition variables against a real server: a model-checked trace of lock + condition
//! interleavings, exactly-one and all wake-ups, skipping expired waiters, hold counts restored,
//! `NotHeld`, timeouts and their race with signals, cancel safety, and a producer/consumer stress
//! test across sessions that must not lose a wake-up.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mazurka::testkit::{expire_session, FaultProxy};
use mazurka::{Condition, DistributedLock, Error, HoldState, LockGuard, Session};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

const BOUND: Duration = Duration::from_secs(20);

async fn proxied(proxy: &FaultProxy, chroot: &str) -> Session {
    Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

async fn direct(chroot: &str) -> Session {
    Session::builder(format!("{}{chroot}", common::server().connect_string()))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

async fn waiters_become(cond: &Condition, n: usize) {
    common::eventually(10, &format!("{n} waiter(s) on {}", cond.name()), || async {
        cond.waiter_count().await.unwrap() == n
    })
    .await;
}

async fn queue_becomes(lock: &DistributedLock, n: usize) {
    common::eventually(10, &format!("{n} node(s) in the lock queue"), || async {
        lock.queue_len().await.unwrap() == n
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The trace of random lock + condition interleavings equals the trace of a reference model.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Lock,
    Unlock,
    Wait(usize),
    Signal(usize),
    SignalAll(usize),
}

/// What an actor reports when a command completes (hold counts as the actor sees them).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Locked { actor: usize, holds: usize },
    Unlocked { actor: usize, holds: usize },
    UnlockNotHeld { actor: usize },
    Woke { actor: usize, cond: usize, holds: usize },
    Signalled { actor: usize, cond: usize, woke: bool },
    SignalledAll { actor: usize, cond: usize, woken: usize },
    SignalNotHeld { actor: usize, cond: usize },
}

impl Ev {
    fn actor(&self) -> usize {
        match *self {
            Ev::Locked { actor, .. }
            | Ev::Unlocked { actor, .. }
            | Ev::UnlockNotHeld { actor }
            | Ev::Woke { actor, .. }
            | Ev::Signalled { actor, .. }
            | Ev::SignalledAll { actor, .. }
            | Ev::SignalNotHeld { actor, .. } => actor,
        }
    }
}

/// What the model expects next: an exact event, or the lock going to one of a set of actors
/// (woken together by `signal_all`, they reach the lock queue in an unspecified order).
#[derive(Debug, Clone)]
enum Expect {
    Exact(Ev),
    OneOf(Vec<usize>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    Locking,
    Waiting(usize),
    Reacquiring(usize),
}

/// The reference: a fair reentrant lock with Java-style conditions, as a plain state machine.
#[derive(Debug, Clone)]
struct Model {
    holder: Option<usize>,
    /// Per actor: its holds (while holding), or the holds to restore (while waiting).
    holds: Vec<usize>,
    status: Vec<Status>,
    /// The lock queue, as groups; inside a group the order is not specified.
    queue: VecDeque<Vec<usize>>,
    waiters: Vec<VecDeque<usize>>,
}

impl Model {
    fn new(actors: usize, conds: usize) -> Model {
        Model {
            holder: None,
            holds: vec![0; actors],
            status: vec![Status::Idle; actors],
            queue: VecDeque::new(),
            waiters: vec![VecDeque::new(); conds],
        }
    }

    fn queued(&self) -> usize {
        self.queue.iter().map(Vec::len).sum::<usize>() + usize::from(self.holder.is_some())
    }

    fn idle(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.status.len()).filter(|&a| self.status[a] == Status::Idle)
    }

    /// Applies `cmd` by idle actor `a`; the events it causes, in order.
    fn apply(&mut self, a: usize, cmd: Cmd) -> Vec<Expect> {
        let holding = self.holder == Some(a);
        let mut out = Vec::new();
        match cmd {
            Cmd::Lock if holding => {
                self.holds[a] += 1;
                out.push(Expect::Exact(Ev::Locked {
                    actor: a,
                    holds: self.holds[a],
                }));
            }
            Cmd::Lock => {
                self.status[a] = Status::Locking;
                self.queue.push_back(vec![a]);
                out.extend(self.grant());
            }
            Cmd::Unlock if holding => {
                self.holds[a] -= 1;
                out.push(Expect::Exact(Ev::Unlocked {
                    actor: a,
                    holds: self.holds[a],
                }));
                if self.holds[a] == 0 {
                    self.holder = None;
                    out.extend(self.grant());
                }
            }
            Cmd::Unlock => out.push(Expect::Exact(Ev::UnlockNotHeld { actor: a })),
            Cmd::Wait(c) => {
                assert!(holding, "the driver only makes holders wait");
                self.status[a] = Status::Waiting(c);
                self.waiters[c].push_back(a);
                self.holder = None;
                out.extend(self.grant());
            }
            Cmd::Signal(c) | Cmd::SignalAll(c) if !holding => {
                out.push(Expect::Exact(Ev::SignalNotHeld { actor: a, cond: c }));
            }
            Cmd::Signal(c) => {
                let woken = self.waiters[c].pop_front();
                if let Some(w) = woken {
                    self.status[w] = Status::Reacquiring(c);
                    self.queue.push_back(vec![w]);
                }
                out.push(Expect::Exact(Ev::Signalled {
                    actor: a,
                    cond: c,
                    woke: woken.is_some(),
                }));
            }
            Cmd::SignalAll(c) => {
                let woken: Vec<usize> = self.waiters[c].drain(..).collect();
                for &w in &woken {
                    self.status[w] = Status::Reacquiring(c);
                }
                out.push(Expect::Exact(Ev::SignalledAll {
                    actor: a,
                    cond: c,
                    woken: woken.len(),
                }));
                if !woken.is_empty() {
                    self.queue.push_back(woken);
                }
            }
        }
        out
    }

    /// Hands a free lock to the head of the queue.
    fn grant(&mut self) -> Option<Expect> {
        if self.holder.is_some() {
            return None;
        }
        let group = self.queue.front()?;
        if group.len() > 1 {
            return Some(Expect::OneOf(group.clone()));
        }
        let a = group[0];
        Some(Expect::Exact(self.take(a)))
    }

    /// `a`, at the head of the queue, gets the lock.
    fn take(&mut self, a: usize) -> Ev {
        if let Some(group) = self.queue.front_mut() {
            group.retain(|&x| x != a);
            if group.is_empty() {
                self.queue.pop_front();
            }
        }
        self.holder = Some(a);
        let ev = match self.status[a] {
            Status::Locking => {
                self.holds[a] = 1;
                Ev::Locked { actor: a, holds: 1 }
            }
            Status::Reacquiring(c) => Ev::Woke {
                actor: a,
                cond: c,
                holds: self.holds[a],
            },
            other => panic!("model: actor {a} granted while {other:?}"),
        };
        self.status[a] = Status::Idle;
        ev
    }
}

/// One actor: its own session and task (the lock's owner), running commands in order.
async fn actor(
    id: usize,
    lock: DistributedLock,
    conds: Vec<Condition>,
    mut commands: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Ev>,
) {
    let mut guards: Vec<LockGuard> = Vec::new();
    while let Some(cmd) = commands.recv().await {
        let ev = match cmd {
            Cmd::Lock => {
                // A nested hold is taken in the scope of a live one (re-entry is scoped).
                let guard = match guards.first() {
                    Some(held) => held.scope(lock.lock()).await,
                    None => lock.lock().await,
                };
                guards.push(guard.unwrap());
                Ev::Locked {
                    actor: id,
                    holds: lock.hold_count(),
                }
            }
            Cmd::Unlock => match guards.pop() {
                // Outer guards released after waits must still be valid: unwrap.
                Some(g) => {
                    g.release().await.unwrap();
                    Ev::Unlocked {
                        actor: id,
                        holds: lock.hold_count(),
                    }
                }
                None => {
                    assert!(matches!(lock.unlock().await, Err(Error::NotHeld { .. })));
                    Ev::UnlockNotHeld { actor: id }
                }
            },
            Cmd::Wait(c) => {
                let guard = guards.last_mut().expect("the driver only makes holders wait");
                conds[c].wait(guard).await.unwrap();
                Ev::Woke {
                    actor: id,
                    cond: c,
                    holds: lock.hold_count(),
                }
            }
            Cmd::Signal(c) => match conds[c].signal().await {
                Ok(woke) => Ev::Signalled {
                    actor: id,
                    cond: c,
                    woke,
                },
                Err(Error::NotHeld { .. }) => Ev::SignalNotHeld { actor: id, cond: c },
                Err(err) => panic!("signal: {err}"),
            },
            Cmd::SignalAll(c) => match conds[c].signal_all().await {
                Ok(woken) => Ev::SignalledAll {
                    actor: id,
                    cond: c,
                    woken,
                },
                Err(Error::NotHeld { .. }) => Ev::SignalNotHeld { actor: id, cond: c },
                Err(err) => panic!("signal_all: {err}"),
            },
        };
        if events.send(ev).is_err() {
            break;
        }
    }
    while let Some(g) = guards.pop() {
        g.release().await.unwrap();
    }
}

fn pick(rng: &mut impl Rng, model: &Model, a: usize, conds: usize) -> Cmd {
    let c = rng.gen_range(0..conds);
    if model.holder == Some(a) {
        match rng.gen_range(0..10) {
            0 | 1 => Cmd::Lock,
            2..=4 => Cmd::Unlock,
            5 | 6 => Cmd::Wait(c),
            7 | 8 => Cmd::Signal(c),
            _ => Cmd::SignalAll(c),
        }
    } else {
        match rng.gen_range(0..10) {
            0..=6 => Cmd::Lock,
            7 => Cmd::Unlock,
            8 => Cmd::Signal(c),
            _ => Cmd::SignalAll(c),
        }
    }
}

struct Harness {
    model: Model,
    commands: Vec<mpsc::UnboundedSender<Cmd>>,
    events: mpsc::UnboundedReceiver<Ev>,
    observer: DistributedLock,
    conds: Vec<Condition>,
    trace: Vec<Ev>,
}

impl Harness {
    /// Runs one command on both sides and checks that the real events equal the model's, then
    /// waits until the real queues look like the model's before the next command (so that
    /// arrival order, and with it FIFO order, is the same on both sides).
    async fn step(&mut self, step: usize, a: usize, cmd: Cmd) {
        let expected = self.model.apply(a, cmd);
        self.commands[a].send(cmd).unwrap();
        // At most one event per actor per step; events of different actors may arrive in either
        // order (a releaser's reply and the next holder's watch race), so compare as a multiset.
        let mut real = Vec::new();
        for _ in 0..expected.len() {
            let ev = timeout(BOUND, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("step {step}: {cmd:?} by {a}: got {real:?}, expected {expected:?}")
                })
                .expect("actors alive");
            real.push(ev);
        }
        let context = format!("step {step} ({cmd:?} by {a}): real {real:?}, expected {expected:?}");
        let mut left = real.clone();
        for expect in &expected {
            let want = match expect {
                Expect::Exact(ev) => ev.clone(),
                // The lock goes to one of a group: the only event not matched yet.
                Expect::OneOf(group) => {
                    let Some(ev) = left.iter().find(|ev| group.contains(&ev.actor())) else {
                        panic!(
                            "{context}: nobody of {group:?} got the lock; trace {:#?}",
                            self.trace
                        );
                    };
                    self.model.take(ev.actor())
                }
            };
            let Some(pos) = left.iter().position(|ev| *ev == want) else {
                panic!("{context}: missing {want:?}; trace so far {:#?}", self.trace);
            };
            left.remove(pos);
        }
        self.trace.extend(real);
        let want_queue = self.model.queued();
        queue_becomes(&self.observer, want_queue).await;
        for (c, cond) in self.conds.iter().enumerate() {
            waiters_become(cond, self.model.waiters[c].len()).await;
        }
        assert!(
            self.events.try_recv().is_err(),
            "step {step}: an unexpected event"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_condition_traces_match_a_reference_model() {
    for seed in [2024, 7, 31337] {
        model_run(seed, 150).await;
    }
}

/// Drives `steps` random commands (seeded) through three actors in three sessions and the
/// model, comparing every event.
async fn model_run(seed: u64, steps: usize) {
    const ACTORS: usize = 3;
    const CONDS: usize = 2;
    let sessions = common::sessions("cond-model", ACTORS + 1).await;
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut commands = Vec::new();
    let mut tasks = Vec::new();
    for (i, session) in sessions[..ACTORS].iter().enumerate() {
        let lock = session.lock("/m/lock").unwrap();
        let conds = (0..CONDS)
            .map(|c| lock.new_condition(format!("c{c}")).unwrap())
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        commands.push(tx);
        tasks.push(tokio::spawn(actor(i, lock, conds, rx, events_tx.clone())));
    }
    drop(events_tx);
    let observer = sessions[ACTORS].lock("/m/lock").unwrap();
    let conds = (0..CONDS)
        .map(|c| observer.new_condition(format!("c{c}")).unwrap())
        .collect();
    let mut h = Harness {
        model: Model::new(ACTORS, CONDS),
        commands,
        events,
        observer,
        conds,
        trace: Vec::new(),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut counts = [0usize; 5];
    for step in 0..steps {
        let idle: Vec<usize> = h.model.idle().collect();
        let a = idle[rng.gen_range(0..idle.len())];
        // Never let everybody block: some actor must stay able to act.
        let cmd = loop {
            let cmd = pick(&mut rng, &h.model, a, CONDS);
            let mut after = h.model.clone();
            let expected = after.apply(a, cmd);
            let progress =
                after.idle().next().is_some() || expected.iter().any(|e| matches!(e, Expect::OneOf(_)));
            if progress {
                break cmd;
            }
        };
        counts[match cmd {
            Cmd::Lock => 0,
            Cmd::Unlock => 1,
            Cmd::Wait(_) => 2,
            Cmd::Signal(_) => 3,
            Cmd::SignalAll(_) => 4,
        }] += 1;
        h.step(step, a, cmd).await;
    }
    // Wind down: wake everybody and release everything, still checked against the model.
    let mut step = steps;
    while h.model.holder.is_some() || h.model.status.iter().any(|s| *s != Status::Idle) {
        let (a, cmd) = match h.model.holder {
            Some(holder) => match h.model.waiters.iter().position(|w| !w.is_empty()) {
                Some(c) => (holder, Cmd::SignalAll(c)),
                None => (holder, Cmd::Unlock),
            },
            None => (h.model.idle().next().expect("an actor can act"), Cmd::Lock),
        };
        h.step(step, a, cmd).await;
        step += 1;
    }
    let woke = h.trace.iter().filter(|e| matches!(e, Ev::Woke { .. })).count();
    println!(
        "seed {seed}: commands (lock, unlock, wait, signal, signal_all) {counts:?}; {woke} wake-ups; trace of {} events",
        h.trace.len()
    );
    assert!(woke >= 5, "the scenario must exercise waits: {counts:?}");
    drop(h.commands);
    for t in tasks {
        timeout(BOUND, t).await.unwrap().unwrap();
    }
    assert_eq!(h.observer.queue_len().await.unwrap(), 0);
    for cond in &h.conds {
        assert_eq!(cond.waiter_count().await.unwrap(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Wake-ups: exactly one, all, and never an expired waiter.

/// Starts a task in `session` that takes the lock, waits on `cond_name` once, reports, releases.
fn waiter(
    session: &Session,
    lock_path: &'static str,
    cond_name: &'static str,
    woken: mpsc::UnboundedSender<usize>,
    id: usize,
) -> tokio::task::JoinHandle<mazurka::Result<usize>> {
    let lock = session.lock(lock_path).unwrap();
    let cond = lock.new_condition(cond_name).unwrap();
    tokio::spawn(async move {
        let mut guard = lock.lock().await?;
        cond.wait(&mut guard).await?;
        let holds = lock.hold_count();
        let _ = woken.send(id);
        guard.release().await?;
        Ok(holds)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_wakes_exactly_one_waiter_and_signal_all_wakes_every_waiter() {
    let sessions = common::sessions("cond-wake", 5).await;
    let (tx, mut woken) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let signaller = sessions[4].lock("/w/lock").unwrap();
    let cond = signaller.new_condition("ready").unwrap();
    for (i, session) in sessions[..4].iter().enumerate() {
        tasks.push(waiter(session, "/w/lock", "ready", tx.clone(), i));
        waiters_become(&cond, i + 1).await;
    }
    // One signal: the oldest waiter, and only it, wakes.
    let guard = signaller.lock().await.unwrap();
    assert!(cond.signal().await.unwrap());
    assert_eq!(cond.waiter_count().await.unwrap(), 3);
    guard.release().await.unwrap();
    assert_eq!(timeout(BOUND, woken.recv()).await.unwrap(), Some(0));
    // Once it has released the lock again (the queue is empty), still only one was woken.
    queue_becomes(&signaller, 0).await;
    assert!(woken.try_recv().is_err(), "a second waiter woke on one signal");
    assert_eq!(cond.waiter_count().await.unwrap(), 3);

    // signal_all: the other three.
    let guard = signaller.lock().await.unwrap();
    assert_eq!(cond.signal_all().await.unwrap(), 3);
    assert_eq!(cond.waiter_count().await.unwrap(), 0);
    guard.release().await.unwrap();
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(timeout(BOUND, woken.recv()).await.unwrap().unwrap());
    }
    rest.sort_unstable();
    assert_eq!(rest, vec![1, 2, 3]);
    for t in tasks {
        assert_eq!(timeout(BOUND, t).await.unwrap().unwrap().unwrap(), 1);
    }
    // Nobody left: signalling wakes nobody.
    let guard = signaller.lock().await.unwrap();
    assert!(!cond.signal().await.unwrap());
    assert_eq!(cond.signal_all().await.unwrap(), 0);
    guard.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_skips_a_waiter_whose_session_expired_and_wakes_a_live_one() {
    let chroot = mazurka::testkit::unique_chroot("cond-expiry");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let doomed = proxied(&proxy, &chroot).await;
    let live = direct(&chroot).await;
    let signaller = direct(&chroot).await;
    let lock = signaller.lock("/e/lock").unwrap();
    let cond = lock.new_condition("ready").unwrap();
    let (tx, mut woken) = mpsc::unbounded_channel();

    // The doomed waiter waits first (it is the oldest), the live one second.
    let doomed_task = waiter(&doomed, "/e/lock", "ready", tx.clone(), 0);
    waiters_become(&cond, 1).await;
    let live_task = waiter(&live, "/e/lock", "ready", tx, 1);
    waiters_become(&cond, 2).await;

    expire_session(&doomed, &proxy).await.unwrap();
    let outcome = timeout(BOUND, doomed_task).await.unwrap().unwrap();
    assert!(matches!(outcome, Err(Error::SessionLost)), "{outcome:?}");
    // Its node went with its session (and its failed wait passed nothing on).
    assert_eq!(cond.waiter_count().await.unwrap(), 1);
    assert!(woken.try_recv().is_err());

    let guard = lock.lock().await.unwrap();
    assert!(
        cond.signal().await.unwrap(),
        "the signal must reach the live waiter"
    );
    guard.release().await.unwrap();
    assert_eq!(timeout(BOUND, woken.recv()).await.unwrap(), Some(1));
    assert_eq!(timeout(BOUND, live_task).await.unwrap().unwrap().unwrap(), 1);
    assert_eq!(cond.waiter_count().await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Hold counts, guards, NotHeld.

#[tokio::test]
async fn wait_restores_the_hold_count_and_keeps_every_guard_valid() {
    let sessions = common::sessions("cond-holds", 2).await;
    let lock = sessions[0].lock("/h/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let theirs = sessions[1].lock("/h/lock").unwrap();
    let their_cond = theirs.new_condition("c").unwrap();

    let outer = lock.lock().await.unwrap();
    let middle = outer.scope(lock.lock()).await.unwrap();
    let mut inner = outer.scope(lock.lock()).await.unwrap();
    assert_eq!(lock.hold_count(), 3);
    let before = outer.fencing_token();
    let old_node = outer.node_path();

    let signaller = tokio::spawn(async move {
        // The lock is free while the owner waits, whatever its hold count was.
        let g = theirs.lock().await.unwrap();
        assert_eq!(their_cond.waiter_count().await.unwrap(), 1);
        assert!(their_cond.signal().await.unwrap());
        g.release().await.unwrap();
    });
    cond.wait(&mut inner).await.unwrap();
    timeout(BOUND, signaller).await.unwrap().unwrap();

    assert_eq!(lock.hold_count(), 3, "held 3 times before the wait, 3 after");
    // Every guard of the acquisition holds the new node and its larger token.
    let after = inner.fencing_token();
    assert!(after > before, "a new node, a new token: {before} → {after}");
    for g in [&outer, &middle, &inner] {
        assert_eq!(g.fencing_token(), after);
        assert_eq!(g.state(), HoldState::Held);
        assert_ne!(g.node_path(), old_node);
    }
    // Fenced writes through an outer guard use the new node.
    outer
        .fenced()
        .create("/h/resource", b"after the wait".to_vec())
        .unwrap()
        .commit()
        .await
        .unwrap();
    // Releases match in any order; the last one frees the lock.
    middle.release().await.unwrap();
    assert_eq!(lock.hold_count(), 2);
    outer.release().await.unwrap();
    assert_eq!(lock.hold_count(), 1);
    assert_eq!(lock.queue_len().await.unwrap(), 1);
    inner.release().await.unwrap();
    assert_eq!(lock.hold_count(), 0);
    assert_eq!(lock.queue_len().await.unwrap(), 0);
}

#[tokio::test]
async fn waiting_or_signalling_without_the_lock_is_not_held() {
    let session = common::session("cond-notheld").await;
    let lock = session.lock("/n/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    assert_eq!(cond.path().as_str(), "/n/lock.condition.c");
    for bad in ["", "a/b", ".", ".."] {
        assert!(
            matches!(lock.new_condition(bad), Err(Error::InvalidPath { .. })),
            "{bad:?}"
        );
    }

    // Not holding at all.
    assert!(matches!(cond.signal().await, Err(Error::NotHeld { .. })));
    assert!(matches!(cond.signal_all().await, Err(Error::NotHeld { .. })));

    // A guard of another lock.
    let other = session.lock("/n/other").unwrap();
    let mut foreign = other.lock().await.unwrap();
    assert!(matches!(
        cond.wait(&mut foreign).await,
        Err(Error::NotHeld { .. })
    ));
    assert_eq!(foreign.state(), HoldState::Held);
    foreign.release().await.unwrap();

    // Held by this task, but waited on (or signalled) from another task.
    let guard = lock.lock().await.unwrap();
    let (cond2, lock2) = (cond.clone(), lock.clone());
    let (outcome, mut guard, signal) = tokio::spawn(async move {
        let mut guard = guard;
        let outcome = cond2.wait(&mut guard).await;
        let signal = cond2.signal().await;
        assert_eq!(lock2.hold_count(), 0);
        (outcome, guard, signal)
    })
    .await
    .unwrap();
    assert!(matches!(outcome, Err(Error::NotHeld { .. })), "{outcome:?}");
    assert!(matches!(signal, Err(Error::NotHeld { .. })), "{signal:?}");
    assert_eq!(guard.state(), HoldState::Held);
    assert_eq!(lock.hold_count(), 1);

    // A hold given up with unlock(): its guard is inert and cannot wait.
    let mut nested = guard.scope(lock.lock()).await.unwrap();
    lock.unlock().await.unwrap();
    assert!(matches!(cond.wait(&mut nested).await, Err(Error::NotHeld { .. })));
    drop(nested);
    assert_eq!(lock.hold_count(), 1);
    // The live guard still can (and, with nobody to signal, times out).
    assert!(!cond
        .wait_for(&mut guard, Duration::from_millis(50))
        .await
        .unwrap());
    assert_eq!(cond.waiter_count().await.unwrap(), 0, "nothing was left behind");
    guard.release().await.unwrap();
    assert_eq!(lock.queue_len().await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

#[tokio::test]
async fn wait_for_times_out_within_its_bound_and_leaves_no_waiter_node() {
    let session = common::session("cond-timeout").await;
    let lock = session.lock("/t/lock").unwrap();
    let cond = lock.new_condition("never").unwrap();
    let mut guard = lock.lock().await.unwrap();
    let _nested = guard.scope(lock.lock()).await.unwrap();
    let before = guard.fencing_token();
    let started = Instant::now();
    let signalled = cond
        .wait_for(&mut guard, Duration::from_millis(300))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(!signalled);
    assert!(took >= Duration::from_millis(300), "returned early: {took:?}");
    assert!(took < Duration::from_secs(3), "bound not respected: {took:?}");
    assert_eq!(
        cond.waiter_count().await.unwrap(),
        0,
        "the timed-out waiter removed its node"
    );
    assert_eq!(lock.hold_count(), 2, "held again, with its holds restored");
    assert!(guard.fencing_token() > before);
    assert_eq!(guard.state(), HoldState::Held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_racing_the_timeout_is_never_lost() {
    const ROUNDS: usize = 40;
    const WAIT: Duration = Duration::from_millis(30);
    let sessions = common::sessions("cond-race", 2).await;
    let w_lock = sessions[0].lock("/r/lock").unwrap();
    let w_cond = w_lock.new_condition("c").unwrap();
    let s_lock = sessions[1].lock("/r/lock").unwrap();
    let s_cond = s_lock.new_condition("c").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut signalled, mut timed_out) = (0, 0);
    for round in 0..ROUNDS {
        let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
        let (lock, cond) = (w_lock.clone(), w_cond.clone());
        let waiter = tokio::spawn(async move {
            let mut g = lock.lock().await.unwrap();
            let _ = locked_tx.send(());
            let woke = cond.wait_for(&mut g, WAIT).await.unwrap();
            assert_eq!(lock.hold_count(), 1);
            g.release().await.unwrap();
            woke
        });
        locked_rx.await.unwrap();
        // Queued behind the waiter: granted once its wait has released the lock.
        let g = s_lock.lock().await.unwrap();
        // Signal somewhere around the waiter's deadline (the workload, not synchronisation).
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..60))).await;
        let delivered = s_cond.signal().await.unwrap();
        g.release().await.unwrap();
        let woke = timeout(BOUND, waiter).await.unwrap().unwrap();
        assert_eq!(
            woke, delivered,
            "round {round}: the signal reported waking the waiter = {delivered}, the waiter saw signalled = {woke}"
        );
        assert_eq!(s_cond.waiter_count().await.unwrap(), 0, "round {round}");
        if woke {
            signalled += 1;
        } else {
            timed_out += 1;
        }
    }
    println!("{signalled} rounds signalled, {timed_out} timed out");
    assert!(
        signalled > 0 && timed_out > 0,
        "both sides of the race must occur"
    );
}

// ---------------------------------------------------------------------------------------------
// Cancel safety and outer guards.

#[tokio::test]
async fn a_wait_dropped_before_it_released_the_lock_changes_nothing() {
    let chroot = mazurka::testkit::unique_chroot("cond-cancel-early");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let session = proxied(&proxy, &chroot).await;
    let observer = direct(&chroot).await;
    let lock = session.lock("/x/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let their_cond = observer.lock("/x/lock").unwrap().new_condition("c").unwrap();
    let mut guard = lock.lock().await.unwrap();
    let _nested = guard.scope(lock.lock()).await.unwrap();
    let token = guard.fencing_token();
    // The waiter node's create is held in the proxy: the wait is dropped before it releases.
    proxy.stall();
    assert!(timeout(Duration::from_millis(200), cond.wait(&mut guard))
        .await
        .is_err());
    proxy.heal();
    common::eventually(10, "connected again", || async {
        guard.state() == HoldState::Held
    })
    .await;
    assert_eq!(lock.hold_count(), 2);
    assert_eq!(
        guard.fencing_token(),
        token,
        "same node: the lock was never released"
    );
    common::eventually(10, "the half-made waiter is swept", || async {
        their_cond.waiter_count().await.unwrap() == 0
    })
    .await;
    guard
        .fenced()
        .create("/x/resource", Vec::new())
        .unwrap()
        .commit()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wait_dropped_after_it_released_the_lock_leaves_inert_guards() {
    let sessions = common::sessions("cond-cancel-late", 2).await;
    let lock = sessions[0].lock("/y/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let observer = sessions[1].lock("/y/lock").unwrap();
    let their_cond = observer.new_condition("c").unwrap();
    let outer = lock.lock().await.unwrap();
    let mut guard = outer.scope(lock.lock()).await.unwrap();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        waiters_become(&their_cond, 1).await;
        queue_becomes(&observer, 0).await; // released in full
        let _ = cancel_tx.send(());
        (observer, their_cond)
    });
    tokio::select! {
        r = cond.wait(&mut guard) => panic!("nobody signalled, yet the wait returned {r:?}"),
        _ = cancel_rx => {}
    }
    let (observer, their_cond) = watcher.await.unwrap();
    // The lock is not held and not taken back: every guard says so.
    assert_eq!(guard.state(), HoldState::Lost);
    assert_eq!(outer.state(), HoldState::Lost);
    assert_eq!(lock.hold_count(), 0);
    assert!(matches!(cond.signal().await, Err(Error::NotHeld { .. })));
    let fenced = outer
        .fenced()
        .create("/y/resource", Vec::new())
        .unwrap()
        .commit()
        .await;
    assert!(matches!(fenced, Err(Error::NotHeld { .. })), "{fenced:?}");
    assert!(matches!(guard.release().await, Err(Error::NotHeld { .. })));
    common::eventually(10, "the waiter node is removed", || async {
        their_cond.waiter_count().await.unwrap() == 0
    })
    .await;
    // A fresh acquisition works and is not confused with the inert guard.
    let fresh = lock.lock().await.unwrap();
    assert_eq!(lock.hold_count(), 1);
    drop(outer); // inert: sends nothing, changes nothing
    assert_eq!(lock.hold_count(), 1);
    assert_eq!(observer.queue_len().await.unwrap(), 1);
    fresh.release().await.unwrap();
    assert_eq!(observer.queue_len().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_consumed_by_a_dropped_wait_is_passed_on() {
    let sessions = common::sessions("cond-forward", 3).await;
    let signaller = sessions[2].lock("/f/lock").unwrap();
    let cond = signaller.new_condition("c").unwrap();
    // A waits first, then B.
    let (cancel_a, cancel_rx) = tokio::sync::oneshot::channel::<()>();
    let a = {
        let lock = sessions[0].lock("/f/lock").unwrap();
        let cond = lock.new_condition("c").unwrap();
        tokio::spawn(async move {
            let mut g = lock.lock().await.unwrap();
            tokio::select! {
                r = cond.wait(&mut g) => panic!("A must be dropped while taking the lock back, got {r:?}"),
                _ = cancel_rx => {}
            }
            (g.state(), lock.hold_count())
        })
    };
    waiters_become(&cond, 1).await;
    let (tx, mut woken) = mpsc::unbounded_channel();
    let b = waiter(&sessions[1], "/f/lock", "c", tx, 1);
    waiters_become(&cond, 2).await;

    let guard = signaller.lock().await.unwrap();
    assert!(cond.signal().await.unwrap()); // wakes A, the oldest
    queue_becomes(&signaller, 2).await; // A queues to take the lock back, behind us
    cancel_a.send(()).unwrap();
    let (state, holds) = timeout(BOUND, a).await.unwrap().unwrap();
    assert_eq!((state, holds), (HoldState::Lost, 0));
    // A's consumed signal went on to B, with no second signal() call.
    waiters_become(&cond, 0).await;
    guard.release().await.unwrap();
    assert_eq!(timeout(BOUND, woken.recv()).await.unwrap(), Some(1));
    assert_eq!(timeout(BOUND, b).await.unwrap().unwrap().unwrap(), 1);
    queue_becomes(&signaller, 0).await;
}

#[tokio::test]
async fn an_outer_guard_reports_waiting_and_is_not_lost_across_an_inner_wait() {
    let sessions = common::sessions("cond-outer", 2).await;
    let lock = sessions[0].lock("/o/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let theirs = sessions[1].lock("/o/lock").unwrap();
    let their_cond = theirs.new_condition("c").unwrap();
    let outer = lock.lock().await.unwrap();
    let mut inner = outer.scope(lock.lock()).await.unwrap();
    let before = outer.fencing_token();
    let (acquired_tx, acquired) = tokio::sync::oneshot::channel::<()>();
    let (observed, observed_rx) = tokio::sync::oneshot::channel::<HoldState>();
    let signaller = tokio::spawn(async move {
        let g = theirs.lock().await.unwrap();
        acquired_tx.send(()).unwrap();
        let seen = observed_rx.await.unwrap(); // the owner looked at its outer guard meanwhile
        assert!(their_cond.signal().await.unwrap());
        g.release().await.unwrap();
        seen
    });
    {
        let wait = cond.wait(&mut inner);
        tokio::pin!(wait);
        // While another session holds the lock, the owner's outer guard says Waiting.
        let observe = async {
            acquired.await.unwrap();
            observed.send(outer.state()).unwrap();
            std::future::pending::<()>().await;
        };
        tokio::select! {
            r = &mut wait => r.unwrap(),
            () = outer.lost() => panic!("lost() completed because of the wait's own release"),
            () = observe => unreachable!(),
        }
    }
    let seen = timeout(BOUND, signaller).await.unwrap().unwrap();
    assert_eq!(seen, HoldState::Waiting);
    assert_eq!(outer.state(), HoldState::Held);
    assert!(outer.fencing_token() > before);
    // lost() now watches the new node, which is there.
    inner.release().await.unwrap();
    assert!(
        timeout(Duration::from_millis(200), outer.lost()).await.is_err(),
        "still held"
    );
    outer.release().await.unwrap();
}

#[tokio::test]
async fn waiters_live_next_to_the_lock_directory_and_both_are_reaped() {
    let session = common::session("cond-reap").await;
    let lock = session.lock("/d/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let mut guard = lock.lock().await.unwrap();
    assert!(!cond
        .wait_for(&mut guard, Duration::from_millis(100))
        .await
        .unwrap());
    // Only contender nodes in the lock directory, so it can be reaped when unused.
    let children = session.list_children("/d/lock").await.unwrap();
    assert_eq!(children.len(), 1);
    assert!(children[0].contains("-lock-"), "{children:?}");
    guard.release().await.unwrap();
    common::eventually(15, "lock and waiters' directories reaped", || async {
        !session.exists("/d/lock").await.unwrap() && !session.exists("/d/lock.condition.c").await.unwrap()
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Stress: a bounded buffer across sessions.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_and_consumers_across_sessions_lose_no_wake_up() {
    const PRODUCERS: usize = 3;
    const CONSUMERS: usize = 3;
    const ITEMS: usize = 40; // per producer
    const CAPACITY: usize = 2;
    const TOTAL: usize = PRODUCERS * ITEMS;
    let sessions = common::sessions("cond-stress", PRODUCERS + CONSUMERS).await;
    // The buffer stands for a shared resource: only touched under the distributed lock.
    let buffer = Arc::new(Mutex::new(VecDeque::new()));
    let consumed_total = Arc::new(AtomicUsize::new(0));
    let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..TOTAL).map(|_| AtomicUsize::new(0)).collect());
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let enter = |inside: &AtomicUsize, overlaps: &AtomicUsize| {
        if inside.fetch_add(1, Ordering::SeqCst) != 0 {
            overlaps.fetch_add(1, Ordering::SeqCst);
        }
    };
    let mut tasks = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let lock = session.lock("/s/lock").unwrap();
        let not_full = lock.new_condition("not-full").unwrap();
        let not_empty = lock.new_condition("not-empty").unwrap();
        let (buffer, consumed_total, seen, inside, overlaps) = (
            buffer.clone(),
            consumed_total.clone(),
            seen.clone(),
            inside.clone(),
            overlaps.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut done = 0usize;
            if i < PRODUCERS {
                for n in 0..ITEMS {
                    let mut g = lock.lock().await.unwrap();
                    while buffer.lock().unwrap().len() == CAPACITY {
                        not_full.wait(&mut g).await.unwrap();
                    }
                    enter(&inside, &overlaps);
                    buffer.lock().unwrap().push_back(i * ITEMS + n);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    not_empty.signal().await.unwrap();
                    g.release().await.unwrap();
                    done += 1;
                }
            } else {
                loop {
                    let mut g = lock.lock().await.unwrap();
                    while buffer.lock().unwrap().is_empty() && consumed_total.load(Ordering::SeqCst) < TOTAL {
                        not_empty.wait(&mut g).await.unwrap();
                    }
                    if consumed_total.load(Ordering::SeqCst) == TOTAL {
                        g.release().await.unwrap();
                        break;
                    }
                    enter(&inside, &overlaps);
                    let item = buffer.lock().unwrap().pop_front().expect("not empty");
                    inside.fetch_sub(1, Ordering::SeqCst);
                    seen[item].fetch_add(1, Ordering::SeqCst);
                    done += 1;
                    if consumed_total.fetch_add(1, Ordering::SeqCst) + 1 == TOTAL {
                        not_empty.signal_all().await.unwrap(); // let the other consumers finish
                    }
                    not_full.signal().await.unwrap();
                    g.release().await.unwrap();
                }
            }
            done
        }));
    }
    let mut per_task = Vec::new();
    for t in tasks {
        per_task.push(
            timeout(Duration::from_secs(180), t)
                .await
                .expect("stuck: a wake-up was lost")
                .unwrap(),
        );
    }
    println!("items per producer / consumer: {per_task:?}");
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "two holders overlapped");
    assert_eq!(consumed_total.load(Ordering::SeqCst), TOTAL);
    for (item, count) in seen.iter().enumerate() {
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "item {item} consumed {count:?} times"
        );
    }
    assert_eq!(per_task[PRODUCERS..].iter().sum::<usize>(), TOTAL);
    let lock = sessions[0].lock("/s/lock").unwrap();
    assert_eq!(lock.queue_len().await.unwrap(), 0);
    assert_eq!(
        lock.new_condition("not-full")
            .unwrap()
            .waiter_count()
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        lock.new_condition("not-empty")
            .unwrap()
            .waiter_count()
            .await
            .unwrap(),
        0
    );
}

/// Nested holds given back by other tasks, on other threads, while their acquisition waits
/// (parked), while the wait takes the lock back, or after: each goes exactly once, none comes back
/// with the restored holds, and the lock stays held by the waiter until its own last hold goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn nested_holds_given_back_by_other_tasks_during_waits_are_counted_exactly() {
    let sessions = common::sessions("cond-nested", 2).await;
    let lock = sessions[0].lock("/cn/lock").unwrap();
    let cond = lock.new_condition("c").unwrap();
    let theirs = sessions[1].lock("/cn/lock").unwrap();
    let their_cond = theirs.new_condition("c").unwrap();
    let mut outer = lock.lock().await.unwrap();
    let mut token = outer.fencing_token();
    for round in 0..10 {
        let mut nested = Vec::new();
        for _ in 0..8 {
            nested.push(outer.scope(lock.lock()).await.unwrap());
        }
        assert_eq!(lock.hold_count(), 9, "round {round}");
        // Another task gives back half of them while the lock is certainly parked (it holds
        // the lock then), and the rest as the wait takes the lock back.
        let signaller = {
            let (theirs, their_cond) = (theirs.clone(), their_cond.clone());
            tokio::spawn(async move {
                let g = theirs.lock().await.unwrap();
                let later = nested.split_off(4);
                for parked in nested {
                    parked.release().await.unwrap();
                }
                assert!(their_cond.signal().await.unwrap(), "the waiter is registered");
                g.release().await.unwrap();
                for (i, g) in later.into_iter().enumerate() {
                    for _ in 0..i {
                        tokio::task::yield_now().await;
                    }
                    g.release().await.unwrap();
                }
            })
        };
        timeout(BOUND, cond.wait(&mut outer)).await.unwrap().unwrap();
        timeout(BOUND, signaller).await.unwrap().unwrap();
        assert_eq!(
            lock.hold_count(),
            1,
            "round {round}: only the waiter's own hold is left"
        );
        assert!(
            outer.fencing_token() > token,
            "round {round}: the wait took the lock again"
        );
        token = outer.fencing_token();
        assert_eq!(
            theirs.queue_len().await.unwrap(),
            1,
            "round {round}: held by the waiter alone"
        );
    }
    outer.release().await.unwrap();
    assert_eq!(lock.hold_count(), 0);
    assert_eq!(
        theirs.queue_len().await.unwrap(),
        0,
        "the last hold removed the node"
    );
}
