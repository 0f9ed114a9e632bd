//! `#[distributed(ref = "/accounts/{id}")]`: typed constructors for values that live in znodes.
//!
//! [`parse`] reads the attribute's arguments and the item (a syntax error there is fatal) and
//! checks them, collecting every error; [`expand`] cannot fail. The item is always emitted
//! unchanged, so one mistake in the attribute does not make the type itself disappear; the
//! constructors are emitted whenever the path template could be read, even next to other errors,
//! so that calls to them are still checked.

mod expand;
mod parse;
mod template;

use proc_macro2::{Ident, TokenStream};
use syn::{Generics, LitStr, Visibility};

use crate::common::CratePath;

/// A checked `#[distributed]`: what to generate for the type.
#[derive(Debug)]
pub(crate) struct Distributed {
    /// How the generated code names the runtime crate.
    pub(crate) krate: CratePath,
    /// The annotated type.
    pub(crate) ty: TypeInfo,
    /// What the values are (only refs can be generated for now).
    pub(crate) kind: Kind,
    /// The path template, as written.
    pub(crate) template: LitStr,
    /// One per distinct placeholder, in order of first appearance: its name in the template and
    /// the parameter that stands for it.
    pub(crate) params: Vec<(String, Ident)>,
    /// How values are encoded.
    pub(crate) codec: Codec,
}

/// The parts of the annotated struct or enum the expansion needs.
#[derive(Debug)]
pub(crate) struct TypeInfo {
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) generics: Generics,
}

/// The kind of znode value: `ref = …`, `atom = …` or `pod = …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A [`Ref`](https://docs.rs/mazurka): changed in transactions.
    Ref,
    /// An atom (not available yet: parsed, then reported).
    Atom,
    /// A pod (not available yet: parsed, then reported).
    Pod,
}

impl Kind {
    /// The attribute key.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Ref => "ref",
            Kind::Atom => "atom",
            Kind::Pod => "pod",
        }
    }
}

/// `codec = "bincode"` (the default) or `codec = "json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Codec {
    #[default]
    Bincode,
    Json,
}

/// The `#[distributed]` attribute: `args` are its arguments, `item` the annotated item.
pub(crate) fn distributed(args: TokenStream, item: TokenStream) -> TokenStream {
    let (checked, errors) = parse::parse(args, item.clone());
    let mut tokens = item;
    if let Some(distributed) = &checked {
        tokens.extend(expand::expand(distributed));
    }
    if let Some(errors) = errors {
        tokens.extend(errors.into_compile_error());
    }
    tokens
}
