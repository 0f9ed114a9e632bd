//! A bounded work queue shared by processes: producers and consumers — each its own ZooKeeper
//! session, as separate processes would be — coordinate through one distributed lock and two
//! conditions, `not-full` and `not-empty` (the classic Java `BoundedBuffer`, across machines).
//!
//! The queue itself lives in ZooKeeper: one znode per job under `/jobs/queue`, added and removed
//! only with fenced writes (they commit only while the writer still holds the lock), and read by
//! listing the directory.
//!
//! ```sh
//! cargo run -p mazurka-examples --example condition
//! ```

mod common;

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mazurka::{Condition, DistributedLock, Error, Session};

const QUEUE: &str = "/jobs/queue";
const CAPACITY: usize = 3;
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 3;
const JOBS_PER_PRODUCER: usize = 8;

/// One worker's view of the shared queue.
struct Queue {
    session: Session,
    lock: DistributedLock,
    not_full: Condition,
    not_empty: Condition,
}

impl Queue {
    async fn open(connect: &str) -> Result<Queue, Error> {
        let session = Session::builder(connect)
            .chroot("/condition-example")
            .session_timeout(Duration::from_secs(6))
            .connect()
            .await?;
        let lock = session.lock("/jobs/lock")?;
        let not_full = lock.new_condition("not-full")?;
        let not_empty = lock.new_condition("not-empty")?;
        Ok(Queue {
            session,
            lock,
            not_full,
            not_empty,
        })
    }

    /// The jobs in the queue, oldest first (names sort by producer and number).
    async fn jobs(&self) -> Result<Vec<String>, Error> {
        self.session.list_children(QUEUE).await
    }

    /// Adds a job, waiting while the queue is full; how many times it waited.
    async fn put(&self, job: &str) -> Result<usize, Error> {
        let mut guard = self.lock.lock().await?;
        let mut waits = 0;
        while self.jobs().await?.len() >= CAPACITY {
            self.not_full.wait(&mut guard).await?; // releases the lock while waiting
            waits += 1;
        }
        guard
            .fenced()
            .create(&format!("{QUEUE}/{job}"), Vec::new())?
            .commit()
            .await?;
        self.not_empty.signal().await?;
        guard.release().await?;
        Ok(waits)
    }

    /// Takes the oldest job, waiting while the queue is empty; `None` once it is empty and
    /// `finished()` says no more jobs will come.
    async fn take(&self, finished: impl Fn() -> bool) -> Result<Option<String>, Error> {
        let mut guard = self.lock.lock().await?;
        let job = loop {
            if let Some(job) = self.jobs().await?.into_iter().next() {
                break job;
            }
            if finished() {
                // Let the other consumers see it too.
                self.not_empty.signal_all().await?;
                guard.release().await?;
                return Ok(None);
            }
            self.not_empty.wait(&mut guard).await?;
        };
        guard.fenced().delete(&format!("{QUEUE}/{job}"))?.commit().await?;
        self.not_full.signal().await?;
        guard.release().await?;
        Ok(Some(job))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (connect, _server) = common::zookeeper("MAZURKA_ZK")?;

    // Set up the queue directory once (under the lock, like every other change to it).
    let setup = Queue::open(&connect).await?;
    let guard = setup.lock.lock().await?;
    if !setup.session.exists("/jobs").await? {
        guard.fenced().create("/jobs", Vec::new())?.commit().await?;
    }
    if !setup.session.exists(QUEUE).await? {
        guard.fenced().create(QUEUE, Vec::new())?.commit().await?;
    }
    for stale in setup.jobs().await? {
        guard
            .fenced()
            .delete(&format!("{QUEUE}/{stale}"))?
            .commit()
            .await?;
    }
    guard.release().await?;

    // A shared tally of finished producers, so that consumers know when to stop: it is a
    // process-local stand-in for "the producers said they are done" (a znode would do as well).
    let producers_done = Arc::new(AtomicUsize::new(0));

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let queue = Queue::open(&connect).await?;
        let producers_done = producers_done.clone();
        producers.push(tokio::spawn(async move {
            let mut waits = 0;
            for n in 0..JOBS_PER_PRODUCER {
                let job = format!("p{p}-job{n:03}");
                let waited = queue.put(&job).await?;
                waits += waited;
                let note = if waited > 0 {
                    " (after waiting for room)"
                } else {
                    ""
                };
                println!("producer {p} queued {job}{note}");
            }
            // Counted under the lock, then consumers are woken to check whether they are done.
            let guard = queue.lock.lock().await?;
            producers_done.fetch_add(1, Ordering::SeqCst);
            queue.not_empty.signal_all().await?;
            guard.release().await?;
            queue.session.close().await?;
            Ok::<_, Error>(waits)
        }));
    }

    let mut consumers = Vec::new();
    for c in 0..CONSUMERS {
        let queue = Queue::open(&connect).await?;
        let producers_done = producers_done.clone();
        consumers.push(tokio::spawn(async move {
            let mut taken = 0;
            let finished = || producers_done.load(Ordering::SeqCst) == PRODUCERS;
            while let Some(job) = queue.take(finished).await? {
                println!("    consumer {c} took {job}");
                taken += 1;
                // Work on the job without holding the lock (consumers are the slow side here).
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            queue.session.close().await?;
            Ok::<_, Error>(taken)
        }));
    }

    let mut full = 0;
    for p in producers {
        full += p.await??;
    }
    let mut total = 0;
    for c in consumers {
        total += c.await??;
    }
    assert_eq!(
        total,
        PRODUCERS * JOBS_PER_PRODUCER,
        "every job taken exactly once"
    );
    assert!(setup.jobs().await?.is_empty());
    println!(
        "{total} jobs went through a queue of at most {CAPACITY}; producers waited for room {full} times"
    );
    setup.session.close().await?;
    Ok(())
}
