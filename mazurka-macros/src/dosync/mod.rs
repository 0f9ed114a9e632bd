//! `#[dosync]`: an `async fn` whose body runs as a transaction, once per attempt.
//!
//! [`parse`] reads the attribute's arguments and the fn and checks them, collecting every error;
//! [`expand`] cannot fail. Errors that leave the fn's shape usable (an unknown option, a missing
//! `async`) still give the full expansion, so calls to the fn and its body are checked as meant;
//! errors about the shape itself (no `Result` to return, a `&mut` argument) give the fn unchanged
//! next to the error.

mod expand;
mod parse;

use proc_macro2::{Ident, Span, TokenStream};
use quote::ToTokens;
use syn::{Attribute, Block, Expr, Pat, Signature, Type, Visibility};

use crate::common::CratePath;

/// A checked `#[dosync]` fn.
#[derive(Debug)]
pub(crate) struct Dosync {
    /// How the generated code names the runtime crate.
    pub(crate) krate: CratePath,
    /// `retry_limit = n`.
    pub(crate) retry_limit: Option<Expr>,
    /// Outer attributes (docs included), kept on the fn.
    pub(crate) attrs: Vec<Attribute>,
    /// Inner attributes (`#![…]` at the top of the body), kept at the top of the new body.
    pub(crate) inner_attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    /// The signature, `async`, with every argument a plain identifier (patterns are bound again
    /// per attempt; `mut` moves to the per-attempt binding).
    pub(crate) sig: Signature,
    /// The return type `R`.
    pub(crate) ret: Type,
    /// What each attempt binds, in argument order.
    pub(crate) bindings: Vec<Binding>,
    /// The body, run once per attempt.
    pub(crate) block: Box<Block>,
}

/// `let <pat> = reuse(&<source>);` at the start of each attempt.
#[derive(Debug)]
pub(crate) struct Binding {
    /// The argument's pattern as written (`amount`, `mut name`, `(a, b)`).
    pub(crate) pat: Pat,
    /// The fn's parameter it is a copy of.
    pub(crate) source: Ident,
    /// Where a non-`Clone` argument is reported.
    pub(crate) span: Span,
}

/// The `#[dosync]` attribute: `args` are its arguments, `item` the annotated fn.
pub(crate) fn dosync(args: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(args, item.clone()) {
        (Some(dosync), errors) => {
            let mut tokens = expand::expand(&dosync);
            if let Some(errors) = errors {
                tokens.extend(errors.into_compile_error());
            }
            tokens
        }
        // The fn unchanged: it compiles on its own, so only the macro's errors are reported.
        (None, errors) => {
            let mut tokens = item;
            if let Some(errors) = errors {
                tokens.extend(errors.into_compile_error());
            }
            tokens
        }
    }
}

/// The span of the first and of the last token of `tokens`: generated tokens placed there make
/// the compiler's span of a generated expression cover exactly the user's tokens.
pub(crate) fn bounds(tokens: &impl ToTokens) -> (Span, Span) {
    use proc_macro2::TokenTree;
    let tokens: Vec<TokenTree> = tokens.to_token_stream().into_iter().collect();
    let first = match tokens.first() {
        Some(TokenTree::Group(group)) => group.span_open(),
        Some(other) => other.span(),
        None => Span::call_site(),
    };
    let last = match tokens.last() {
        Some(TokenTree::Group(group)) => group.span_close(),
        Some(other) => other.span(),
        None => first,
    };
    (first, last)
}
