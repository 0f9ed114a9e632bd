//! `lock!` expansion. It cannot fail: every error was found by the parser and the check.
//!
//! The body becomes an `async { … }` block (not `async move`: it borrows what it uses, as a
//! closure would) that a runtime helper awaits between acquiring and releasing the lock, so that
//! `?` and `return` in the body leave the body, never skipping the awaited release. Generated code
//! reaches the runtime only through `<crate>::__private`.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

use super::{Lock, Mode, Target, Wait};
use crate::common::CratePath;

/// The expression a checked `lock!` stands for; its type is `mazurka::Result<T>`.
pub(crate) fn expand(lock: &Lock) -> TokenStream {
    let private = private(&lock.krate);
    // A read-write lock's helpers take the side first, as a value (`Read` or `Write`).
    let (side, target) = match lock.mode {
        Mode::Exclusive => (
            None,
            match &lock.target {
                Target::Value(value) => quote!(#private::lock_value(#value)),
                Target::Path { session, path } => quote!(#private::lock_for(#session, #path)),
                Target::Invalid => quote!(#private::invalid_lock()),
            },
        ),
        Mode::Read | Mode::Write => (
            Some(match lock.mode {
                Mode::Read => quote!(#private::Read),
                _ => quote!(#private::Write),
            }),
            match &lock.target {
                Target::Value(value) => quote!(#private::rw_lock_value(#value)),
                Target::Path { session, path } => quote!(#private::rw_lock_for(#session, #path)),
                Target::Invalid => quote!(#private::invalid_rw_lock()),
            },
        ),
    };
    let body = &lock.body;
    let wait = match &lock.wait {
        Wait::Forever => None,
        Wait::Now => Some(quote!(#private::Wait::Now)),
        Wait::Within(timeout) => Some(quote!(#private::Wait::Within(#timeout))),
    };
    match (wait, &lock.otherwise, side) {
        // with-lock: `Result<T>`.
        (None, _, None) => quote! {
            #private::with_lock(#target, async #body).await
        },
        (None, _, Some(side)) => quote! {
            #private::with_rw_lock(#side, #target, async #body).await
        },
        // when-lock: `Result<Option<T>>`.
        (Some(wait), None, None) => quote! {
            #private::try_with_lock(#target, #wait, async #body).await
        },
        (Some(wait), None, Some(side)) => quote! {
            #private::try_with_rw_lock(#side, #target, #wait, async #body).await
        },
        // if-lock: `Result<T>`. Only the branch taken builds its future, so both blocks may borrow
        // (or move) the same variables.
        (Some(wait), Some(otherwise), side) => {
            let guard = Ident::new("guard", Span::mixed_site());
            let error = Ident::new("error", Span::mixed_site());
            let (attempt, attempt_type, locked) = match side {
                None => (
                    quote!(#private::attempt(#target, #wait)),
                    quote!(#private::Attempt),
                    quote!(#private::locked),
                ),
                Some(side) => (
                    quote!(#private::attempt_rw(#side, #target, #wait)),
                    quote!(#private::RwAttempt),
                    quote!(#private::rw_locked),
                ),
            };
            // Each arm carries its block's span: blocks of different types are reported on them.
            let locked = quote_spanned!(body.span()=> #locked(#guard, async #body).await);
            let busy = quote_spanned!(otherwise.span()=> #private::Ok(async #otherwise.await));
            quote! {
                match #attempt.await {
                    #attempt_type::Acquired(#guard) => #locked,
                    #attempt_type::Busy => #busy,
                    #attempt_type::Failed(#error) => #private::Err(#error),
                }
            }
        }
    }
}

/// A usable expansion with errors to report alongside it. The expressions an error left unused
/// are still type-checked (by reference, so nothing is moved), and their variables count as used:
/// the compiler adds no warnings of its own to the errors.
pub(crate) fn with_errors(lock: &Lock, expansion: TokenStream, errors: syn::Error) -> TokenStream {
    let errors = errors.into_compile_error();
    let ignored = &lock.ignored;
    quote! {
        {
            #errors
            #( let _ = &(#ignored); )*
            #expansion
        }
    }
}

/// What a `lock!` that could not be parsed expands to: the error, and a placeholder of type
/// `mazurka::Result<_>` so that code around the macro type-checks without further errors.
pub(crate) fn fallback(krate: &CratePath, error: syn::Error) -> TokenStream {
    let private = private(krate);
    let error = error.into_compile_error();
    quote! {
        {
            #error
            #private::fallback()
        }
    }
}

fn private(krate: &CratePath) -> TokenStream {
    let krate = krate.tokens();
    quote!(#krate::__private)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::parse::LockInput;

    fn expand_str(input: &str) -> String {
        let parsed: LockInput = match syn::parse_str(input) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{input:?}: {error}"),
        };
        let (lock, errors) = parsed.check(CratePath::default());
        assert!(errors.is_none(), "{input:?}: {errors:?}");
        expand(&lock).to_string()
    }

    #[test]
    fn with_lock() {
        assert_eq!(
            expand_str("&s, \"/p\" => { 1 }"),
            ":: mazurka :: __private :: with_lock (:: mazurka :: __private :: lock_for (& s , \"/p\") , async \
             { 1 }) . await"
        );
        assert_eq!(
            expand_str("l => { 1 }"),
            ":: mazurka :: __private :: with_lock (:: mazurka :: __private :: lock_value (l) , async { 1 }) . \
             await"
        );
    }

    #[test]
    fn when_lock() {
        assert_eq!(
            expand_str("try l => { 1 }"),
            ":: mazurka :: __private :: try_with_lock (:: mazurka :: __private :: lock_value (l) , :: mazurka \
             :: __private :: Wait :: Now , async { 1 }) . await"
        );
        assert!(
            expand_str("l, timeout = d => { 1 }").contains(":: mazurka :: __private :: Wait :: Within (d)")
        );
    }

    #[test]
    fn if_lock_builds_only_the_branch_taken() {
        let expanded = expand_str("try l => { 1 } else { 2 }");
        assert!(
            expanded.starts_with("match :: mazurka :: __private :: attempt ("),
            "{expanded}"
        );
        assert!(expanded
            .contains("Acquired (guard) => :: mazurka :: __private :: locked (guard , async { 1 }) . await"));
        assert!(expanded.contains("Busy => :: mazurka :: __private :: Ok (async { 2 } . await)"));
    }

    #[test]
    fn read_and_write_use_the_read_write_helpers() {
        assert_eq!(
            expand_str("read &s, \"/p\" => { 1 }"),
            ":: mazurka :: __private :: with_rw_lock (:: mazurka :: __private :: Read , :: mazurka :: \
             __private :: rw_lock_for (& s , \"/p\") , async { 1 }) . await"
        );
        assert_eq!(
            expand_str("write try rw => { 1 }"),
            ":: mazurka :: __private :: try_with_rw_lock (:: mazurka :: __private :: Write , :: mazurka :: \
             __private :: rw_lock_value (rw) , :: mazurka :: __private :: Wait :: Now , async { 1 }) . await"
        );
        let expanded = expand_str("read rw, timeout = d => { 1 } else { 2 }");
        assert!(
            expanded.starts_with(
                "match :: mazurka :: __private :: attempt_rw (:: mazurka :: __private :: Read , :: mazurka :: \
                 __private :: rw_lock_value (rw) , :: mazurka :: __private :: Wait :: Within (d)) . await"
            ),
            "{expanded}"
        );
        assert!(expanded.contains(
            "RwAttempt :: Acquired (guard) => :: mazurka :: __private :: rw_locked (guard , async { 1 }) . await"
        ));
        assert!(expanded.contains("RwAttempt :: Busy => :: mazurka :: __private :: Ok (async { 2 } . await)"));
    }

    #[test]
    fn fallback_is_an_expression_of_the_right_type() {
        let expanded =
            fallback(&CratePath::default(), syn::Error::new(Span::call_site(), "oops")).to_string();
        assert!(expanded.contains("compile_error"));
        assert!(
            expanded.ends_with(":: mazurka :: __private :: fallback () }"),
            "{expanded}"
        );
    }
}
