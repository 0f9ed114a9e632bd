// `crate = "…"` names mazurka where it is not `::mazurka` (here, a re-export).
#![deny(warnings)]

pub mod reexport {
    pub use ::mazurka as mz;
}

use reexport::mz;
use serde::{Deserialize, Serialize};

#[mz::distributed(ref = "/renamed/{id}", crate = "crate::reexport::mz")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
}

#[mz::dosync(crate = "crate::reexport::mz", retry_limit = 3)]
pub async fn read(account: &mz::Ref<Account>) -> mz::Result<i64> {
    Ok(account.get().await?.balance)
}

fn main() {
    let _ = read;
    assert_eq!(Account::znode_path(1).unwrap(), "/renamed/1");
}
