//! Helpers shared by every macro: the path to the runtime crate, and compile-time checks of znode
//! path literals.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitStr, Token};

/// How generated code names the runtime crate: `$crate` when a `macro_rules!` wrapper in `mazurka`
/// passed it (`crate = $crate;`), `::mazurka` otherwise.
#[derive(Debug, Clone)]
pub(crate) struct CratePath(TokenStream);

impl CratePath {
    /// `crate = <path>;` at the start of a function-like macro's input, if present. The path is
    /// taken as raw tokens up to the `;`, because `$crate` is not something syn parses as a path.
    pub(crate) fn parse_prefix(input: ParseStream<'_>) -> syn::Result<Option<CratePath>> {
        if !(input.peek(Token![crate]) && input.peek2(Token![=]) && !input.peek2(Token![==])) {
            return Ok(None);
        }
        input.parse::<Token![crate]>()?;
        let eq = input.parse::<Token![=]>()?;
        let path = input.step(|cursor| {
            let mut tokens = TokenStream::new();
            let mut rest = *cursor;
            while let Some((tt, next)) = rest.token_tree() {
                if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ';') {
                    return Ok((tokens, next));
                }
                tokens.extend([tt]);
                rest = next;
            }
            Err(syn::Error::new(
                eq.span,
                "expected `crate = path;`: the crate path must end with `;`",
            ))
        })?;
        if path.is_empty() {
            return Err(syn::Error::new(eq.span, "expected a path after `crate =`"));
        }
        Ok(Some(CratePath(path)))
    }

    /// The path, as tokens to put in front of `::__private::…`.
    pub(crate) fn tokens(&self) -> &TokenStream {
        &self.0
    }

    /// `crate = "<path>"` in an attribute's arguments (as serde's `crate = "…"`).
    pub(crate) fn from_lit(lit: &LitStr) -> syn::Result<CratePath> {
        match lit.parse::<syn::Path>() {
            Ok(path) => Ok(CratePath(path.into_token_stream())),
            Err(_) => Err(syn::Error::new(
                lit.span(),
                format!(
                    "`crate = {:?}` is not a path; give the path to the mazurka crate, such as `crate = \"::mazurka\"`",
                    lit.value()
                ),
            )),
        }
    }

    /// `<path>::__private`, where generated code finds everything it names.
    pub(crate) fn private(&self) -> TokenStream {
        let krate = &self.0;
        quote!(#krate::__private)
    }
}

impl Default for CratePath {
    fn default() -> Self {
        CratePath(quote!(::mazurka))
    }
}

/// The string literal an expression is, if it is one (looking through invisible groups that
/// `macro_rules!` fragments leave behind).
pub(crate) fn as_lit_str(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(s),
            _ => None,
        },
        Expr::Group(group) => as_lit_str(&group.expr),
        Expr::Paren(paren) => as_lit_str(&paren.expr),
        _ => None,
    }
}

/// Checks a path literal against ZooKeeper's path rules (the same rules, in the same order, as
/// `mazurka::path::validate`), with the error on the literal.
pub(crate) fn check_path_literal(lit: &LitStr) -> syn::Result<()> {
    match validate(&lit.value()) {
        Ok(()) => Ok(()),
        Err(rule) => Err(syn::Error::new(
            lit.span(),
            format!("invalid znode path: {}", rule.message()),
        )),
    }
}

/// Checks a lock path literal: a valid path that is not the root.
pub(crate) fn check_lock_path_literal(lit: &LitStr) -> syn::Result<()> {
    check_path_literal(lit)?;
    if lit.value() == "/" {
        return Err(syn::Error::new(
            lit.span(),
            "invalid lock path: the root \"/\" cannot be a lock; use a path such as \"/locks/jobs\"",
        ));
    }
    Ok(())
}

/// `tokens` with every span (at any depth) replaced by `span`: generated tokens reported at a
/// place in the user's code.
pub(crate) fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(group) = &tt {
                let mut inner = proc_macro2::Group::new(group.delimiter(), respan(&group.stream(), span));
                inner.set_span(span);
                tt = TokenTree::Group(inner);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// Collects errors, then combines them into one (serde_derive's `Ctxt`, in small).
#[derive(Debug, Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn add(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.0
    }
}

/// One `key = value` in an attribute's arguments: `#[distributed(ref = "/p", codec = "json")]`.
#[derive(Debug)]
pub(crate) struct AttrArg {
    /// Any identifier, keywords included (`ref`, `crate`).
    pub(crate) key: Ident,
    pub(crate) value: Expr,
}

impl AttrArg {
    /// The comma-separated `key = value` list of an attribute (possibly empty).
    pub(crate) fn parse_list(input: ParseStream<'_>) -> syn::Result<Vec<AttrArg>> {
        Ok(Punctuated::<AttrArg, Token![,]>::parse_terminated(input)?
            .into_iter()
            .collect())
    }

    /// The value as a string literal, or an error saying what was expected (`example` is a
    /// whole well-formed `key = "…"`).
    pub(crate) fn lit_str(&self, example: &str) -> syn::Result<&LitStr> {
        as_lit_str(&self.value).ok_or_else(|| {
            syn::Error::new_spanned(
                &self.value,
                format!("`{}` takes a string literal, as in `{example}`", self.key),
            )
        })
    }
}

impl Parse for AttrArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !(input.peek(Ident::peek_any)) {
            return Err(input.error("expected an option such as `name = value`"));
        }
        let key = input.call(Ident::parse_any)?;
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected `{key} = …`: every option takes a value"),
            ));
        }
        input.parse::<Token![=]>()?;
        if input.is_empty() || input.peek(Token![,]) {
            return Err(syn::Error::new(
                key.span(),
                format!("expected a value after `{key} =`"),
            ));
        }
        let value = input.parse()?;
        Ok(AttrArg { key, value })
    }
}

/// Whether `given` is probably a misspelling of `expected`: a few single-character edits
/// (insertions, deletions, substitutions) apart, ignoring case — one per three characters of
/// `expected`, at least one, at most two (`codex` for `codec`, `timout` for `timeout`, but not
/// `foo` for `pod`). (`lock!`'s parser has the same test with a fixed bound of two.)
pub(crate) fn looks_like(expected: &str, given: &str) -> bool {
    let a: Vec<char> = expected.to_lowercase().chars().collect();
    let b: Vec<char> = given.to_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb)).min(above + 1).min(row[j] + 1);
            diagonal = above;
        }
    }
    let allowed = (a.len() / 3).clamp(1, 2);
    row.last().is_some_and(|&distance| distance <= allowed)
}

/// The error for an option that is not one of `known`: with a "did you mean" when it looks like
/// one of them, the list of them otherwise.
pub(crate) fn unknown_option(key: &Ident, what: &str, known: &[&str]) -> syn::Error {
    let given = key.unraw().to_string();
    let message = match known.iter().find(|k| looks_like(k, &given)) {
        Some(meant) => format!("unknown {what} option `{given}`; did you mean `{meant}`?"),
        None => {
            let list = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>();
            let list = match list.split_last() {
                Some((last, [])) => last.clone(),
                Some((last, rest)) => format!("one of {} or {last}", rest.join(", ")),
                None => String::new(),
            };
            format!("unknown {what} option `{given}`; expected {list}")
        }
    };
    syn::Error::new(key.span(), message)
}

// --- A copy of `mazurka::path::validate` (pure `std`); keep the two in step. ---

/// The longest path accepted, in bytes of UTF-8 (`mazurka::path::MAX_PATH_LEN`).
const MAX_PATH_LEN: usize = 65_535;

/// The subtree ZooKeeper keeps for itself.
const RESERVED: &str = "/zookeeper";

/// The rule a path broke (a mirror of `mazurka::PathRule`, with the same messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathRule {
    Empty,
    NoLeadingSlash,
    TrailingSlash,
    EmptySegment,
    RelativeSegment,
    ForbiddenCharacter,
    Reserved,
    TooLong,
}

impl PathRule {
    /// How to fix it (the text of `mazurka::PathRule`'s `Display`).
    pub(crate) fn message(self) -> &'static str {
        match self {
            PathRule::Empty => "a path must not be empty; use an absolute path such as \"/app/lock\"",
            PathRule::NoLeadingSlash => "a path must start with '/'; write \"/app/lock\", not \"app/lock\"",
            PathRule::TrailingSlash => {
                "a path must not end with '/' (only the root \"/\" does); drop the trailing '/'"
            }
            PathRule::EmptySegment => {
                "a path must not contain an empty segment (\"//\"); remove the doubled '/'"
            }
            PathRule::RelativeSegment => {
                "a path must not contain \".\" or \"..\" segments; ZooKeeper paths are always absolute and \
                 literal"
            }
            PathRule::ForbiddenCharacter => {
                "a path must not contain control characters (U+0000–U+001F, U+007F–U+009F), the characters \
                 ZooKeeper reserves (U+D800–U+F8FF, U+FFF0–U+FFFF) or characters above U+FFFF such as emoji"
            }
            PathRule::Reserved => {
                "\"/zookeeper\" and its subtree are reserved by ZooKeeper itself; choose another top-level name"
            }
            PathRule::TooLong => "a path must be shorter than 65,536 bytes",
        }
    }
}

/// Checks `path` against ZooKeeper's path rules and returns the first rule it breaks.
pub(crate) fn validate(path: &str) -> Result<(), PathRule> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(if path.is_empty() {
            PathRule::Empty
        } else {
            PathRule::NoLeadingSlash
        });
    };
    if path.len() > MAX_PATH_LEN {
        return Err(PathRule::TooLong);
    }
    if path.chars().any(is_forbidden) {
        return Err(PathRule::ForbiddenCharacter);
    }
    if rest.is_empty() {
        return Ok(()); // the root
    }
    if rest.ends_with('/') {
        return Err(PathRule::TrailingSlash);
    }
    let mut relative = false;
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(PathRule::EmptySegment);
        }
        relative |= segment == "." || segment == "..";
    }
    if relative {
        return Err(PathRule::RelativeSegment);
    }
    if path == RESERVED
        || path
            .strip_prefix(RESERVED)
            .is_some_and(|tail| tail.starts_with('/'))
    {
        return Err(PathRule::Reserved);
    }
    Ok(())
}

/// Whether ZooKeeper refuses `c` anywhere in a path (as UTF-16 code units: everything above
/// U+FFFF is a surrogate pair there, so it is refused too).
fn is_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{10ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_matches_the_runtime_table() {
        let cases: &[(&str, Result<(), PathRule>)] = &[
            ("/", Ok(())),
            ("/app/lock", Ok(())),
            ("/é", Ok(())),
            ("/a b", Ok(())),
            ("/日本", Ok(())),
            ("/app/...", Ok(())),
            ("/app/.x", Ok(())),
            ("/zookeeperx", Ok(())),
            ("/app/zookeeper", Ok(())),
            ("", Err(PathRule::Empty)),
            ("app/lock", Err(PathRule::NoLeadingSlash)),
            ("/a\u{0}b", Err(PathRule::ForbiddenCharacter)),
            ("/a\u{7f}", Err(PathRule::ForbiddenCharacter)),
            ("/\u{e000}", Err(PathRule::ForbiddenCharacter)),
            ("/\u{fff0}", Err(PathRule::ForbiddenCharacter)),
            ("/🦀", Err(PathRule::ForbiddenCharacter)),
            ("/app/", Err(PathRule::TrailingSlash)),
            ("/app//lock", Err(PathRule::EmptySegment)),
            ("/app/./lock", Err(PathRule::RelativeSegment)),
            ("/app/..", Err(PathRule::RelativeSegment)),
            ("/zookeeper", Err(PathRule::Reserved)),
            ("/zookeeper/quota", Err(PathRule::Reserved)),
        ];
        for (path, expected) in cases {
            assert_eq!(validate(path), *expected, "{path:?}");
        }
        assert_eq!(
            validate(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(PathRule::TooLong)
        );
    }

    #[test]
    fn lock_paths_exclude_the_root() {
        let root: LitStr = syn::parse_quote!("/");
        let ok: LitStr = syn::parse_quote!("/locks/a");
        assert!(check_lock_path_literal(&root).is_err());
        assert!(check_lock_path_literal(&ok).is_ok());
    }

    #[test]
    fn crate_prefix() {
        use syn::parse::Parser;
        let parsed = CratePath::parse_prefix.parse_str("crate = ::some::path;");
        assert!(matches!(parsed, Ok(Some(p)) if p.tokens().to_string() == ":: some :: path"));
        let absent = (|input: ParseStream<'_>| {
            let p = CratePath::parse_prefix(input)?;
            let _: TokenStream = input.parse()?;
            Ok(p)
        })
        .parse_str("crate::LOCK => {}");
        assert!(matches!(absent, Ok(None)));
        assert!(CratePath::parse_prefix.parse_str("crate = ::x").is_err());
    }
}
