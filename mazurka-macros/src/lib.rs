//! Procedural macros for [mazurka](https://docs.rs/mazurka). Use them through `mazurka`, which
//! re-exports them and documents them; the generated code relies on `mazurka::__private`.
//!
//! Each macro is a thin entry point here; its parser, checks and expansion live in a module of
//! its own (`parse` returns `syn::Result`, `expand` cannot fail).

mod common;
mod lock;

use proc_macro::TokenStream;

/// The implementation of `mazurka::lock!`; use that macro, which documents the forms.
///
/// Input: an optional `crate = <path to mazurka>;` (the `mazurka::lock!` wrapper passes
/// `$crate`; `::mazurka` otherwise), then the `lock!` arguments.
#[proc_macro]
pub fn lock(input: TokenStream) -> TokenStream {
    lock::lock(input.into()).into()
}
