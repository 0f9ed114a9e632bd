// A ref type with placeholders: the constant, the path builder and the constructors, with one
// parameter per placeholder in order of first appearance.
#![deny(warnings)]

use mazurka::{distributed, Bincode, Distributed, Error, PathRule, Ref, Session, ZnodePath};
use serde::{Deserialize, Serialize};

#[distributed(ref = "/bank/{bank}/accounts/{id}/{bank}")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
}

// The generated items are private like the type: no dead-code warnings for the ones unused.
#[distributed(ref = "/private/{id}")]
#[derive(Clone, Serialize, Deserialize)]
struct Private(u8);

async fn constructors(session: &Session) -> mazurka::Result<i64> {
    let created: Ref<Account, Bincode> = Account::zref(session, "north", 7, Account { balance: 1 }).await?;
    let opened: Ref<Account> = Account::open_zref(session, String::from("north"), 7u64).await?;
    let _ = Private::zref(session, 1, Private(0)).await?;
    Ok(created.deref()?.balance + opened.deref()?.balance)
}

fn main() {
    let _ = constructors;
    assert_eq!(Account::ZNODE_TEMPLATE, "/bank/{bank}/accounts/{id}/{bank}");
    assert_eq!(<Account as Distributed>::PLACEHOLDERS, ["bank", "id"]);
    let path: mazurka::Result<ZnodePath> = Account::znode_path("north", 7);
    assert_eq!(path.unwrap(), "/bank/north/accounts/7/north");
    // A parameter is one segment, never more.
    for bad in ["a/b", "", "..", "."] {
        match Account::znode_path(bad, 1) {
            Err(Error::InvalidPath { rule: PathRule::BadParameter, .. }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}
