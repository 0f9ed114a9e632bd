//! `lock!` input: the syntax ([`LockInput`], a fatal error if malformed) and its check
//! ([`LockInput::check`], which collects every semantic error).
//!
//! ```text
//! input     := modifier* target ("," target)? ("," option)* ","? "=>" block ("else" block)?
//! modifier  := "try" | "read" | "write"
//! target    := expression        (one: a lock; two: a session and a path)
//! option    := ident "=" expression
//! ```

use proc_macro2::{Group, Span, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{token, Expr, Ident, Token};

use super::{Lock, Mode, Target, Wait};
use crate::common::{self, CratePath};

mod kw {
    syn::custom_keyword!(read);
    syn::custom_keyword!(write);
}

/// The shape every form shares, for error messages.
const USAGE: &str = "lock!(&session, \"/path\" => { … })";

/// A keyword before the target.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Modifier {
    /// `try`: do not wait.
    Try(Span),
    /// `read`: the shared side of a read-write lock.
    Read(Span),
    /// `write`: the exclusive side of a read-write lock.
    Write(Span),
}

/// `name = value` after the target.
#[derive(Debug)]
pub(crate) struct LockOption {
    pub(crate) name: Ident,
    pub(crate) value: Expr,
}

/// The syntax of a `lock!` invocation (after the `crate = …;` prefix), not yet checked.
#[derive(Debug)]
pub(crate) struct LockInput {
    pub(crate) modifiers: Vec<Modifier>,
    /// The comma-separated expressions before the options: one (a lock) or two (session, path)
    /// when well formed.
    pub(crate) targets: Vec<Expr>,
    pub(crate) options: Vec<LockOption>,
    pub(crate) body: Group,
    /// `else` and its block.
    pub(crate) otherwise: Option<(Token![else], Group)>,
}

impl Parse for LockInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                format!("`lock!` needs a lock and a block: {USAGE}, or lock!(lock => {{ … }})"),
            ));
        }
        let modifiers = parse_modifiers(input)?;
        let mut targets = Vec::new();
        let mut options = Vec::new();
        loop {
            if options.is_empty() && !at_option(input) {
                if targets.is_empty() && input.peek(Token![=>]) {
                    return Err(input.error(format!("expected the lock before `=>`: {USAGE}")));
                }
                targets.push(parse_expr(input, "the lock, or a session and a path,")?);
            } else if at_option(input) {
                if targets.is_empty() {
                    return Err(input.error(format!(
                        "expected the lock, or a session and a path, before the options: {USAGE}"
                    )));
                }
                options.push(input.parse()?);
            } else {
                return Err(input.error("expected an option such as `timeout = …`, or `=>`"));
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
                if !input.peek(Token![=>]) {
                    continue;
                }
            }
            if input.peek(Token![=>]) {
                input.parse::<Token![=>]>()?;
                break;
            }
            return Err(missing_arrow(input));
        }
        let body = parse_block(input, "the body must be a block", "=>")?;
        let otherwise = if input.peek(Token![else]) {
            let else_token = input.parse::<Token![else]>()?;
            Some((
                else_token,
                parse_block(input, "expected a block after `else`", "else")?,
            ))
        } else {
            None
        };
        if !input.is_empty() {
            return Err(
                input.error("unexpected tokens after the block; `lock!` ends with `{ … }` or `else { … }`")
            );
        }
        Ok(LockInput {
            modifiers,
            targets,
            options,
            body,
            otherwise,
        })
    }
}

impl Parse for LockOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // Any identifier, keywords included: `type = …` is reported as an unknown option.
        let name = input.call(Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        let value = parse_expr(input, &format!("a value for `{name}`"))?;
        Ok(LockOption { name, value })
    }
}

/// `try`, `read` and `write`, in any order.
fn parse_modifiers(input: ParseStream<'_>) -> syn::Result<Vec<Modifier>> {
    let mut modifiers = Vec::new();
    loop {
        if input.peek(Token![try]) {
            modifiers.push(Modifier::Try(input.parse::<Token![try]>()?.span));
        } else if input.peek(kw::read) && keyword_starts_target(input) {
            modifiers.push(Modifier::Read(input.parse::<kw::read>()?.span));
        } else if input.peek(kw::write) && keyword_starts_target(input) {
            modifiers.push(Modifier::Write(input.parse::<kw::write>()?.span));
        } else {
            return Ok(modifiers);
        }
    }
}

/// Whether the identifier at the cursor is a modifier keyword followed by the target, rather than
/// the start of an expression (a variable named `read`, `read.clone()`, `read(…)`, …).
fn keyword_starts_target(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    if fork.call(Ident::parse_any).is_err() {
        return false;
    }
    !(fork.is_empty()
        || fork.peek(Token![,])
        || fork.peek(Token![=])
        || fork.peek(Token![.])
        || fork.peek(Token![?])
        || fork.peek(Token![::])
        || fork.peek(Token![as])
        || fork.peek(token::Paren)
        || fork.peek(token::Bracket)
        || fork.peek(token::Brace))
}

/// Whether the cursor is at `name = …` (not `==` nor `=>`).
fn at_option(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok()
        && fork.peek(Token![=])
        && !fork.peek(Token![==])
        && !fork.peek(Token![=>])
}

/// An expression that stops before `,`, `=>` and a block (`lock!(l { … })` reports the missing `=>`
/// instead of reading a struct literal).
fn parse_expr(input: ParseStream<'_>, what: &str) -> syn::Result<Expr> {
    if input.is_empty() || input.peek(Token![,]) || input.peek(Token![=>]) {
        return Err(missing(input, &format!("expected {what} here")));
    }
    if input.peek(token::Brace) {
        return Err(missing_arrow(input));
    }
    Expr::parse_without_eager_brace(input)
}

/// The error for a missing `=>`.
fn missing_arrow(input: ParseStream<'_>) -> syn::Error {
    if input.is_empty() || input.peek(token::Brace) {
        missing(input, &format!("expected `=>` before the block: {USAGE}"))
    } else {
        input.error(format!("expected `,` or `=>`: {USAGE}"))
    }
}

/// An error at the cursor, or at the whole invocation when the input has run out.
fn missing(input: ParseStream<'_>, message: &str) -> syn::Error {
    if input.is_empty() {
        syn::Error::new(Span::call_site(), message)
    } else {
        syn::Error::new(input.span(), message)
    }
}

/// A `{ … }` group after `after` (`=>` or `else`), kept as tokens: the compiler parses the
/// statements and reports on them itself.
fn parse_block(input: ParseStream<'_>, message: &str, after: &str) -> syn::Result<Group> {
    if input.peek(token::Brace) {
        if let TokenTree::Group(group) = input.parse::<TokenTree>()? {
            return Ok(group);
        }
    }
    if input.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            format!("{message}: `{after} {{ … }}`"),
        ));
    }
    // Point at the whole expression when it is one (`=> foo()`), at the token otherwise.
    let fork = input.fork();
    match fork.parse::<Expr>() {
        Ok(expr) => Err(syn::Error::new_spanned(
            &expr,
            format!("{message}: write `{after} {{ {} }}`", short(&expr)),
        )),
        Err(_) => Err(input.error(format!("{message}: `{after} {{ … }}`"))),
    }
}

/// An expression as source text, shortened for a hint.
fn short(expr: &Expr) -> String {
    let text = quote::ToTokens::to_token_stream(expr).to_string();
    if text.chars().count() <= 40 {
        text
    } else {
        "…".to_owned()
    }
}

/// Whether `given` is probably a misspelling of `expected`: at most two single-character edits
/// (insertions, deletions, substitutions) apart, ignoring case.
fn looks_like(expected: &str, given: &str) -> bool {
    let a: Vec<char> = expected.to_lowercase().chars().collect();
    let b: Vec<char> = given.to_lowercase().chars().collect();
    // Levenshtein distance, one row at a time.
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
    row.last().is_some_and(|&distance| distance <= 2)
}

/// Collects errors, then combines them into one (serde_derive's `Ctxt`, in small).
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn add(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }
}

impl LockInput {
    /// The checked invocation and every error found. The invocation is usable even with errors
    /// (what is wrong is left out), so the body is still type-checked.
    pub(crate) fn check(self, krate: CratePath) -> (Lock, Option<syn::Error>) {
        let mut errors = Errors::default();

        let mut try_span = None;
        let mut mode = Mode::Exclusive;
        for modifier in &self.modifiers {
            match *modifier {
                Modifier::Try(span) if try_span.is_some() => errors.add(span, "duplicate `try`"),
                Modifier::Try(span) => try_span = Some(span),
                Modifier::Read(span) | Modifier::Write(span) => {
                    let (this, name) = match modifier {
                        Modifier::Read(_) => (Mode::Read, "read"),
                        _ => (Mode::Write, "write"),
                    };
                    match mode {
                        Mode::Exclusive => mode = this,
                        seen if seen == this => errors.add(span, format!("duplicate `{name}`")),
                        // The first keyword wins, so the rest is checked as the user probably meant.
                        _ => errors.add(
                            span,
                            "use either `read` or `write`, not both: a read-write lock is taken for reading \
                             (shared) or for writing (exclusive)",
                        ),
                    }
                }
            }
        }

        // Values given but not used (after an error): still expanded, so that they are type-checked
        // and their variables count as used, which keeps the compiler from adding warnings.
        let mut ignored = Vec::new();
        let mut timeout: Option<Expr> = None;
        let mut misspelled: Option<Expr> = None;
        for option in self.options {
            if option.name == "timeout" {
                if timeout.is_some() {
                    errors.add(option.name.span(), "duplicate option `timeout`; give it once");
                    ignored.push(option.value);
                } else {
                    timeout = Some(option.value);
                }
            } else if misspelled.is_none() && looks_like("timeout", &option.name.to_string()) {
                errors.add(
                    option.name.span(),
                    format!("unknown option `{}`; did you mean `timeout`?", option.name),
                );
                misspelled = Some(option.value);
            } else {
                errors.add(
                    option.name.span(),
                    format!("unknown option `{}`; expected `timeout`", option.name),
                );
                ignored.push(option.value);
            }
        }
        // A misspelled `timeout` is taken as meant, so the value's type matches what the user expects.
        match (timeout.is_some(), misspelled) {
            (false, Some(value)) => timeout = Some(value),
            (true, Some(value)) => ignored.push(value),
            (_, None) => {}
        }

        let wait = match (try_span, timeout) {
            (Some(span), Some(value)) => {
                errors.add(span, "use either `try` or `timeout = …`, not both");
                Wait::Within(value)
            }
            (None, Some(value)) => Wait::Within(value),
            (Some(_), None) => Wait::Now,
            (None, None) => Wait::Forever,
        };

        let mut otherwise = None;
        if let Some((else_token, block)) = self.otherwise {
            if matches!(wait, Wait::Forever) {
                errors.add(
                    else_token.span,
                    "`else` needs `try` or `timeout = …`: without them the lock is waited for, so `else` \
                     could never run",
                );
            } else {
                otherwise = Some(block);
            }
        }

        let target = check_target(self.targets, mode, &mut errors, &mut ignored);
        (
            Lock {
                krate,
                mode,
                target,
                wait,
                body: self.body,
                otherwise,
                ignored,
            },
            errors.0,
        )
    }
}

fn check_target(targets: Vec<Expr>, mode: Mode, errors: &mut Errors, ignored: &mut Vec<Expr>) -> Target {
    let mut targets = targets.into_iter();
    let (Some(first), second) = (targets.next(), targets.next()) else {
        return Target::Invalid; // the parser guarantees one
    };
    for extra in targets {
        let message = "too many arguments: `lock!` takes a lock, or a session and a path, then options such \
                       as `timeout = …`";
        errors.push(syn::Error::new_spanned(&extra, message));
        ignored.push(extra);
    }
    match second {
        None => match common::as_lit_str(&first) {
            Some(lit) => {
                errors.add(
                    lit.span(),
                    format!(
                        "a path alone is not a lock: pass the session first, as in {}",
                        match mode {
                            Mode::Exclusive => USAGE,
                            Mode::Read => "lock!(read &session, \"/path\" => { … })",
                            Mode::Write => "lock!(write &session, \"/path\" => { … })",
                        }
                    ),
                );
                ignored.push(first);
                Target::Invalid
            }
            None => Target::Value(first),
        },
        Some(path) => {
            if let Some(lit) = common::as_lit_str(&path) {
                if let Err(error) = common::check_lock_path_literal(lit) {
                    errors.push(error);
                }
            }
            Target::Path { session: first, path }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> syn::Result<LockInput> {
        syn::parse_str(input)
    }

    fn check(input: &str) -> (Lock, Option<String>) {
        let parsed = match parse(input) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{input:?} did not parse: {error}"),
        };
        let (lock, errors) = parsed.check(CratePath::default());
        (
            lock,
            errors.map(|e| {
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(" | ")
            }),
        )
    }

    fn parse_error(input: &str) -> String {
        match parse(input) {
            Ok(parsed) => panic!("{input:?} parsed: {parsed:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn check_error(input: &str) -> String {
        match check(input) {
            (_, Some(errors)) => errors,
            (lock, None) => panic!("{input:?} passed the check: {lock:?}"),
        }
    }

    fn tokens(expr: &Expr) -> String {
        quote::ToTokens::to_token_stream(expr).to_string()
    }

    #[test]
    fn with_lock_on_a_session_and_path() {
        let (lock, errors) = check("&session, \"/p\" => { work().await }");
        assert_eq!(errors, None);
        match &lock.target {
            Target::Path { session, path } => {
                assert_eq!(tokens(session), "& session");
                assert_eq!(tokens(path), "\"/p\"");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(lock.wait, Wait::Forever));
        assert_eq!(lock.body.to_string(), "{ work () . await }");
        assert!(lock.otherwise.is_none());
    }

    #[test]
    fn path_expressions_are_not_checked() {
        let (lock, errors) = check("&s, format!(\"/jobs/{id}\") => {}");
        assert_eq!(errors, None);
        assert!(matches!(lock.target, Target::Path { .. }));
        let (_, errors) = check("&s, &path => {}");
        assert_eq!(errors, None);
    }

    #[test]
    fn with_lock_on_a_lock_value() {
        for (input, expected) in [
            ("my_lock => {}", "my_lock"),
            ("&my_lock => {}", "& my_lock"),
            ("self.lock => {}", "self . lock"),
            ("locks[i] => {}", "locks [i]"),
            ("read => {}", "read"),
            ("read.clone() => {}", "read . clone ()"),
            ("write(&s) => {}", "write (& s)"),
            ("crate::LOCK => {}", "crate :: LOCK"),
        ] {
            let (lock, errors) = check(input);
            assert_eq!(errors, None, "{input}");
            match &lock.target {
                Target::Value(expr) => assert_eq!(tokens(expr), expected),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn try_and_else() {
        let (lock, errors) = check("try &s, \"/p\" => { 1 } else { 2 }");
        assert_eq!(errors, None);
        assert!(matches!(lock.wait, Wait::Now));
        assert_eq!(lock.otherwise.map(|g| g.to_string()).as_deref(), Some("{ 2 }"));

        let (lock, errors) = check("try my_lock => { 1 }");
        assert_eq!(errors, None);
        assert!(matches!(lock.wait, Wait::Now));
        assert!(matches!(lock.target, Target::Value(_)));
        assert!(lock.otherwise.is_none());
    }

    #[test]
    fn timeout_option() {
        let (lock, errors) = check("&s, \"/p\", timeout = Duration::from_secs(1) => { 1 } else { 2 }");
        assert_eq!(errors, None);
        match &lock.wait {
            Wait::Within(d) => assert_eq!(tokens(d), "Duration :: from_secs (1)"),
            other => panic!("{other:?}"),
        }
        let (lock, errors) = check("l, timeout = d, => {}");
        assert_eq!(errors, None);
        assert!(matches!(lock.target, Target::Value(_)));
        assert!(matches!(lock.wait, Wait::Within(_)));
    }

    #[test]
    fn trailing_comma_and_comparisons_are_not_options() {
        let (lock, errors) = check("&s, \"/p\", => {}");
        assert_eq!(errors, None);
        assert!(matches!(lock.target, Target::Path { .. }));
        // `a == b` is an expression, not an option (and then too many targets).
        assert!(check_error("&s, \"/p\", a == b => {}").contains("too many arguments"));
    }

    #[test]
    fn syntax_errors() {
        assert!(parse_error("").contains("needs a lock and a block"));
        assert!(parse_error("&s, \"/p\" { }").contains("expected `=>` before the block"));
        assert!(parse_error("my_lock { }").contains("expected `=>` before the block"));
        assert!(parse_error("&s, \"/p\"").contains("expected `=>` before the block"));
        assert!(parse_error("&s \"/p\" => {}").contains("expected `,` or `=>`"));
        assert!(
            parse_error("&s, \"/p\" => work()").contains("the body must be a block: write `=> { work () }`")
        );
        assert!(parse_error("&s, \"/p\" =>").contains("the body must be a block: `=> { … }`"));
        assert!(parse_error("try &s, \"/p\" => {} else 0")
            .contains("expected a block after `else`: write `else { 0 }`"));
        assert!(parse_error("try &s, \"/p\" => {} else").contains("expected a block after `else`"));
        assert!(parse_error("try &s, \"/p\" => {} else if x {}").contains("expected a block after `else`"));
        assert!(parse_error("&s, \"/p\" => {} x").contains("unexpected tokens after the block"));
        assert!(parse_error("=> {}").contains("expected the lock before `=>`"));
        assert!(parse_error("timeout = d => {}").contains("before the options"));
        assert!(parse_error("try timeout = d => {}").contains("before the options"));
        assert!(
            parse_error("&s, , \"/p\" => {}").contains("expected the lock, or a session and a path, here")
        );
        assert!(parse_error("&s, \"/p\", timeout = => {}").contains("expected a value for `timeout` here"));
        assert!(parse_error("&s, \"/p\", timeout = d, x => {}")
            .contains("expected an option such as `timeout = …`"));
    }

    #[test]
    fn unknown_and_duplicate_options() {
        assert_eq!(
            check_error("&s, \"/p\", foo = 1 => {}"),
            "unknown option `foo`; expected `timeout`"
        );
        assert_eq!(
            check_error("&s, \"/p\", type = 1 => {}"),
            "unknown option `type`; expected `timeout`"
        );
        assert!(check_error("&s, \"/p\", timeout = a, timeout = b => {} else {}")
            .starts_with("duplicate option `timeout`"));
    }

    #[test]
    fn misspelled_timeout_is_taken_as_meant() {
        let (lock, errors) = check("&s, \"/p\", timout = d => {}");
        assert_eq!(
            errors.as_deref(),
            Some("unknown option `timout`; did you mean `timeout`?")
        );
        assert!(matches!(lock.wait, Wait::Within(_)));
        assert!(lock.ignored.is_empty());

        let (lock, _) = check("&s, \"/p\", timeout = a, Timeot = b, foo = c => {}");
        assert!(matches!(lock.wait, Wait::Within(ref d) if tokens(d) == "a"));
        assert_eq!(lock.ignored.iter().map(tokens).collect::<Vec<_>>(), ["c", "b"]);

        assert!(looks_like("timeout", "timeout"));
        assert!(looks_like("timeout", "time_out"));
        assert!(looks_like("timeout", "TimeOut"));
        assert!(!looks_like("timeout", "foo"));
        assert!(!looks_like("timeout", "time"));
    }

    #[test]
    fn else_needs_try_or_timeout() {
        let (lock, errors) = check("&s, \"/p\" => { 1 } else { 2 }");
        assert!(errors.is_some_and(|e| e.starts_with("`else` needs `try` or `timeout = …`")));
        assert!(lock.otherwise.is_none());
        assert!(matches!(lock.wait, Wait::Forever));
    }

    #[test]
    fn try_and_timeout_together() {
        let (lock, errors) = check("try &s, \"/p\", timeout = d => {}");
        assert_eq!(
            errors.as_deref(),
            Some("use either `try` or `timeout = …`, not both")
        );
        assert!(matches!(lock.wait, Wait::Within(_)));
        assert_eq!(check_error("try try l => {}"), "duplicate `try`");
    }

    #[test]
    fn read_and_write_select_a_side_of_a_read_write_lock() {
        for (input, mode, wait) in [
            ("read &s, \"/p\" => {}", Mode::Read, "forever"),
            ("write l => {}", Mode::Write, "forever"),
            ("try read l => {}", Mode::Read, "now"),
            ("read try l => {} else {}", Mode::Read, "now"),
            ("write try &s, \"/p\" => {} else {}", Mode::Write, "now"),
            ("write &s, \"/p\", timeout = d => {}", Mode::Write, "within"),
            ("l => {}", Mode::Exclusive, "forever"),
        ] {
            let (lock, errors) = check(input);
            assert_eq!(errors, None, "{input}");
            assert_eq!(lock.mode, mode, "{input}");
            let got = match lock.wait {
                Wait::Forever => "forever",
                Wait::Now => "now",
                Wait::Within(_) => "within",
            };
            assert_eq!(got, wait, "{input}");
            assert!(!matches!(lock.target, Target::Invalid), "{input}");
        }
    }

    #[test]
    fn read_and_write_misuse() {
        let (lock, errors) = check("read write l => {}");
        assert!(errors.is_some_and(|e| e.starts_with("use either `read` or `write`, not both")));
        assert_eq!(lock.mode, Mode::Read, "the first keyword wins");
        assert_eq!(check_error("write try write l => {}"), "duplicate `write`");
        assert_eq!(
            check_error("read \"/p\" => {}"),
            "a path alone is not a lock: pass the session first, as in lock!(read &session, \"/path\" => { … })"
        );
        assert!(check_error("write &s, \"/p\" => {} else {}").starts_with("`else` needs `try`"));
        assert!(check_error("read &s, \"p\" => {}").starts_with("invalid znode path"));
    }

    #[test]
    fn path_literals_are_validated() {
        assert_eq!(
            check_error("&s, \"p\" => {}"),
            "invalid znode path: a path must start with '/'; write \"/app/lock\", not \"app/lock\""
        );
        assert!(check_error("&s, \"/a//b\" => {}").contains("empty segment"));
        assert!(check_error("&s, \"/zookeeper/x\" => {}").contains("reserved by ZooKeeper"));
        assert!(check_error("&s, \"/\" => {}").contains("the root \"/\" cannot be a lock"));
        assert!(check_error("\"/p\" => {}").starts_with("a path alone is not a lock"));
    }

    #[test]
    fn too_many_targets() {
        let (lock, errors) = check("&s, \"/p\", d => {}");
        assert!(errors.is_some_and(|e| e.starts_with("too many arguments")));
        assert!(matches!(lock.target, Target::Path { .. }));
        assert_eq!(lock.ignored.iter().map(tokens).collect::<Vec<_>>(), ["d"]);
    }

    #[test]
    fn every_error_is_reported() {
        let errors = check_error("try read write &s, \"p\", timeout = d, foo = 1 => {} else {}");
        for expected in [
            "not both: a read-write lock",
            "unknown option `foo`",
            "not both",
            "invalid znode path",
        ] {
            assert!(errors.contains(expected), "{expected} missing from {errors}");
        }
    }
}
