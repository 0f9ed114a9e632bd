//! The example: refs by reference, a `Copy` amount, `?` and an early `return` in the body,
//! docs and attributes kept.
#![deny(warnings, missing_docs)]

use mazurka::{dosync, Error, Ref};

/// Moves `amount` from `from` to `to`.
#[dosync]
#[inline(never)]
pub async fn transfer(from: &Ref<i64>, to: &Ref<i64>, amount: i64) -> mazurka::Result<()> {
    #![allow(clippy::needless_return)]
    let balance = from.get().await?;
    if balance < amount {
        return Err(Error::Invalid {
            path: from.path().to_string(),
            reason: "insufficient funds".into(),
        });
    }
    from.alter(|v| v - amount).await?;
    to.alter(|v| v + amount).await?;
    return Ok(());
}

/// A value and a read, through another `#[dosync]` fn (which joins the transaction).
#[dosync]
pub async fn total(a: &Ref<i64>, b: &Ref<i64>) -> mazurka::Result<i64> {
    transfer(a, b, 0).await?;
    Ok(a.get().await? + b.get().await?)
}

fn main() {
    let _ = total;
}
