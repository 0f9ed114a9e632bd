use mazurka::distributed;
use serde::{Deserialize, Serialize};

#[distributed(ref = "/accounts/{id}", format = "json")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
}

#[distributed(ref = "/cfg", codex = "json")]
#[derive(Clone, Serialize, Deserialize)]
pub struct Misspelled;

fn main() {
    // The type and its constructors still exist: no further errors.
    let _ = (Account { balance: 0 }, Account::ZNODE_TEMPLATE, Misspelled::znode_path);
}
