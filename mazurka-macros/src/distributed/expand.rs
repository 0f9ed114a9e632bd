//! `#[distributed]` expansion. It cannot fail: every error was found by the check.
//!
//! For `#[distributed(ref = "/accounts/{id}")] struct Account { … }` it adds, after the
//! unchanged struct:
//!
//! ```text
//! impl Account {
//!     pub const ZNODE_TEMPLATE: &'static str = "/accounts/{id}";
//!     pub fn znode_path(id: impl Display) -> Result<ZnodePath> { __private::template_path(…) }
//!     pub async fn zref(session: &Session, id: impl Display, initial: Self) -> Result<Ref<Self, Bincode>> {
//!         __private::new_ref::<Self>(session, Self::znode_path(id), initial).await
//!     }
//!     pub async fn open_zref(session: &Session, id: impl Display) -> Result<Ref<Self, Bincode>> { … }
//! }
//! impl __private::Distributed for Account { const ZNODE_TEMPLATE …; const PLACEHOLDERS …; type Codec = Bincode; }
//! ```
//!
//! Everything is named through `<crate>::__private`. The trait impl is where a type that is not
//! a serde value (its supertrait `Value`) is reported, once, on the type's name.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

use super::{Codec, Distributed, Kind, TypeInfo};
use crate::common::respan;

/// The items `#[distributed]` adds after the type.
pub(crate) fn expand(distributed: &Distributed) -> TokenStream {
    let private = distributed.krate.private();
    let TypeInfo { vis, ident, generics } = &distributed.ty;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let template = &distributed.template;
    let codec = match distributed.codec {
        Codec::Bincode => quote!(#private::Bincode),
        Codec::Json => quote!(#private::Json),
    };
    let docs = Docs::new(distributed);
    let (const_doc, path_doc, zref_doc, open_doc) = (docs.template(), docs.path(), docs.zref(), docs.open());

    // Generated names that must not meet a placeholder's parameter of the same name.
    let session = Ident::new("session", Span::mixed_site());
    let initial = Ident::new("initial", Span::mixed_site());
    let params: Vec<&Ident> = distributed.params.iter().map(|(_, ident)| ident).collect();
    // The constructors and their `impl Display` bounds are placed on the template, which defines
    // their parameters: "function defined here" and "required by this bound" point at it.
    let at = Span::call_site().located_at(template.span());
    let display = respan(&quote!(impl #private::Display), at);
    // The handle type and the runtime helpers depend on the kind: `Ref` (zref), `Atom` (zatom),
    // `Pod` (zpod).
    let (handle, new_fn, open_fn, new_name, open_name) = match distributed.kind {
        Kind::Ref => (
            quote!(Ref),
            quote!(new_ref),
            quote!(open_ref),
            "zref",
            "open_zref",
        ),
        Kind::Atom => (
            quote!(Atom),
            quote!(new_atom),
            quote!(open_atom),
            "zatom",
            "open_zatom",
        ),
        Kind::Pod => (
            quote!(Pod),
            quote!(new_pod),
            quote!(open_pod),
            "zpod",
            "open_zpod",
        ),
    };
    let (znode_path, zref, open_zref) = (
        Ident::new("znode_path", at),
        Ident::new(new_name, at),
        Ident::new(open_name, at),
    );
    let names: Vec<&str> = distributed.params.iter().map(|(name, _)| name.as_str()).collect();
    let allow_case = distributed
        .params
        .iter()
        .any(|(name, _)| name.chars().any(|c| c.is_ascii_uppercase()))
        .then(|| quote!(#[allow(non_snake_case)]));

    // A generic type is a value only for some arguments: say which, on both impls.
    let value_bound = (!generics.params.is_empty()).then(|| {
        let predicate = quote!(#ident #ty_generics: #private::Value);
        match where_clause {
            Some(clause) if clause.predicates.trailing_punct() || clause.predicates.is_empty() => {
                quote!(#clause #predicate)
            }
            Some(clause) => quote!(#clause, #predicate),
            None => quote!(where #predicate),
        }
    });
    let where_clause = value_bound
        .as_ref()
        .map_or_else(|| quote!(#where_clause), Clone::clone);

    // The type's name carries the trait impl: "`Account: Serialize` is not satisfied" points there.
    let distributed_impl = quote_spanned! {ident.span()=>
        impl #impl_generics #private::Distributed for #ident #ty_generics #where_clause
    };

    quote! {
        #[allow(dead_code)]
        impl #impl_generics #ident #ty_generics #where_clause {
            #[doc = #const_doc]
            #vis const ZNODE_TEMPLATE: &'static str = #template;

            #[doc = #path_doc]
            #allow_case
            #vis fn #znode_path(#(#params: #display),*) -> #private::Result<#private::ZnodePath> {
                #private::template_path(#template, &[#((#names, &#params as &dyn #private::Display)),*])
            }

            #[doc = #zref_doc]
            #allow_case
            #vis async fn #zref(
                #session: &#private::Session,
                #(#params: #display,)*
                #initial: Self,
            ) -> #private::Result<#private::#handle<Self, #codec>> {
                #private::#new_fn::<Self>(#session, Self::znode_path(#(#params),*), #initial).await
            }

            #[doc = #open_doc]
            #allow_case
            #vis async fn #open_zref(
                #session: &#private::Session,
                #(#params: #display),*
            ) -> #private::Result<#private::#handle<Self, #codec>> {
                #private::#open_fn::<Self>(#session, Self::znode_path(#(#params),*)).await
            }
        }

        #distributed_impl {
            const ZNODE_TEMPLATE: &'static str = #template;
            const PLACEHOLDERS: &'static [&'static str] = &[#(#names),*];
            type Codec = #codec;
        }
    }
}

/// The generated items' documentation.
struct Docs {
    /// The type's name.
    name: String,
    /// The template, as a string.
    template: String,
    /// The parameters, as written in code.
    params: Vec<String>,
    /// The codec's type name.
    codec: &'static str,
    /// `ref`, `atom` or `pod`.
    kind: &'static str,
    /// `Ref`, `Atom` or `Pod`.
    handle: &'static str,
}

impl Docs {
    fn new(distributed: &Distributed) -> Docs {
        Docs {
            name: distributed.ty.ident.to_string(),
            template: distributed.template.value(),
            params: distributed
                .params
                .iter()
                .map(|(_, ident)| ident.to_string())
                .collect(),
            codec: match distributed.codec {
                Codec::Bincode => "Bincode",
                Codec::Json => "Json",
            },
            kind: distributed.kind.key(),
            handle: match distributed.kind {
                Kind::Ref => "Ref",
                Kind::Atom => "Atom",
                Kind::Pod => "Pod",
            },
        }
    }

    /// `` `id`, `bank` ``.
    fn param_list(&self) -> String {
        self.params
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where the value lives, for the constructors' first sentence.
    fn location(&self) -> String {
        if self.params.is_empty() {
            format!("at `{}`", self.template)
        } else {
            format!(
                "at `{}`, with each placeholder replaced by its parameter ({})",
                self.template,
                self.param_list()
            )
        }
    }

    fn path_errors(&self) -> &'static str {
        "`mazurka::Error::InvalidPath` with `PathRule::BadParameter` when a parameter does not render (with \
         `Display`) to exactly one valid path segment: empty, containing `/`, `.` or `..`, or with a character \
         ZooKeeper refuses; with another `PathRule` when the whole path breaks one (for instance, too long)"
    }

    fn template(&self) -> String {
        let Docs { name, template, .. } = self;
        let mut doc =
            format!(" The znode path template of `{name}` values (from `#[distributed]`): `{template}`.");
        if !self.params.is_empty() {
            doc.push_str(&format!(
                "\n\n The constructors take one parameter per placeholder, in this order: {}.",
                self.param_list()
            ));
        }
        doc
    }

    fn path(&self) -> String {
        let Docs { name, .. } = self;
        if self.params.is_empty() {
            format!(
                " The znode path of the `{name}` value: [`ZNODE_TEMPLATE`](Self::ZNODE_TEMPLATE), checked.\n\n \
                 # Errors\n\n Never: a template without placeholders was checked at compile time."
            )
        } else {
            format!(
                " The znode path of the `{name}` value for these parameters: \
                 [`ZNODE_TEMPLATE`](Self::ZNODE_TEMPLATE) with each placeholder replaced by its parameter, \
                 rendered with `Display`.\n\n # Errors\n\n {}.",
                self.path_errors()
            )
        }
    }

    fn zref(&self) -> String {
        let Docs {
            name,
            codec,
            kind,
            handle,
            ..
        } = self;
        let location = self.location();
        let args = self.params.join(", ");
        let path_error = if self.params.is_empty() {
            String::new()
        } else {
            format!(
                "\n - {} (see [`znode_path`](Self::znode_path));",
                self.path_errors()
            )
        };
        format!(
            " The `{name}` {kind} {location}: created with `initial` (and its missing parents) if there is no \
             znode there yet; otherwise the value there, kept as it is. Values are encoded with `{codec}`.\n\n \
             The same as `mazurka::{handle}::<{name}, mazurka::{codec}>::new(session, {name}::znode_path({args})?, \
             initial)`.\n\n # Errors\n{path_error}\n - `mazurka::Error::ValueTooLarge` if `initial` does not fit \
             a znode;\n - `mazurka::Error::Codec` if the existing value does not decode as a `{name}` written with `{codec}`;\n \
             - session errors.\n\n # Cancel safety\n\n Cancel safe: the create is idempotent."
        )
    }

    fn open(&self) -> String {
        let Docs {
            name,
            codec,
            kind,
            handle,
            ..
        } = self;
        let location = self.location();
        let args = self.params.join(", ");
        let path_error = if self.params.is_empty() {
            String::new()
        } else {
            format!(
                "\n - {} (see [`znode_path`](Self::znode_path));",
                self.path_errors()
            )
        };
        format!(
            " The existing `{name}` {kind} {location}. Values are encoded with `{codec}`.\n\n The same as \
             `mazurka::{handle}::<{name}, mazurka::{codec}>::open(session, {name}::znode_path({args})?)`.\n\n \
             # Errors\n{path_error}\n - `mazurka::Error::ZooKeeper` with `ZkErrorCode::NoNode` if there is no \
             value there;\n - `mazurka::Error::Codec` if the value there does not decode as a `{name}` \
             written with `{codec}`;\n - session errors.\n\n # Cancel safety\n\n Cancel safe."
        )
    }
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
    fn constructors_take_one_parameter_per_placeholder() {
        let expanded = expand_str(
            quote!(ref = "/bank/{bank}/accounts/{id}"),
            quote!(
                pub struct Account {
                    balance: i64,
                }
            ),
        );
        assert!(expanded.contains(
            "pub fn znode_path (bank : impl :: mazurka :: __private :: Display , id : impl :: mazurka :: \
             __private :: Display) -> :: mazurka :: __private :: Result < :: mazurka :: __private :: ZnodePath >"
        ), "{expanded}");
        assert!(expanded.contains(
            ":: mazurka :: __private :: template_path (\"/bank/{bank}/accounts/{id}\" , & [(\"bank\" , & bank as \
             & dyn :: mazurka :: __private :: Display) , (\"id\" , & id as & dyn :: mazurka :: __private :: \
             Display)])"
        ), "{expanded}");
        assert!(expanded.contains(
            "pub async fn zref (session : & :: mazurka :: __private :: Session , bank : impl :: mazurka :: \
             __private :: Display , id : impl :: mazurka :: __private :: Display , initial : Self ,) -> :: mazurka \
             :: __private :: Result < :: mazurka :: __private :: Ref < Self , :: mazurka :: __private :: Bincode >>"
        ), "{expanded}");
        assert!(expanded.contains(
            ":: mazurka :: __private :: new_ref :: < Self > (session , Self :: znode_path (bank , id) , initial) . \
             await"
        ), "{expanded}");
        assert!(expanded.contains(
            "pub async fn open_zref (session : & :: mazurka :: __private :: Session , bank : impl :: mazurka :: \
             __private :: Display , id : impl :: mazurka :: __private :: Display)"
        ), "{expanded}");
        assert!(expanded.contains(
            "impl :: mazurka :: __private :: Distributed for Account { const ZNODE_TEMPLATE : & 'static str = \
             \"/bank/{bank}/accounts/{id}\" ; const PLACEHOLDERS : & 'static [& 'static str] = & [\"bank\" , \
             \"id\"] ; type Codec = :: mazurka :: __private :: Bincode ; }"
        ), "{expanded}");
        assert!(!expanded.contains("non_snake_case"));
    }

    #[test]
    fn no_placeholders_json_and_a_crate_path() {
        let expanded = expand_str(
            quote!(ref = "/cfg", codec = "json", crate = "::mz"),
            quote!(
                struct Cfg;
            ),
        );
        assert!(expanded.contains("fn zref (session : & :: mz :: __private :: Session , initial : Self ,)"));
        assert!(expanded.contains("fn open_zref (session : & :: mz :: __private :: Session ,)"));
        assert!(expanded.contains(":: mz :: __private :: Ref < Self , :: mz :: __private :: Json >"));
        assert!(expanded.contains("template_path (\"/cfg\" , & [])"));
        assert!(!expanded.contains("::mazurka"));
    }

    #[test]
    fn generic_types_are_values_only_for_some_arguments() {
        let expanded = expand_str(
            quote!(ref = "/w/{id}"),
            quote!(
                struct W<T: Clone>
                where
                    T: Send,
                {
                    t: T,
                }
            ),
        );
        assert!(
            expanded.contains(
                "impl < T : Clone > W < T > where T : Send , W < T > : :: mazurka :: __private :: Value {"
            ),
            "{expanded}"
        );
        assert!(expanded.contains(
            "impl < T : Clone > :: mazurka :: __private :: Distributed for W < T > where T : Send , W < T > : :: \
             mazurka :: __private :: Value {"
        ), "{expanded}");
    }

    #[test]
    fn upper_case_placeholders_allow_their_parameter_names() {
        let expanded = expand_str(
            quote!(ref = "/a/{accountId}"),
            quote!(
                struct A;
            ),
        );
        assert!(expanded.contains("# [allow (non_snake_case)]"));
    }
}
