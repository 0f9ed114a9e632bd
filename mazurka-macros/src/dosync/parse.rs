//! `#[dosync]` input: the arguments (`key = value, …`) and the fn, then their check, which
//! collects every error.
//!
//! ```text
//! args   := option ("," option)* ","?
//! option := "retry_limit" "=" expression    (a u32: attempts before Error::RetryLimit)
//!         | "crate" "=" string              (the path to mazurka)
//! ```

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{AttrStyle, Expr, FnArg, Ident, Item, ItemFn, Lit, Pat, PatIdent, ReturnType, Type};

use super::{Binding, Dosync};
use crate::common::{self, AttrArg, CratePath, Errors};

/// Every option, for "expected one of …".
const OPTIONS: &[&str] = &["retry_limit", "crate"];

/// What the return type must be.
const RETURN: &str = "a #[dosync] fn must return a `Result` whose error type implements \
                      `From<mazurka::Error>`";

/// Parses and checks the attribute and the fn: the fn to expand (`None` if it cannot be) and
/// every error.
pub(crate) fn parse(args: TokenStream, item: TokenStream) -> (Option<Dosync>, Option<syn::Error>) {
    let mut errors = Errors::default();
    let args = match AttrArg::parse_list.parse2(args) {
        Ok(args) => Some(args),
        Err(error) => {
            errors.push(error);
            None
        }
    };
    let func = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            errors.push(not_a_fn(item));
            return (None, errors.into_error());
        }
    };
    let Some(args) = args else {
        return (None, errors.into_error());
    };
    let (krate, retry_limit) = check_options(args, &mut errors);
    let checked = check_fn(func, &mut errors).map(|mut dosync| {
        dosync.krate = krate;
        dosync.retry_limit = retry_limit;
        dosync
    });
    (checked, errors.into_error())
}

/// The error for an item that is not a fn with a body.
fn not_a_fn(item: TokenStream) -> syn::Error {
    if let Ok(method) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        return syn::Error::new(
            method.sig.fn_token.span,
            "#[dosync] needs the fn's body: it goes on an `async fn` with a body, which it runs as a transaction",
        );
    }
    let span = match syn::parse2::<Item>(item) {
        Ok(Item::Struct(item)) => item.struct_token.span,
        Ok(Item::Enum(item)) => item.enum_token.span,
        Ok(Item::Impl(item)) => item.impl_token.span,
        Ok(Item::Trait(item)) => item.trait_token.span,
        Ok(Item::Mod(item)) => item.mod_token.span,
        Ok(Item::Const(item)) => item.const_token.span,
        Ok(Item::Static(item)) => item.static_token.span,
        _ => Span::call_site(),
    };
    syn::Error::new(
        span,
        "#[dosync] goes on an `async fn`, whose body it runs as a transaction (for a block, call \
         `mazurka::dosync(|| async { … })`)",
    )
}

/// `crate = "…"` and `retry_limit = n`.
fn check_options(args: Vec<AttrArg>, errors: &mut Errors) -> (CratePath, Option<Expr>) {
    let mut krate: Option<CratePath> = None;
    let mut retry_limit: Option<Expr> = None;
    for arg in args {
        match arg.key.unraw().to_string().as_str() {
            "retry_limit" => {
                if retry_limit.is_some() {
                    errors.add(arg.key.span(), "duplicate option `retry_limit`; give it once");
                    continue;
                }
                if let Some(zero) = zero_literal(&arg.value) {
                    errors.add(
                        zero,
                        "`retry_limit` counts attempts: it must be at least 1 (the default is 1000)",
                    );
                }
                retry_limit = Some(arg.value);
            }
            "crate" => match arg.lit_str("crate = \"::mazurka\"").and_then(CratePath::from_lit) {
                Err(error) => errors.push(error),
                Ok(_) if krate.is_some() => {
                    errors.add(arg.key.span(), "duplicate option `crate`; give it once")
                }
                Ok(path) => krate = Some(path),
            },
            _ => errors.push(common::unknown_option(&arg.key, "#[dosync]", OPTIONS)),
        }
    }
    (krate.unwrap_or_default(), retry_limit)
}

/// The span of `expr` if it is the literal `0`.
fn zero_literal(expr: &Expr) -> Option<Span> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) if int.base10_parse::<u64>().is_ok_and(|n| n == 0) => Some(int.span()),
            _ => None,
        },
        Expr::Group(group) => zero_literal(&group.expr),
        Expr::Paren(paren) => zero_literal(&paren.expr),
        _ => None,
    }
}

/// The fn's shape: `async`, a return type, arguments that every attempt can have a copy of.
fn check_fn(func: ItemFn, errors: &mut Errors) -> Option<Dosync> {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = func;
    let mut usable = true;

    if sig.asyncness.is_none() {
        // Not fatal: expanded as the `async fn` it must be, so that its `.await`s are not reported too.
        errors.add(
            sig.fn_token.span,
            "#[dosync] needs an `async fn`: a transaction awaits its reads and its commit; write `async fn`",
        );
        sig.asyncness = Some(syn::token::Async(sig.fn_token.span));
    }

    let ret = match &sig.output {
        ReturnType::Type(_, ty) => {
            if let Some(span) = find_impl(&ty.to_token_stream()) {
                errors.add(
                    span,
                    "a #[dosync] fn cannot return `impl Trait`: the generated code names the return type; write \
                     the type out (or return a `Box<dyn Trait>`)",
                );
                usable = false;
            }
            Some((**ty).clone())
        }
        ReturnType::Default => {
            errors.add(
                sig.paren_token.span.close(),
                format!("{RETURN}: add a return type, such as `-> mazurka::Result<()>`"),
            );
            None
        }
    };

    let mut bindings = Vec::new();
    for (index, input) in sig.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(receiver) => {
                if let Err(error) = check_receiver(receiver) {
                    errors.push(error);
                    usable = false;
                }
            }
            FnArg::Typed(arg) => {
                if let Type::Reference(reference) = &*arg.ty {
                    if reference.mutability.is_some() {
                        errors.push(syn::Error::new_spanned(
                            reference,
                            "a #[dosync] fn cannot take `&mut` arguments: every attempt of the transaction needs \
                             the argument again, and an exclusive borrow cannot be lent twice; take `&T` (and change \
                             shared state through refs) or a value that is `Clone`",
                        ));
                        usable = false;
                        continue;
                    }
                }
                if let Some(binding) = rebind(&mut arg.pat, index) {
                    bindings.push(binding);
                }
            }
        }
    }

    let ret = ret?;
    if !usable {
        return None;
    }
    let (inner_attrs, attrs) = attrs
        .into_iter()
        .partition(|attr| matches!(attr.style, AttrStyle::Inner(_)));
    Some(Dosync {
        krate: CratePath::default(),
        retry_limit: None,
        attrs,
        inner_attrs,
        vis,
        sig,
        ret,
        bindings,
        block,
    })
}

/// `&self` and `self: &T` are copied into every attempt; nothing else can be.
fn check_receiver(receiver: &syn::Receiver) -> syn::Result<()> {
    let (shared, exclusive) = match &*receiver.ty {
        Type::Reference(reference) => (reference.mutability.is_none(), reference.mutability.is_some()),
        _ => (false, false),
    };
    if shared {
        return Ok(());
    }
    if exclusive {
        Err(syn::Error::new_spanned(
            receiver,
            "a #[dosync] method cannot take `&mut self`: every attempt of the transaction needs `self` again, and \
             an exclusive borrow cannot be lent twice; take `&self` (and change shared state through refs)",
        ))
    } else {
        Err(syn::Error::new_spanned(
            receiver,
            "a #[dosync] method must take `&self`: every attempt of the transaction needs `self` again, and \
             `self` by value cannot be copied for each; take `&self`",
        ))
    }
}

/// Makes the parameter a plain identifier and returns how each attempt binds it: `x` stays `x`;
/// `mut x` becomes `x`, bound as `mut x`; any other pattern becomes a generated name, bound with
/// the pattern; `_` is not bound at all.
fn rebind(pat: &mut Box<Pat>, index: usize) -> Option<Binding> {
    let written = (**pat).clone();
    match &mut **pat {
        Pat::Wild(_) => None,
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            ident,
            mutability,
            ..
        }) => {
            let binding = Binding {
                pat: written,
                source: ident.clone(),
                span: ident.span(),
            };
            *mutability = None;
            Some(binding)
        }
        other => {
            let span = other.span();
            let source = Ident::new(&format!("__arg{index}"), Span::mixed_site().located_at(span));
            let binding = Binding {
                pat: written,
                source: source.clone(),
                span,
            };
            **pat = Pat::Ident(PatIdent {
                attrs: Vec::new(),
                by_ref: None,
                mutability: None,
                ident: source,
                subpat: None,
            });
            Some(binding)
        }
    }
}

/// The span of an `impl` keyword in `tokens`, at any depth.
fn find_impl(tokens: &TokenStream) -> Option<Span> {
    tokens.clone().into_iter().find_map(|tt| match tt {
        TokenTree::Ident(ident) if ident == "impl" => Some(ident.span()),
        TokenTree::Group(group) => find_impl(&group.stream()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn run(args: TokenStream, item: TokenStream) -> (Option<Dosync>, Option<String>) {
        let (checked, errors) = parse(args, item);
        let errors = errors.map(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        });
        (checked, errors)
    }

    fn ok(item: TokenStream) -> Dosync {
        match run(quote!(), item.clone()) {
            (Some(checked), None) => checked,
            other => panic!("{item}: {other:?}"),
        }
    }

    fn error(args: TokenStream, item: TokenStream) -> String {
        match run(args.clone(), item) {
            (_, Some(errors)) => errors,
            (checked, None) => panic!("{args} passed: {checked:?}"),
        }
    }

    fn transfer() -> TokenStream {
        quote! {
            /// Moves money.
            pub async fn transfer(from: &Ref<Account>, to: &Ref<Account>, amount: i64) -> mazurka::Result<()> {
                #![allow(clippy::all)]
                from.alter(|a| a.clone()).await?;
                Ok(())
            }
        }
    }

    fn sources(dosync: &Dosync) -> Vec<String> {
        dosync.bindings.iter().map(|b| b.source.to_string()).collect()
    }

    #[test]
    fn a_plain_async_fn() {
        let dosync = ok(transfer());
        assert_eq!(sources(&dosync), ["from", "to", "amount"]);
        assert_eq!(
            dosync.ret.to_token_stream().to_string(),
            "mazurka :: Result < () >"
        );
        assert_eq!(dosync.attrs.len(), 1);
        assert_eq!(dosync.inner_attrs.len(), 1);
        assert!(dosync.retry_limit.is_none());
        assert_eq!(dosync.krate.tokens().to_string(), ":: mazurka");
    }

    #[test]
    fn patterns_and_mut_are_bound_per_attempt() {
        let dosync = ok(quote!(
            async fn f(mut name: String, (a, b): (u8, u8), _: u8, _unused: u8) -> R {}
        ));
        assert_eq!(sources(&dosync), ["name", "__arg1", "_unused"]);
        let pats: Vec<String> = dosync
            .bindings
            .iter()
            .map(|b| b.pat.to_token_stream().to_string())
            .collect();
        assert_eq!(pats, ["mut name", "(a , b)", "_unused"]);
        assert_eq!(
            dosync.sig.inputs.to_token_stream().to_string(),
            "name : String , __arg1 : (u8 , u8) , _ : u8 , _unused : u8"
        );
    }

    #[test]
    fn methods_on_shared_self() {
        let dosync = ok(quote!(
            async fn m(&self, n: u8) -> R {}
        ));
        assert_eq!(sources(&dosync), ["n"]);
        ok(quote!(
            async fn m<'a>(self: &'a Self) -> R {}
        ));
    }

    #[test]
    fn options() {
        let (checked, errors) = run(
            quote!(retry_limit = 50, crate = "::mz"),
            quote!(
                async fn f() -> R {}
            ),
        );
        assert_eq!(errors, None);
        let checked = checked.unwrap_or_else(|| panic!("not expanded"));
        assert_eq!(
            checked
                .retry_limit
                .map(|e| e.to_token_stream().to_string())
                .as_deref(),
            Some("50")
        );
        assert_eq!(checked.krate.tokens().to_string(), ":: mz");
    }

    #[test]
    fn unknown_duplicate_and_bad_options_keep_the_expansion() {
        let f = quote!(
            async fn f() -> R {}
        );
        assert_eq!(
            error(quote!(retries = 3), f.clone()),
            "unknown #[dosync] option `retries`; expected one of `retry_limit` or `crate`"
        );
        assert_eq!(
            error(quote!(retry_limt = 3), f.clone()),
            "unknown #[dosync] option `retry_limt`; did you mean `retry_limit`?"
        );
        assert_eq!(
            error(quote!(retry_limit = 1, retry_limit = 2), f.clone()),
            "duplicate option `retry_limit`; give it once"
        );
        assert!(error(quote!(retry_limit = 0), f.clone()).starts_with("`retry_limit` counts attempts"));
        assert!(error(quote!(crate = mazurka), f.clone()).starts_with("`crate` takes a string literal"));
        let (checked, _) = run(quote!(foo = 1), f);
        assert!(checked.is_some());
    }

    #[test]
    fn not_async_is_expanded_as_async() {
        let (checked, errors) = run(
            quote!(),
            quote!(
                fn f() -> R {}
            ),
        );
        assert!(errors.is_some_and(|e| e.starts_with("#[dosync] needs an `async fn`")));
        assert!(checked.is_some_and(|c| c.sig.asyncness.is_some()));
    }

    #[test]
    fn shape_errors_leave_the_fn_unchanged() {
        for (item, expected) in [
            (
                quote!(
                    async fn f() {}
                ),
                "add a return type, such as `-> mazurka::Result<()>`",
            ),
            (
                quote!(
                    async fn f(x: &mut u8) -> R {}
                ),
                "cannot take `&mut` arguments",
            ),
            (
                quote!(
                    async fn f(&mut self) -> R {}
                ),
                "cannot take `&mut self`",
            ),
            (
                quote!(
                    async fn f(self) -> R {}
                ),
                "must take `&self`",
            ),
            (
                quote!(
                    async fn f(self: Arc<Self>) -> R {}
                ),
                "must take `&self`",
            ),
            (
                quote!(
                    async fn f() -> Result<impl Debug, E> {}
                ),
                "cannot return `impl Trait`",
            ),
        ] {
            let (checked, errors) = run(quote!(), item.clone());
            assert!(checked.is_none(), "{item}");
            assert!(
                errors.as_deref().is_some_and(|e| e.contains(expected)),
                "{item}: {errors:?}"
            );
        }
    }

    #[test]
    fn not_a_fn() {
        assert!(error(
            quote!(),
            quote!(
                struct S;
            )
        )
        .starts_with("#[dosync] goes on an `async fn`"));
        assert!(error(
            quote!(),
            quote!(
                async fn f() -> R;
            )
        )
        .starts_with("#[dosync] needs the fn's body"));
    }

    #[test]
    fn every_error_is_reported() {
        let errors = error(
            quote!(foo = 1),
            quote!(
                fn f(&mut self, a: &mut u8) {}
            ),
        );
        for expected in [
            "unknown #[dosync] option",
            "needs an `async fn`",
            "add a return type",
            "`&mut` arguments",
            "`&mut self`",
        ] {
            assert!(errors.contains(expected), "{expected} missing from {errors}");
        }
    }
}
