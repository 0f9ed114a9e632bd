// `?` and `return` in a block leave the block (producing its value), never skipping the release;
// the outer `?` propagates the lock's errors.
#![deny(warnings)]

use mazurka::{lock, Session};

#[derive(Debug)]
enum AppError {
    Lock(mazurka::Error),
    Parse(std::num::ParseIntError),
}

impl From<mazurka::Error> for AppError {
    fn from(e: mazurka::Error) -> Self {
        AppError::Lock(e)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e)
    }
}

async fn two_layers(session: &Session, input: &str) -> Result<u32, AppError> {
    let n = lock!(session, "/locks/parse" => {
        let n: u32 = input.parse()?;
        if n == 0 {
            return Ok(0);
        }
        Ok::<_, std::num::ParseIntError>(n * 2)
    })??;
    Ok(n)
}

async fn return_value(session: &Session, early: bool) -> mazurka::Result<&'static str> {
    lock!(session, "/locks/early" => {
        if early {
            return "early";
        }
        "late"
    })
}

async fn options_too(session: &Session, v: Option<u32>) -> mazurka::Result<Option<u32>> {
    lock!(session, "/locks/opt" => {
        let v = v?;
        Some(v + 1)
    })
}

async fn body_error_type_from_context(session: &Session) -> Result<u32, AppError> {
    let parsed: Result<u32, AppError> = lock!(try session, "/locks/ctx" => {
        Ok("1".parse::<u32>()?)
    } else {
        Err(AppError::Lock(mazurka::Error::Closed))
    })?;
    parsed
}

fn main() {
    let _ = (
        two_layers,
        return_value,
        options_too,
        body_error_type_from_context,
    );
}
