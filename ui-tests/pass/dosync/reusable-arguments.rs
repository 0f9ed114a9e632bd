// Arguments that are not `Copy` are cloned for each attempt; `mut` and patterns are bound per
// attempt; `_` is not bound; a generic argument needs `Clone`.
#![deny(warnings)]

use std::sync::Arc;

use mazurka::{dosync, Ref};

#[dosync]
async fn append(log: &Ref<Vec<String>>, mut entry: String, (times, _unused): (usize, u8), _: u8) -> mazurka::Result<usize> {
    entry.push('!');
    log.alter(|l| {
        let mut l = l.clone();
        l.extend(std::iter::repeat_n(entry, times));
        l
    })
    .await
    .map(|l| l.len())
}

#[dosync]
async fn generic<T: Clone + Into<String>>(log: Arc<Ref<Vec<String>>>, value: T) -> mazurka::Result<()> {
    log.alter(|l| {
        let mut l = l.clone();
        l.push(value.into());
        l
    })
    .await?;
    Ok(())
}

#[dosync]
async fn nothing() -> mazurka::Result<()> {
    Ok(())
}

fn main() {
    let _ = (append, generic::<String>, nothing);
}
