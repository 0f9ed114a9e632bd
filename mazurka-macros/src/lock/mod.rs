//! `lock!`: run a block while holding a distributed lock, releasing it (and awaiting the release) on
//! every exit of the block.
//!
//! [`parse`] turns the input into a [`parse::LockInput`] (syntax only; a syntax error there is
//! fatal) and then into a [`Lock`] plus every semantic error found (unknown or duplicate options,
//! bad path literals, …). [`expand`] cannot fail. When parsing fails, [`fallback`] emits the error
//! and a placeholder of the right type, so one mistake does not cascade into others.

mod expand;
mod parse;

use proc_macro2::{Group, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::Expr;

use crate::common::CratePath;

/// A checked `lock!` invocation: what to lock, how long to wait, what to run.
#[derive(Debug)]
pub(crate) struct Lock {
    /// How the generated code names the runtime crate.
    pub(crate) krate: CratePath,
    /// Which lock, and which side of it.
    pub(crate) mode: Mode,
    /// The lock to take.
    pub(crate) target: Target,
    /// How long to wait for it.
    pub(crate) wait: Wait,
    /// The block run while the lock is held (a brace-delimited group, passed through untouched).
    pub(crate) body: Group,
    /// The block run when the lock could not be taken in time (`else { … }`).
    pub(crate) otherwise: Option<Group>,
    /// Expressions the input gave that an error left unused (an unknown option's value, an extra
    /// argument). Empty unless errors are reported.
    pub(crate) ignored: Vec<Expr>,
}

/// Which kind of lock, and which side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No keyword: a `DistributedLock`.
    Exclusive,
    /// `read`: the shared side of a `DistributedRwLock`.
    Read,
    /// `write`: the exclusive side of a `DistributedRwLock`.
    Write,
}

/// What to lock.
#[derive(Debug)]
pub(crate) enum Target {
    /// `lock!(lock => …)`: a `DistributedLock` or `&DistributedLock` (a `DistributedRwLock` or
    /// `&DistributedRwLock` with `read`/`write`).
    Value(Expr),
    /// `lock!(&session, "/path" => …)`.
    Path { session: Expr, path: Expr },
    /// The input named no usable lock (an error has been reported); expands to a lock error of the
    /// right type so the body is still checked.
    Invalid,
}

/// How long to wait for the lock.
#[derive(Debug)]
pub(crate) enum Wait {
    /// Plain `lock!(…)`: as long as it takes (`lock()`).
    Forever,
    /// `lock!(try …)`: not at all (`try_lock()`).
    Now,
    /// `lock!(…, timeout = d => …)`: up to `d` (`try_lock_for(d)`).
    Within(Expr),
}

/// The `lock!` proc macro: `[crate = <path>;] <lock input>`.
pub(crate) fn lock(input: TokenStream) -> TokenStream {
    let parser = |input: ParseStream<'_>| {
        let krate = CratePath::parse_prefix(input)?.unwrap_or_default();
        let parsed = input.parse::<parse::LockInput>();
        if parsed.is_err() {
            // Leave nothing unparsed, so the error reported is ours.
            input.parse::<TokenStream>()?;
        }
        Ok((krate, parsed))
    };
    match parser.parse2(input) {
        Ok((krate, Ok(input))) => {
            let (lock, errors) = input.check(krate);
            let mut tokens = expand::expand(&lock);
            if let Some(errors) = errors {
                tokens = expand::with_errors(&lock, tokens, errors);
            }
            tokens
        }
        Ok((krate, Err(error))) => expand::fallback(&krate, error),
        Err(error) => expand::fallback(&CratePath::default(), error),
    }
}
