//! `#[distributed]` input: the arguments (`key = value, …`) and the item, then their check, which
//! collects every error.
//!
//! ```text
//! args   := option ("," option)* ","?
//! option := ("ref" | "atom" | "pod") "=" string      (exactly one of the three)
//!         | "codec" "=" ("\"bincode\"" | "\"json\"")
//!         | "crate" "=" string                         (the path to mazurka)
//! ```

use proc_macro2::{Ident, Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::{Item, LitStr};

use super::template::{self, Piece};
use super::{Codec, Distributed, Kind, TypeInfo};
use crate::common::{self, AttrArg, CratePath, Errors};

/// Every option, for "expected one of …".
const OPTIONS: &[&str] = &["ref", "atom", "pod", "codec", "crate"];

/// The shape to suggest.
const USAGE: &str = "#[distributed(ref = \"/accounts/{id}\")]";

/// Parses and checks the attribute: what to generate (`None` if nothing can be) and every error.
pub(crate) fn parse(args: TokenStream, item: TokenStream) -> (Option<Distributed>, Option<syn::Error>) {
    let mut errors = Errors::default();
    let ty = match syn::parse2::<Item>(item) {
        Ok(item) => type_info(item, &mut errors),
        // Not an item at all: the compiler reports the syntax error on the tokens we emit.
        Err(_) => None,
    };
    let args = match AttrArg::parse_list.parse2(args) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return (None, errors.into_error());
        }
    };
    let checked = check(args, ty, &mut errors);
    (checked, errors.into_error())
}

/// The struct or enum, or an error.
fn type_info(item: Item, errors: &mut Errors) -> Option<TypeInfo> {
    let (vis, ident, generics) = match item {
        Item::Struct(item) => (item.vis, item.ident, item.generics),
        Item::Enum(item) => (item.vis, item.ident, item.generics),
        Item::Union(item) => {
            errors.add(
                item.union_token.span,
                "#[distributed] goes on a struct or an enum (with serde's `Serialize` and `Deserialize`), not \
                 on a union",
            );
            return None;
        }
        other => {
            errors.push(syn::Error::new(
                item_span(&other),
                "#[distributed] goes on a struct or an enum (with serde's `Serialize` and `Deserialize`)",
            ));
            return None;
        }
    };
    Some(TypeInfo { vis, ident, generics })
}

/// Where to report that an item is not a struct or enum: its keyword when it has one.
fn item_span(item: &Item) -> Span {
    match item {
        Item::Fn(item) => item.sig.fn_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Const(item) => item.const_token.span,
        Item::Static(item) => item.static_token.span,
        _ => Span::call_site(),
    }
}

/// The options, then the template.
fn check(args: Vec<AttrArg>, ty: Option<TypeInfo>, errors: &mut Errors) -> Option<Distributed> {
    let mut kind: Option<(Kind, Ident, LitStr)> = None;
    let mut kind_given = false;
    let mut codec: Option<(Ident, Codec)> = None;
    let mut krate: Option<(Ident, CratePath)> = None;
    for arg in &args {
        let key = arg.key.unraw().to_string();
        match key.as_str() {
            "ref" | "atom" | "pod" => {
                let this = match key.as_str() {
                    "ref" => Kind::Ref,
                    "atom" => Kind::Atom,
                    _ => Kind::Pod,
                };
                kind_given = true;
                let example = format!("{key} = \"/accounts/{{id}}\"");
                let lit = match arg.lit_str(&example) {
                    Ok(lit) => lit.clone(),
                    Err(error) => {
                        errors.push(error);
                        continue;
                    }
                };
                match &kind {
                    Some((previous, _, _)) if *previous == this => {
                        errors.add(arg.key.span(), format!("duplicate option `{key}`; give it once"));
                    }
                    Some((previous, _, _)) => errors.add(
                        arg.key.span(),
                        format!(
                            "use one of `ref`, `atom` or `pod`, not several: the values of a type live in one kind \
                             of znode (`{}` is already given)",
                            previous.key()
                        ),
                    ),
                    None => {
                        kind = Some((this, arg.key.clone(), lit));
                    }
                }
            }
            "codec" => {
                let lit = match arg.lit_str("codec = \"json\"") {
                    Ok(lit) => lit,
                    Err(error) => {
                        errors.push(error);
                        continue;
                    }
                };
                let value = match lit.value().as_str() {
                    "bincode" => Codec::Bincode,
                    "json" => Codec::Json,
                    other => {
                        let hint = ["bincode", "json"]
                            .into_iter()
                            .find(|known| common::looks_like(known, other))
                            .map(|known| format!("; did you mean \"{known}\"?"))
                            .unwrap_or_default();
                        errors.add(
                            lit.span(),
                            format!(
                                "unknown codec {other:?}: expected \"bincode\" (the default) or \"json\"{hint}"
                            ),
                        );
                        continue;
                    }
                };
                if codec.is_some() {
                    errors.add(arg.key.span(), "duplicate option `codec`; give it once");
                } else {
                    codec = Some((arg.key.clone(), value));
                }
            }
            "crate" => {
                let path = arg.lit_str("crate = \"::mazurka\"").and_then(CratePath::from_lit);
                match path {
                    Err(error) => errors.push(error),
                    Ok(_) if krate.is_some() => {
                        errors.add(arg.key.span(), "duplicate option `crate`; give it once");
                    }
                    Ok(path) => krate = Some((arg.key.clone(), path)),
                }
            }
            _ => errors.push(common::unknown_option(&arg.key, "#[distributed]", OPTIONS)),
        }
    }

    let Some((kind, _, template)) = kind else {
        if kind_given {
            return None; // the value was reported
        }
        errors.add(
            Span::call_site(),
            format!(
                "#[distributed] needs the path of the values' znodes, with a `{{placeholder}}` for each part that \
                 varies: {USAGE} (or `atom = …`, `pod = …`)"
            ),
        );
        return None;
    };
    let params = check_template(&template, kind, errors)?;
    let ty = ty?;
    Some(Distributed {
        krate: krate.map(|(_, path)| path).unwrap_or_default(),
        ty,
        kind,
        template,
        params,
        codec: codec.map(|(_, codec)| codec).unwrap_or_default(),
    })
}

/// Checks the template literal: its syntax (fatal for the expansion: the parameters are unknown),
/// then the path rules, with every placeholder filled with a valid segment (not fatal). Returns
/// the parameters.
fn check_template(lit: &LitStr, kind: Kind, errors: &mut Errors) -> Option<Vec<(String, Ident)>> {
    let text = lit.value();
    let pieces = match template::parse_template(&text) {
        Ok(pieces) => pieces,
        Err(message) => {
            errors.add(lit.span(), format!("invalid path template: {message}"));
            return None;
        }
    };
    let has_placeholders = pieces.iter().any(|piece| matches!(piece, Piece::Param(_)));
    let filled = template::fill(&pieces, "x");
    match common::validate(&filled) {
        Err(rule) => {
            let filled_note = if has_placeholders {
                " (checked with every placeholder filled in)"
            } else {
                ""
            };
            errors.add(
                lit.span(),
                format!("invalid znode path{filled_note}: {}", rule.message()),
            );
        }
        Ok(()) if filled == "/" => errors.add(
            lit.span(),
            format!(
                "the root \"/\" cannot hold a {}: use a path such as \"/app/config\"",
                kind.key()
            ),
        ),
        Ok(()) => {}
    }

    let mut params = Vec::new();
    let mut usable = true;
    for name in template::placeholders(&pieces) {
        match param_ident(name, lit.span()) {
            Some(ident) => params.push((name.to_owned(), ident)),
            None => {
                errors.add(
                    lit.span(),
                    format!(
                        "placeholder {{{name}}} cannot name a parameter of the generated constructors: `{name}` is \
                         reserved in Rust; rename it"
                    ),
                );
                usable = false;
            }
        }
    }
    usable.then_some(params)
}

/// The parameter for a placeholder: the name itself, or a raw identifier for a keyword (`{type}`
/// becomes `r#type`); `None` for the names no identifier can have (`self`, `_`, …).
fn param_ident(name: &str, span: Span) -> Option<Ident> {
    if matches!(name, "_" | "self" | "Self" | "super" | "crate") {
        return None;
    }
    match syn::parse_str::<Ident>(name) {
        Ok(mut ident) => {
            ident.set_span(span);
            Some(ident)
        }
        Err(_) => Some(Ident::new_raw(name, span)),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn run(args: TokenStream) -> (Option<Distributed>, Option<String>) {
        let item = quote!(
            #[derive(Clone)]
            pub struct Account {
                balance: i64,
            }
        );
        let (checked, errors) = parse(args, item);
        let errors = errors.map(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        });
        (checked, errors)
    }

    fn ok(args: TokenStream) -> Distributed {
        match run(args.clone()) {
            (Some(checked), None) => checked,
            other => panic!("{args}: {other:?}"),
        }
    }

    fn error(args: TokenStream) -> String {
        match run(args.clone()) {
            (_, Some(errors)) => errors,
            (checked, None) => panic!("{args} passed: {checked:?}"),
        }
    }

    fn param_names(checked: &Distributed) -> Vec<String> {
        checked
            .params
            .iter()
            .map(|(_, ident)| ident.to_string())
            .collect()
    }

    #[test]
    fn a_ref_with_placeholders() {
        let checked = ok(quote!(ref = "/bank/{bank}/accounts/{id}/{bank}"));
        assert_eq!(checked.kind, Kind::Ref);
        assert_eq!(checked.codec, Codec::Bincode);
        assert_eq!(checked.template.value(), "/bank/{bank}/accounts/{id}/{bank}");
        assert_eq!(param_names(&checked), ["bank", "id"]);
        assert_eq!(checked.ty.ident, "Account");
        assert_eq!(checked.krate.tokens().to_string(), ":: mazurka");
    }

    #[test]
    fn options() {
        let checked = ok(quote!(ref = "/cfg", codec = "json", crate = "::my::mazurka",));
        assert_eq!(checked.codec, Codec::Json);
        assert!(checked.params.is_empty());
        assert_eq!(checked.krate.tokens().to_string(), ":: my :: mazurka");
        assert_eq!(ok(quote!(codec = "bincode", ref = "/cfg")).codec, Codec::Bincode);
    }

    #[test]
    fn keyword_placeholders_become_raw_identifiers() {
        assert_eq!(
            param_names(&ok(quote!(ref = "/t/{type}/{fn_}"))),
            ["r#type", "fn_"]
        );
    }

    #[test]
    fn missing_kind() {
        assert!(error(quote!()).starts_with("#[distributed] needs the path of the values' znodes"));
        assert!(error(quote!(codec = "json")).starts_with("#[distributed] needs the path"));
    }

    #[test]
    fn unknown_and_duplicate_options() {
        assert_eq!(
            error(quote!(ref = "/a", foo = "x")),
            "unknown #[distributed] option `foo`; expected one of `ref`, `atom`, `pod`, `codec` or `crate`"
        );
        assert_eq!(
            error(quote!(ref = "/a", codex = "json")),
            "unknown #[distributed] option `codex`; did you mean `codec`?"
        );
        assert_eq!(
            error(quote!(ref = "/a", ref = "/b")),
            "duplicate option `ref`; give it once"
        );
        assert_eq!(
            error(quote!(ref = "/a", codec = "json", codec = "json")),
            "duplicate option `codec`; give it once"
        );
        assert!(error(quote!(ref = "/a", atom = "/b"))
            .starts_with("use one of `ref`, `atom` or `pod`, not several"));
    }

    #[test]
    fn errors_next_to_a_usable_template_keep_the_constructors() {
        let (checked, errors) = run(quote!(ref = "/a/{id}", foo = 1));
        assert!(errors.is_some());
        assert!(checked.is_some_and(|c| c.params.len() == 1));
        let (checked, errors) = run(quote!(ref = "/a//{id}"));
        assert!(errors.is_some_and(|e| e.contains("empty segment")));
        assert!(checked.is_some());
    }

    #[test]
    fn atoms_and_pods_are_accepted() {
        for (args, kind) in [
            (quote!(atom = "/a/{id}"), Kind::Atom),
            (quote!(pod = "/p"), Kind::Pod),
        ] {
            let checked = ok(args);
            assert_eq!(checked.kind, kind);
        }
        assert!(error(quote!(atom = "a")).contains("a path must start with '/'"));
    }

    #[test]
    fn values_must_be_string_literals() {
        assert_eq!(
            error(quote!(ref = 5)),
            "`ref` takes a string literal, as in `ref = \"/accounts/{id}\"`"
        );
        assert_eq!(
            error(quote!(ref = "/a", codec = json)),
            "`codec` takes a string literal, as in `codec = \"json\"`"
        );
        assert!(error(quote!(ref = "/a", codec = "yaml")).starts_with("unknown codec \"yaml\""));
        assert!(error(quote!(ref = "/a", codec = "jsn")).ends_with("did you mean \"json\"?"));
        assert!(error(quote!(ref = "/a", crate = "not a path")).contains("is not a path"));
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            error(quote!(ref)),
            "expected `ref = …`: every option takes a value"
        );
        assert_eq!(error(quote!(ref =)), "expected a value after `ref =`");
        assert!(error(quote!(ref = "/a" codec = "json")).contains("expected `,`"));
    }

    #[test]
    fn templates_are_checked() {
        assert!(error(quote!(ref = "/a/{id")).starts_with("invalid path template: unclosed '{'"));
        assert!(error(quote!(ref = "/a/{}")).contains("must be named by an identifier"));
        assert_eq!(
            error(quote!(ref = "a/{id}")),
            "invalid znode path (checked with every placeholder filled in): a path must start with '/'; write \
             \"/app/lock\", not \"app/lock\""
        );
        assert!(error(quote!(ref = "/zookeeper/{id}")).contains("reserved by ZooKeeper"));
        assert!(error(quote!(ref = "/a/")).starts_with("invalid znode path: a path must not end with '/'"));
        assert!(error(quote!(ref = "/")).starts_with("the root \"/\" cannot hold a ref"));
        assert!(error(quote!(ref = "/a/{self}")).contains("`self` is reserved in Rust"));
        assert!(error(quote!(ref = "/a/{_}")).contains("cannot name a parameter"));
    }

    #[test]
    fn items_other_than_structs_and_enums() {
        let (checked, errors) = parse(
            quote!(ref = "/a"),
            quote!(
                fn f() {}
            ),
        );
        assert!(checked.is_none());
        assert!(errors.is_some_and(|e| e
            .to_string()
            .starts_with("#[distributed] goes on a struct or an enum")));
        let (checked, errors) = parse(
            quote!(ref = "/a"),
            quote!(
                enum E {
                    A,
                }
            ),
        );
        assert!(checked.is_some() && errors.is_none());
        let (_, errors) = parse(quote!(ref = "/a"), quote!(union U { a: u8 }));
        assert!(errors.is_some_and(|e| e.to_string().contains("not on a union")));
    }
}
