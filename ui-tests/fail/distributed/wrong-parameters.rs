use mazurka::distributed;
use serde::{Deserialize, Serialize};

#[distributed(ref = "/bank/{bank}/accounts/{id}")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
}

struct NotDisplay;

async fn use_it(session: &mazurka::Session) -> mazurka::Result<()> {
    // `{bank}` is missing.
    let _ = Account::zref(session, 7, Account { balance: 0 }).await?;
    // A parameter must implement `Display`.
    let _ = Account::open_zref(session, "north", NotDisplay).await?;
    Ok(())
}

fn main() {
    let _ = use_it;
}
