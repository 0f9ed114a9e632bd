//! `#[dosync]` expansion. It cannot fail: every error was found by the check.
//!
//! ```text
//! #[attrs] vis async fn name(from: &Ref<A>, to: &Ref<A>, amount: i64) -> R {
//!     <R as __private::TxnResult<_, _>>::finish(
//!         __private::dosync(__private::TxnOptions::default(), move || {
//!             let from = __private::ReusableArg::reuse(&from);   // one per argument
//!             let to = __private::ReusableArg::reuse(&to);
//!             let amount = __private::ReusableArg::reuse(&amount);
//!             async move {
//!                 let __ret: R = async move { body }.await;          // `?` and `return` leave the body
//!                 <R as __private::TxnResult<_, _>>::into_result(__ret)
//!             }
//!         })
//!         .await,
//!     )
//! }
//! ```
//!
//! - The closure owns the arguments; each attempt gets its own copy (`Clone`; references and
//!   `Copy` values are copied), so the body can run again after a conflict. A `&self` receiver is
//!   a reference: each attempt's `async move` copies it.
//! - `R` is named in the generated code, so the body's `?` conversions and its value are checked
//!   against the fn's return type, as without the macro. Both `TxnResult` calls are placed on the
//!   return type's tokens: if `R` is not a `Result<T, E: From<mazurka::Error>>`, the single
//!   error (the compiler merges the identical ones) points at the return type.
//! - A non-`Clone` argument is reported by `ReusableArg` on the argument.
//! - Generated locals are named at `Span::mixed_site()`: the body cannot see or shadow them.

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};

use super::{bounds, Dosync};
use crate::common::respan;

/// The fn `#[dosync]` stands for.
pub(crate) fn expand(dosync: &Dosync) -> TokenStream {
    let private = dosync.krate.private();
    let Dosync {
        attrs,
        inner_attrs,
        vis,
        sig,
        ret,
        bindings,
        block,
        ..
    } = dosync;

    let options = match &dosync.retry_limit {
        Some(limit) => quote!(#private::TxnOptions::default().retry_limit(#limit)),
        None => quote!(#private::TxnOptions::default()),
    };

    let bindings = bindings.iter().map(|binding| {
        let pat = &binding.pat;
        let source = &binding.source;
        // Every token of the call at the argument: "`T` cannot be reused …" points there.
        let at = Span::call_site().located_at(binding.span);
        let private = respan(&private, at);
        quote_spanned!(at=> let #pat = #private::ReusableArg::reuse(&#source);)
    });

    let value = Ident::new("__ret", Span::mixed_site());
    let into_result = on_return_type(ret, &private, "into_result", value.to_token_stream());
    let attempt = quote! {
        #private::dosync(#options, move || {
            #(#bindings)*
            async move {
                let #value: #ret = async move #block.await;
                #into_result
            }
        })
        .await
    };
    let finish = on_return_type(ret, &private, "finish", attempt);

    quote! {
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #finish
        }
    }
}

/// `<R as <crate>::__private::TxnResult<_, _>>::method(args)`, with the call covering exactly the return
/// type's tokens: `<` at its first token, the parentheses at its last.
fn on_return_type(ret: &syn::Type, private: &TokenStream, method: &str, args: TokenStream) -> TokenStream {
    let (first, last) = bounds(ret);
    let mut open = Punct::new('<', Spacing::Alone);
    open.set_span(first);
    let method = Ident::new(method, last);
    let mut args = Group::new(Delimiter::Parenthesis, args);
    args.set_span(last);
    let private = respan(private, last);
    quote_spanned!(last=> #open #ret as #private::TxnResult<_, _>>::#method #args)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        let (checked, errors) = super::super::parse::parse(args, item);
        assert!(errors.is_none(), "{errors:?}");
        match checked {
            Some(checked) => expand(&checked).to_string(),
            None => panic!("nothing to expand"),
        }
    }

    #[test]
    fn transfer() {
        let expanded = expand_str(
            quote!(),
            quote! {
                /// Moves money.
                pub async fn transfer(from: &Ref<A>, to: &Ref<A>, mut amount: i64) -> mazurka::Result<()> {
                    body().await
                }
            },
        );
        assert_eq!(
            expanded,
            "# [doc = r\" Moves money.\"] pub async fn transfer (from : & Ref < A > , to : & Ref < A > , amount : \
             i64) -> mazurka :: Result < () > { < mazurka :: Result < () > as :: mazurka :: __private :: \
             TxnResult < _ , _ >> :: finish (:: mazurka :: __private :: dosync (:: mazurka :: __private :: TxnOptions :: \
             default () , move || { let from = :: mazurka :: __private :: ReusableArg :: reuse (& from) ; let to = \
             :: mazurka :: __private :: ReusableArg :: reuse (& to) ; let mut amount = :: mazurka :: __private :: \
             ReusableArg :: reuse (& amount) ; async move { let __ret : mazurka :: Result < () > = async move { \
             body () . await } . await ; < mazurka :: Result < () > as :: mazurka :: __private :: TxnResult < _ , _ >> :: \
             into_result (__ret) } }) . await) }"
        );
    }

    #[test]
    fn methods_options_and_inner_attributes() {
        let expanded = expand_str(
            quote!(retry_limit = 50, crate = "mz"),
            quote! {
                async fn m(&self, (a, b): (u8, u8)) -> Result<u8, E> {
                    #![allow(unused)]
                    Ok(a + b)
                }
            },
        );
        assert!(
            expanded.starts_with(
                "async fn m (& self , __arg1 : (u8 , u8)) -> Result < u8 , E > { # ! [allow (unused)]"
            ),
            "{expanded}"
        );
        assert!(
            expanded.contains(
                "mz :: __private :: dosync (mz :: __private :: TxnOptions :: default () . retry_limit (50)"
            ),
            "{expanded}"
        );
        assert!(expanded.contains("let (a , b) = mz :: __private :: ReusableArg :: reuse (& __arg1) ;"));
        assert!(!expanded.contains("::mazurka"));
    }

    #[test]
    fn the_spans_of_the_return_type_checks() {
        let ret: syn::Type = syn::parse_quote!(Result<u8, E>);
        let call = on_return_type(&ret, &quote!(::mazurka::__private), "finish", quote!(x));
        assert_eq!(
            call.to_string(),
            "< Result < u8 , E > as :: mazurka :: __private :: TxnResult < _ , _ >> :: finish (x)"
        );
    }
}
