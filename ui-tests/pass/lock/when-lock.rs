// when-lock / if-lock (`try`) and the `timeout = …` variants.
#![deny(warnings)]

use std::time::Duration;

use mazurka::{lock, Session};

async fn when_lock(session: &Session) -> mazurka::Result<Option<u32>> {
    lock!(try session, "/locks/cron" => { 7 })
}

async fn if_lock(session: &Session) -> mazurka::Result<&'static str> {
    lock!(try session, "/locks/cron" => { "ran" } else { "busy" })
}

async fn with_timeout(session: &Session, patience: Duration) -> mazurka::Result<()> {
    let got: Option<u32> = lock!(session, "/locks/cron", timeout = patience => { 1 })?;
    let which = lock!(session, "/locks/cron", timeout = Duration::from_millis(250) => {
        got.unwrap_or(0)
    } else {
        0
    })?;
    let _ = which;
    // A trailing comma after the options is fine.
    lock!(session, "/locks/cron", timeout = patience, => {})?;
    Ok(())
}

async fn both_branches_use_the_same_variables(session: &Session) -> mazurka::Result<Vec<&'static str>> {
    // Only the branch taken is built: both may borrow mutably, or move, the same variables.
    let mut log = Vec::new();
    let token = String::from("token");
    lock!(try session, "/locks/cron" => {
        log.push("locked");
        drop(token);
    } else {
        log.push("busy");
        drop(token);
    })?;
    Ok(log)
}

async fn else_may_await(session: &Session) -> mazurka::Result<u32> {
    lock!(try session, "/locks/cron" => { 1 } else {
        tokio::time::sleep(Duration::from_millis(1)).await;
        2
    })
}

fn main() {
    let _ = (
        when_lock,
        if_lock,
        with_timeout,
        both_branches_use_the_same_variables,
        else_may_await,
    );
}
