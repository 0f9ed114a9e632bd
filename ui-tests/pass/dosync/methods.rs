// Methods take `&self` (or `self: &Self`), in inherent and trait impls.
#![deny(warnings)]

use mazurka::{dosync, Ref};

pub struct Bank {
    reserve: Ref<i64>,
}

impl Bank {
    #[dosync]
    pub async fn fund(&self, to: &Ref<i64>, amount: i64) -> mazurka::Result<i64> {
        self.reserve.alter(|r| r - amount).await?;
        to.alter(|v| v + amount).await?;
        self.balance().await
    }

    #[dosync(retry_limit = 10)]
    pub async fn balance<'a>(self: &'a Self) -> mazurka::Result<i64> {
        self.reserve.get().await
    }
}

trait Audit {
    fn reserve(&self) -> &Ref<i64>;

    #[dosync]
    async fn audit(&self) -> mazurka::Result<bool> {
        Ok(self.reserve().get().await? >= 0)
    }
}

impl Audit for Bank {
    fn reserve(&self) -> &Ref<i64> {
        &self.reserve
    }
}

fn main() {
    let _ = (Bank::fund, Bank::balance, <Bank as Audit>::audit);
}
