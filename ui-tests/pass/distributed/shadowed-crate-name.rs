// The expansions name the runtime as `::mazurka` and reach everything through
// `::mazurka::__private`: shadowing `mazurka`, `core`, `Ok`, `Result`… in user code breaks neither
// `#[distributed]` nor `#[dosync]`.
#![deny(warnings)]

mod shadowing {
    use std as mazurka;

    use serde::{Deserialize, Serialize};

    #[derive(Debug)]
    pub enum Outcome {
        Ok,
        Err,
        Some,
        None,
    }
    pub use Outcome::{Err, None, Ok, Some};
    pub type Result = ();
    pub type Display = ();
    pub type Session = ();
    pub type Ref = ();
    pub mod core {}

    #[::mazurka::distributed(ref = "/shadow/{id}")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Account {
        pub balance: i64,
    }

    #[::mazurka::dosync]
    pub async fn deposit(
        to: &::mazurka::Ref<Account>,
        amount: i64,
    ) -> ::std::result::Result<Outcome, ::mazurka::Error> {
        let _ = mazurka::time::Duration::from_secs(1);
        to.alter(|a| Account { balance: a.balance + amount }).await?;
        ::std::result::Result::Ok(Ok)
    }

    pub async fn run(session: &::mazurka::Session) -> ::mazurka::Result<Outcome> {
        let r: Result = ();
        let _ = (r, None, Some, Err);
        let account = Account::zref(session, 1, Account { balance: 0 }).await?;
        deposit(&account, 1).await
    }
}

fn main() {
    let _ = shadowing::run;
}
