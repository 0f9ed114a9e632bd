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

/// Expansions of `lock!` inside this crate, so that `cargo clippy --all-targets` lints them too.
#[allow(dead_code)]
mod clippy_sees_expansions {
    use std::time::Duration;

    use mazurka::{lock, DistributedLock, Session};

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
}
