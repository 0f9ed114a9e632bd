//! The exclusive lock's workload: lock, read the counter, hold a while, write `n + 1` fenced,
//! release; again until stopped.

use mazurka::DistributedLock;
use tokio::sync::watch;

use super::{backoff, basename, counter, paths, stopped, timed, Broken, Ctx, Flow};
use crate::event::{Event, Mode};

pub(crate) async fn run(ctx: &Ctx, mut stop: watch::Receiver<bool>) {
    let path = match ctx.broken {
        Some(Broken::SplitLock) => format!("{}-w{}", paths::LOCK, ctx.worker),
        _ => paths::LOCK.to_owned(),
    };
    let lock = match ctx.session.lock(path) {
        Ok(lock) => lock,
        Err(e) => {
            ctx.log(Event::StepError {
                op: 0,
                step: "lock path".into(),
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

async fn one(ctx: &Ctx, lock: &DistributedLock, op: u64, stop: &mut watch::Receiver<bool>) -> Flow {
    if *stop.borrow() {
        return Flow::Stop;
    }
    ctx.log(Event::Request {
        op,
        mode: Mode::Exclusive,
    });
    // Only the wait is cut short by a stop (dropping a pending lock() removes its node); a
    // holder always finishes its section, so every write it began is logged to its end.
    let (result, poll_start) = tokio::select! {
        biased;
        () = stopped(stop) => return Flow::Stop,
        r = timed(lock.lock()) => r,
    };
    let guard = match result {
        Ok(guard) => guard,
        Err(e) => {
            ctx.log(Event::LockError {
                op,
                error: e.to_string(),
            });
            backoff(ctx).await;
            return Flow::Continue;
        }
    };
    let token = guard.fencing_token();
    ctx.log(Event::Granted {
        op,
        mode: Mode::Exclusive,
        token,
        node: basename(&guard.node_path()),
        poll_start,
    });
    match counter::read(&ctx.session).await {
        Ok(current) => {
            tokio::time::sleep(ctx.random_up_to(ctx.hold)).await;
            let n = current + 1;
            match counter::add_increment(guard.fenced(), ctx, op, n, token) {
                Ok(fenced) => {
                    counter::commit_logged(ctx, op, n, token, fenced).await;
                }
                Err(e) => ctx.log(Event::StepError {
                    op,
                    step: "fenced batch".into(),
                    error: e.to_string(),
                }),
            }
        }
        Err(error) => ctx.log(Event::StepError {
            op,
            step: "read counter".into(),
            error,
        }),
    }
    let error = guard.release().await.err().map(|e| e.to_string());
    ctx.log(Event::Released { op, error });
    Flow::Continue
}
