use mazurka::distributed;

// Neither `Serialize`, `Deserialize` nor `Clone`.
#[distributed(ref = "/accounts/{id}")]
pub struct Account {
    pub balance: i64,
}

async fn use_it(session: &mazurka::Session) -> mazurka::Result<()> {
    let _ = Account::zref(session, 1, Account { balance: 0 }).await?;
    Ok(())
}

fn main() {
    let _ = use_it;
}
