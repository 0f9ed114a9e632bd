//! Every way a lock call can fail leaves no node behind: a contender node of a failed, cancelled
//! or timed-out `lock()`, `try_lock_for`, `read()`, `write()` or condition wait would block
//! everyone queued after it until its session ends. Checked by listing the directories after each
//! failure mode, against a real server.

mod common;

use std::time::Duration;

use mazurka::testkit::{expire_session, unique_chroot, FaultProxy};
use mazurka::{Error, Session};
use tokio::time::timeout;

const BOUND: Duration = Duration::from_secs(20);
const PATH: &str = "/o/lock";
const CONDITION_DIR: &str = "/o/lock.condition.ready";

/// What the contender does.
#[derive(Debug, Clone, Copy)]
enum Call {
    Lock,
    Read,
    Write,
    /// A condition wait (the contender holds the lock, then waits on the condition).
    Wait,
}

/// How it fails.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The pending call is dropped while it waits.
    Cancelled,
    /// Its session expires while it waits.
    Expired,
    /// Its session is closed while it waits.
    Closed,
    /// Its timeout passes (`try_*_for`; not for condition waits, where a timeout is no error).
    TimedOut,
}

/// Runs `call` on `session` until it returns; `bounded` uses the timeout forms.
async fn run(call: Call, session: Session, bounded: bool) -> Result<bool, Error> {
    let short = Duration::from_millis(300);
    match call {
        Call::Lock => {
            let lock = session.lock(PATH)?;
            if bounded {
                Ok(lock.try_lock_for(short).await?.is_some())
            } else {
                lock.lock().await.map(|_| true)
            }
        }
        Call::Read | Call::Write => {
            let rw = session.rw_lock(PATH)?;
            match (call, bounded) {
                (Call::Read, true) => Ok(rw.try_read_for(short).await?.is_some()),
                (Call::Read, false) => rw.read().await.map(|_| true),
                (_, true) => Ok(rw.try_write_for(short).await?.is_some()),
                (_, false) => rw.write().await.map(|_| true),
            }
        }
        Call::Wait => {
            let lock = session.lock(PATH)?;
            let ready = lock.new_condition("ready")?;
            let mut guard = lock.lock().await?;
            ready.wait(&mut guard).await?;
            Ok(true)
        }
    }
}

/// Nodes under `dir` (none if it does not exist).
async fn nodes(session: &Session, dir: &str) -> Vec<String> {
    session.list_children(dir).await.unwrap()
}

async fn check(call: Call, failure: Failure) {
    let chroot = unique_chroot("orphans");
    let proxy = FaultProxy::start(common::server().addr()).unwrap();
    let flaky = Session::builder(format!("{}{chroot}", proxy.connect_string()))
        .session_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let steady = Session::connect(format!("{}{chroot}", common::server().connect_string()))
        .await
        .unwrap();

    // Something the contender has to wait for: a holder (a writer, for the read-write lock).
    let exclusive = steady.lock(PATH).unwrap();
    let rw = steady.rw_lock(PATH).unwrap();
    let (held, write_held) = match call {
        Call::Lock => (Some(exclusive.lock().await.unwrap()), None),
        Call::Read | Call::Write => (None, Some(rw.write().await.unwrap())),
        Call::Wait => (None, None),
    };
    let before = nodes(&steady, PATH).await;

    let task = tokio::spawn(run(call, flaky.clone(), matches!(failure, Failure::TimedOut)));
    let queued = match call {
        Call::Wait => (CONDITION_DIR, 1),
        _ => (PATH, before.len() + 1),
    };
    common::eventually(10, "the contender is queued", || async {
        nodes(&steady, queued.0).await.len() == queued.1
    })
    .await;

    let outcome = match failure {
        Failure::Cancelled => {
            task.abort();
            None
        }
        Failure::Expired => {
            expire_session(&flaky, &proxy).await.unwrap();
            Some(timeout(BOUND, task).await.unwrap().unwrap())
        }
        Failure::Closed => {
            flaky.close().await.unwrap();
            Some(timeout(BOUND, task).await.unwrap().unwrap())
        }
        Failure::TimedOut => Some(timeout(BOUND, task).await.unwrap().unwrap()),
    };
    match (failure, &outcome) {
        (Failure::Cancelled, _) => {}
        (Failure::Expired, Some(Err(Error::SessionLost))) => {}
        (Failure::Closed, Some(Err(Error::Closed | Error::SessionLost))) => {}
        (Failure::TimedOut, Some(Ok(false))) => {
            // `try_*_for` promises no node is left when it returns: no waiting for a cleanup.
            assert_eq!(
                nodes(&steady, PATH).await,
                before,
                "{call:?} timed out and left a node"
            );
        }
        _ => panic!("{call:?} / {failure:?}: unexpected outcome {outcome:?}"),
    }
    // The cleanup of a cancelled call runs in the background: wait for it, bounded.
    common::eventually(10, "only the holder's nodes are left", || async {
        nodes(&steady, PATH).await == before && nodes(&steady, CONDITION_DIR).await.is_empty()
    })
    .await;

    // And the lock still works for everyone.
    if let Some(held) = held {
        held.release().await.unwrap();
    }
    match write_held {
        Some(write_held) => {
            write_held.release().await.unwrap();
            let next = timeout(BOUND, rw.write()).await.unwrap().unwrap();
            next.release().await.unwrap();
        }
        None => {
            let next = timeout(BOUND, exclusive.lock()).await.unwrap().unwrap();
            next.release().await.unwrap();
        }
    }
}

macro_rules! matrix {
    ($($name:ident: $call:ident, $failure:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            check(Call::$call, Failure::$failure).await;
        }
    )*};
}

matrix! {
    lock_cancelled: Lock, Cancelled;
    lock_expired: Lock, Expired;
    lock_closed: Lock, Closed;
    try_lock_for_timed_out: Lock, TimedOut;
    read_cancelled: Read, Cancelled;
    read_expired: Read, Expired;
    read_closed: Read, Closed;
    try_read_for_timed_out: Read, TimedOut;
    write_cancelled: Write, Cancelled;
    write_expired: Write, Expired;
    write_closed: Write, Closed;
    try_write_for_timed_out: Write, TimedOut;
    condition_wait_cancelled: Wait, Cancelled;
    condition_wait_expired: Wait, Expired;
    condition_wait_closed: Wait, Closed;
}
