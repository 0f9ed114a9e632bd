//! Compile-time tests of mazurka's macros, with trybuild.
//!
//! - `pass/<macro>/*.rs` must compile without warnings (and run: their `main` connects nowhere);
//! - `fail/<macro>/*.rs` must fail to compile with exactly the errors in the `.stderr` file next to
//!   each: these files are what users see, so review them for quality.
//!
//! File names are kebab-case and say what they show. After changing a macro's messages, or when a
//! new compiler words its own errors differently, regenerate the expected output and review the diff:
//!
//! ```text
//! TRYBUILD=overwrite cargo test -p mazurka-ui-tests
//! ```

#[test]
fn lock() {
    let t = trybuild::TestCases::new();
    t.pass("pass/lock/*.rs");
    t.compile_fail("fail/lock/*.rs");
}

#[test]
fn distributed() {
    let t = trybuild::TestCases::new();
    t.pass("pass/distributed/*.rs");
    t.compile_fail("fail/distributed/*.rs");
}

#[test]
fn dosync() {
    let t = trybuild::TestCases::new();
    t.pass("pass/dosync/*.rs");
    t.compile_fail("fail/dosync/*.rs");
}

/// Expansions of `#[distributed]` and `#[dosync]` inside this crate, so that
/// `cargo clippy --all-targets` lints them too.
#[allow(dead_code)]
mod clippy_sees_attribute_expansions {
    use mazurka::{distributed, dosync, Ref};
    use serde::{Deserialize, Serialize};

    #[distributed(ref = "/ui/accounts/{bank}/{id}")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Account {
        pub balance: i64,
    }

    #[distributed(ref = "/ui/config", codec = "json")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Config {
        pub name: String,
    }

    #[dosync]
    pub async fn transfer(from: &Ref<Account>, to: &Ref<Account>, amount: i64) -> mazurka::Result<()> {
        from.alter(|a| Account {
            balance: a.balance - amount,
        })
        .await?;
        to.alter(|a| Account {
            balance: a.balance + amount,
        })
        .await?;
        Ok(())
    }

    pub struct Bank {
        pub reserve: Ref<Account>,
    }

    impl Bank {
        #[dosync(retry_limit = 10)]
        pub async fn fund(
            &self,
            to: &Ref<Account>,
            label: String,
            mut amount: i64,
        ) -> mazurka::Result<String> {
            amount += 1;
            transfer(&self.reserve, to, amount).await?;
            Ok(label)
        }
    }
}

/// Expansions of `lock!` inside this crate, so that `cargo clippy --all-targets` lints them too.
#[allow(dead_code)]
mod clippy_sees_expansions {
    use std::time::Duration;

    use mazurka::{lock, DistributedLock, DistributedRwLock, Session};

    async fn every_form(session: &Session, lock: &DistributedLock) -> mazurka::Result<u32> {
        let a = lock!(session, "/ui/a" => { 1 })?;
        let b = lock!(try session, "/ui/b" => { 2 })?.unwrap_or_default();
        let c = lock!(try lock => { 3 } else { 0 })?;
        let d = lock!(lock, timeout = Duration::from_millis(10) => { 4 } else { 0 })?;
        let e = lock!(session, "/ui/e" => {
            let n: u32 = "5".parse()?;
            Ok::<_, std::num::ParseIntError>(n)
        })?
        .unwrap_or_default();
        Ok(a + b + c + d + e)
    }

    async fn read_write_forms(session: &Session, rw: &DistributedRwLock) -> mazurka::Result<u32> {
        let a = lock!(read session, "/ui/rw" => { 1 })?;
        let b = lock!(write try session, "/ui/rw" => { 2 })?.unwrap_or_default();
        let c = lock!(read try rw => { 3 } else { 0 })?;
        let d = lock!(write rw, timeout = Duration::from_millis(10) => { 4 } else { 0 })?;
        let e = lock!(write rw => { lock!(read rw => { 5 }) })??;
        Ok(a + b + c + d + e)
    }
}
