// Any `Result<T, E>` with `E: From<mazurka::Error>`: the transaction's own errors are converted.
#![deny(warnings)]

use mazurka::{dosync, Ref};

#[derive(Debug)]
pub enum AppError {
    Store(mazurka::Error),
    Overdrawn,
}

impl From<mazurka::Error> for AppError {
    fn from(error: mazurka::Error) -> Self {
        AppError::Store(error)
    }
}

#[dosync(retry_limit = LIMIT)]
pub async fn withdraw(account: &Ref<i64>, amount: i64) -> Result<i64, AppError> {
    let balance = account.get().await?;
    if balance < amount {
        Err(AppError::Overdrawn)?;
    }
    Ok(account.alter(|b| b - amount).await?)
}

const LIMIT: u32 = 5;

type AppResult<T> = std::result::Result<T, AppError>;

#[dosync]
pub async fn through_an_alias(account: &Ref<i64>) -> AppResult<i64> {
    Ok(account.get().await?)
}

#[dosync]
pub async fn boxed(account: &Ref<i64>) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    let n: i64 = "1".parse()?;
    Ok(account.get().await? + n)
}

fn main() {
    let _ = (withdraw, through_an_alias, boxed);
}
