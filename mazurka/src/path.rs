//! Validated znode paths, checked once, before any request is sent.
//!
//! Every Mazurka primitive lives at a znode path. A [`ZnodePath`] can only be built from a string
//! that ZooKeeper would accept, so a bad path is reported as [`Error::InvalidPath`] with the
//! [`PathRule`] it broke, instead of as an opaque server error after a round trip.
//!
//! The rules, checked in this order (the first one broken is the one reported, so every input
//! maps to exactly one rule):
//!
//! | rule | rejected | accepted |
//! |---|---|---|
//! | [`PathRule::Empty`] | `""` | `"/"` |
//! | [`PathRule::NoLeadingSlash`] | `"app/lock"` | `"/app/lock"` |
//! | [`PathRule::TooLong`] | more than [`MAX_PATH_LEN`] bytes | |
//! | [`PathRule::ForbiddenCharacter`] | `"/a\u{0}b"`, `"/a\u{7f}"`, `"/\u{e000}"`, `"/\u{fff0}"`, `"/🦀"` | `"/é"`, `"/a b"`, `"/日本"` |
//! | [`PathRule::TrailingSlash`] | `"/app/"` | `"/"` |
//! | [`PathRule::EmptySegment`] | `"/app//lock"` | |
//! | [`PathRule::RelativeSegment`] | `"/app/./lock"`, `"/app/.."` | `"/app/..."`, `"/app/.x"` |
//! | [`PathRule::Reserved`] | `"/zookeeper"`, `"/zookeeper/quota"` | `"/zookeeperx"`, `"/app/zookeeper"` |
//!
//! The forbidden characters are those ZooKeeper's own `PathUtils.validatePath` refuses:
//! U+0000–U+001F, U+007F–U+009F, U+D800–U+F8FF and U+FFF0–U+FFFF. ZooKeeper checks UTF-16 code
//! units, so every character above U+FFFF (emoji, many CJK extension characters) is refused as well:
//! in UTF-16 it is a surrogate pair, inside U+D800–U+DFFF. The server would reject such a path with
//! a bare "bad arguments"; Mazurka says which rule was broken before sending anything.
//!
//! ```
//! use mazurka::{Error, PathRule, ZnodePath};
//!
//! let lock = ZnodePath::new("/app/locks/orders")?;
//! assert_eq!(lock.name(), "orders");
//! assert_eq!(lock.parent().map(|p| p.to_string()), Some("/app/locks".to_owned()));
//!
//! let err = ZnodePath::new("/app//orders").unwrap_err();
//! assert!(matches!(err, Error::InvalidPath { rule: PathRule::EmptySegment, .. }));
//! # Ok::<(), mazurka::Error>(())
//! ```
//!
//! Templated paths (`"/accounts/{id}"`) are filled in with [`ZnodePath::from_template`]; each
//! value must be a single valid segment, so a parameter can never reach outside its place in the
//! tree.
//!
//! [`validate`] and [`placeholders`] depend on nothing but `std` (and the [`PathRule`] enum), so
//! the procedural macros can apply exactly the same rules at compile time.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, PathRule, Result};

/// The longest path accepted, in bytes of UTF-8 (65,535).
///
/// ZooKeeper itself only bounds a path by its request frame (`jute.maxbuffer`, about 1 MiB), but a
/// path that long leaves no room for data and is certainly a mistake; 64 KiB is far above any real
/// path and keeps paths cheap to copy, log and compare.
pub const MAX_PATH_LEN: usize = 65_535;

/// The subtree ZooKeeper keeps for itself (`/zookeeper/quota`, `/zookeeper/config`).
const RESERVED: &str = "/zookeeper";

/// A znode path that ZooKeeper will accept: absolute, no empty, `.` or `..` segments, no trailing
/// `/` (except the root `/`), no forbidden characters, not under `/zookeeper`.
///
/// See the [module documentation](self) for the rules. Build one with [`ZnodePath::new`],
/// [`str::parse`], `TryFrom`, [`ZnodePath::join`] or [`ZnodePath::from_template`].
///
/// ```
/// use mazurka::ZnodePath;
///
/// let path: ZnodePath = "/app/refs/counter".parse()?;
/// assert_eq!(path.segments().collect::<Vec<_>>(), ["app", "refs", "counter"]);
/// assert_eq!(path.as_str(), "/app/refs/counter");
/// # Ok::<(), mazurka::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZnodePath(String);

impl ZnodePath {
    /// Checks `path` against ZooKeeper's path rules.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] with the first [`PathRule`] the path breaks.
    ///
    /// ```
    /// use mazurka::{Error, PathRule, ZnodePath};
    ///
    /// assert!(ZnodePath::new("/").is_ok());
    /// assert!(ZnodePath::new(String::from("/app/lock")).is_ok());
    /// let err = ZnodePath::new("app/lock").unwrap_err();
    /// assert!(matches!(err, Error::InvalidPath { rule: PathRule::NoLeadingSlash, .. }));
    /// ```
    pub fn new(path: impl Into<String>) -> Result<Self> {
        let path = path.into();
        match validate(&path) {
            Ok(()) => Ok(ZnodePath(path)),
            Err(rule) => Err(Error::InvalidPath { path, rule }),
        }
    }

    /// The root path, `/`.
    ///
    /// ```
    /// assert!(mazurka::ZnodePath::root().is_root());
    /// ```
    #[must_use]
    pub fn root() -> Self {
        ZnodePath("/".to_owned())
    }

    /// Fills in a `{name}` templated path, then checks the result.
    ///
    /// A placeholder may be a whole segment (`"/accounts/{id}"`) or part of one
    /// (`"/queues/q-{n}"`); the same name may appear several times. `{{` and `}}` stand for literal
    /// braces. Each value must be one valid segment on its own: not empty, no `/`, not `.` or `..`,
    /// no forbidden character.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] with
    /// - [`PathRule::BadTemplate`] when the template is malformed (see [`placeholders`]), a
    ///   placeholder has no value, a value is given twice, or a value is given for no placeholder;
    /// - [`PathRule::BadParameter`] when a value is not a single valid segment;
    /// - any other rule the filled-in path breaks (for example [`PathRule::Reserved`]).
    ///
    /// ```
    /// use mazurka::{Error, PathRule, ZnodePath};
    ///
    /// let params = [("bank", "north"), ("id", "42")];
    /// let path = ZnodePath::from_template("/accounts/{bank}/acct-{id}", &params)?;
    /// assert_eq!(path, "/accounts/north/acct-42");
    ///
    /// // A value cannot escape its segment.
    /// let err = ZnodePath::from_template("/accounts/{id}", &[("id", "../admin")]).unwrap_err();
    /// assert!(matches!(err, Error::InvalidPath { rule: PathRule::BadParameter, .. }));
    /// # Ok::<(), mazurka::Error>(())
    /// ```
    pub fn from_template(template: &str, params: &[(&str, &str)]) -> Result<Self> {
        let bad_template = || Error::invalid_path(template, PathRule::BadTemplate);
        let pieces = parse_template(template).map_err(|_| bad_template())?;

        // Every parameter name given once, and used.
        for (i, (name, _)) in params.iter().enumerate() {
            let given_again = params.iter().skip(i + 1).any(|(other, _)| other == name);
            let used = pieces
                .iter()
                .any(|piece| matches!(piece, Piece::Param(p) if p == name));
            if given_again || !used {
                return Err(bad_template());
            }
        }

        let mut path = String::with_capacity(template.len());
        let mut bad_value = false;
        for piece in &pieces {
            match piece {
                Piece::Text(text) => path.push_str(text),
                Piece::Param(name) => {
                    let value = params
                        .iter()
                        .find(|(given, _)| given == name)
                        .map(|(_, value)| *value)
                        .ok_or_else(bad_template)?;
                    bad_value |= validate_segment(value).is_err();
                    path.push_str(value);
                }
            }
        }
        if bad_value {
            return Err(Error::InvalidPath {
                path,
                rule: PathRule::BadParameter,
            });
        }
        ZnodePath::new(path)
    }

    /// The path as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as an owned string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }

    /// Whether this is the root, `/`.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The parent path; `None` for the root.
    ///
    /// ```
    /// use mazurka::ZnodePath;
    ///
    /// let path = ZnodePath::new("/app/lock")?;
    /// let parent = path.parent().expect("not the root");
    /// assert_eq!(parent, "/app");
    /// assert_eq!(parent.parent(), Some(ZnodePath::root()));
    /// assert_eq!(ZnodePath::root().parent(), None);
    /// # Ok::<(), mazurka::Error>(())
    /// ```
    #[must_use]
    pub fn parent(&self) -> Option<ZnodePath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(ZnodePath::root()),
            Some(i) => self.0.get(..i).map(|parent| ZnodePath(parent.to_owned())),
            None => None,
        }
    }

    /// The last segment: `"lock"` for `/app/lock`, `""` for the root.
    #[must_use]
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// This path with one more segment appended.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] (reporting the joined path) with
    /// - [`PathRule::BadParameter`] when `segment` is empty or contains `/`;
    /// - [`PathRule::ForbiddenCharacter`] or [`PathRule::RelativeSegment`] when `segment` breaks
    ///   that rule;
    /// - [`PathRule::TooLong`] or [`PathRule::Reserved`] when the joined path does.
    ///
    /// ```
    /// use mazurka::{Error, PathRule, ZnodePath};
    ///
    /// let app = ZnodePath::new("/app")?;
    /// assert_eq!(app.join("lock")?, "/app/lock");
    /// assert_eq!(ZnodePath::root().join("app")?, app);
    ///
    /// let err = app.join("a/b").unwrap_err();
    /// assert!(matches!(err, Error::InvalidPath { rule: PathRule::BadParameter, .. }));
    /// # Ok::<(), mazurka::Error>(())
    /// ```
    pub fn join(&self, segment: &str) -> Result<ZnodePath> {
        let mut joined = String::with_capacity(self.0.len() + 1 + segment.len());
        joined.push_str(&self.0);
        if !self.is_root() {
            joined.push('/');
        }
        joined.push_str(segment);
        match validate_segment(segment) {
            Ok(()) => ZnodePath::new(joined),
            Err(rule) => Err(Error::InvalidPath { path: joined, rule }),
        }
    }

    /// The segments from the top: `["app", "lock"]` for `/app/lock`, nothing for the root.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        let rest = self.0.strip_prefix('/').unwrap_or(&self.0);
        // Only the root's single "" is filtered out: a valid path has no empty segment.
        rest.split('/').filter(|segment| !segment.is_empty())
    }

    /// The proper ancestors from the top, excluding the root and this path itself: `/a`, `/a/b` for
    /// `/a/b/c`. These are the znodes to create, in order, before creating this one.
    ///
    /// ```
    /// use mazurka::ZnodePath;
    ///
    /// let path = ZnodePath::new("/a/b/c")?;
    /// let ancestors: Vec<String> = path.ancestors().map(ZnodePath::into_string).collect();
    /// assert_eq!(ancestors, ["/a", "/a/b"]);
    /// assert_eq!(ZnodePath::new("/a")?.ancestors().count(), 0);
    /// # Ok::<(), mazurka::Error>(())
    /// ```
    pub fn ancestors(&self) -> impl Iterator<Item = ZnodePath> + '_ {
        self.0
            .match_indices('/')
            .filter(|(i, _)| *i > 0)
            .filter_map(|(i, _)| self.0.get(..i))
            .map(|ancestor| ZnodePath(ancestor.to_owned()))
    }

    /// Whether `prefix` is this path or one of its ancestors, compared segment by segment: `/a/b`
    /// starts with `/a`, but not with `/a/b/c` nor with `/a/bc`... and `/a/bc` does not start with
    /// `/a/b`. Every path starts with the root.
    ///
    /// ```
    /// use mazurka::ZnodePath;
    ///
    /// let path = ZnodePath::new("/app/locks/x")?;
    /// assert!(path.starts_with(&ZnodePath::new("/app")?));
    /// assert!(!path.starts_with(&ZnodePath::new("/ap")?));
    /// # Ok::<(), mazurka::Error>(())
    /// ```
    #[must_use]
    pub fn starts_with(&self, prefix: &ZnodePath) -> bool {
        if prefix.is_root() {
            return true;
        }
        match self.0.strip_prefix(prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

impl fmt::Display for ZnodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ZnodePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ZnodePath> for String {
    fn from(path: ZnodePath) -> String {
        path.0
    }
}

impl PartialEq<str> for ZnodePath {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for ZnodePath {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl TryFrom<&str> for ZnodePath {
    type Error = Error;

    fn try_from(path: &str) -> Result<Self> {
        ZnodePath::new(path)
    }
}

impl TryFrom<String> for ZnodePath {
    type Error = Error;

    fn try_from(path: String) -> Result<Self> {
        ZnodePath::new(path)
    }
}

impl FromStr for ZnodePath {
    type Err = Error;

    fn from_str(path: &str) -> Result<Self> {
        ZnodePath::new(path)
    }
}

/// Checks `path` against ZooKeeper's path rules and returns the first rule it breaks.
///
/// This is the whole rule set behind [`ZnodePath::new`]; it uses nothing but `std`, so the
/// procedural macros can apply the same rules to path literals at compile time.
///
/// ```
/// use mazurka::{path::validate, PathRule};
///
/// assert_eq!(validate("/app/lock"), Ok(()));
/// assert_eq!(validate("/app/lock/"), Err(PathRule::TrailingSlash));
/// assert_eq!(validate("/zookeeper/quota"), Err(PathRule::Reserved));
/// ```
///
/// # Errors
///
/// The first broken rule, in the order given in the [module documentation](self).
pub fn validate(path: &str) -> std::result::Result<(), PathRule> {
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

/// Whether ZooKeeper refuses `c` anywhere in a path.
///
/// ZooKeeper refuses U+0000–U+001F, U+007F–U+009F, U+D800–U+F8FF and U+FFF0–U+FFFF as UTF-16 code
/// units. A Rust `char` is never a surrogate (U+D800–U+DFFF), but everything above U+FFFF is
/// encoded with surrogates in UTF-16, so those characters are refused too.
fn is_forbidden(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{10ffff}'
    )
}

/// Checks that `segment` is one valid path segment on its own.
fn validate_segment(segment: &str) -> std::result::Result<(), PathRule> {
    if segment.is_empty() || segment.contains('/') {
        return Err(PathRule::BadParameter);
    }
    if segment.chars().any(is_forbidden) {
        return Err(PathRule::ForbiddenCharacter);
    }
    if segment == "." || segment == ".." {
        return Err(PathRule::RelativeSegment);
    }
    Ok(())
}

/// A piece of a parsed path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// Literal text (an escaped brace is its own one-character piece).
    Text(&'a str),
    /// A `{name}` placeholder, by name.
    Param(&'a str),
}

/// Splits a template into literal text and `{name}` placeholders.
fn parse_template(template: &str) -> std::result::Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut chars = template.char_indices().peekable();
    let mut text_start = 0;
    let slice = |from: usize, to: usize| template.get(from..to).unwrap_or("");
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '}' => {
                if i > text_start {
                    pieces.push(Piece::Text(slice(text_start, i)));
                }
                if chars.next_if(|&(_, next)| next == c).is_some() {
                    // `{{` or `}}`: a literal brace.
                    pieces.push(Piece::Text(slice(i, i + 1)));
                    text_start = i + 2;
                    continue;
                }
                if c == '}' {
                    return Err(format!(
                        "unmatched '}}' at byte {i} of {template:?}; write '}}}}' for a literal brace"
                    ));
                }
                let name_start = i + 1;
                let name_end = loop {
                    match chars.next() {
                        Some((j, '}')) => break j,
                        Some((j, '{')) => {
                            return Err(format!(
                                "'{{' at byte {j} of {template:?} opens a placeholder inside the placeholder \
                                 opened at byte {i}"
                            ))
                        }
                        Some(_) => {}
                        None => {
                            return Err(format!(
                                "unclosed '{{' at byte {i} of {template:?}; write '{{{{' for a literal brace"
                            ))
                        }
                    }
                };
                let name = slice(name_start, name_end);
                if !is_identifier(name) {
                    return Err(format!(
                        "placeholder {{{name}}} at byte {i} of {template:?} must be named by an identifier \
                         (letters, digits and '_', not starting with a digit)"
                    ));
                }
                pieces.push(Piece::Param(name));
                text_start = name_end + 1;
            }
            _ => {}
        }
    }
    if text_start < template.len() {
        pieces.push(Piece::Text(slice(text_start, template.len())));
    }
    Ok(pieces)
}

/// Whether `name` is an ASCII identifier: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The placeholder names of a path template, each once, in order of first appearance.
///
/// Placeholders are `{name}` with `name` an ASCII identifier; `{{` and `}}` are literal braces. The
/// template's literal text is not checked here: fill the placeholders with any valid segment (say
/// `"x"`) and [`validate`] the result for that.
///
/// ```
/// use mazurka::path::placeholders;
///
/// assert_eq!(placeholders("/accounts/{bank}/{id}/{bank}"), Ok(vec!["bank".to_owned(), "id".to_owned()]));
/// assert_eq!(placeholders("/plain/{{braces}}"), Ok(vec![]));
/// assert!(placeholders("/accounts/{id").is_err());
/// ```
///
/// # Errors
///
/// A message saying what is wrong and where: an unclosed `{`, an unmatched `}`, a nested `{`, or a
/// placeholder name that is not an identifier (including `{}`).
pub fn placeholders(template: &str) -> std::result::Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for piece in parse_template(template)? {
        if let Piece::Param(name) = piece {
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(path: &str) -> Option<PathRule> {
        validate(path).err()
    }

    fn assert_rule(rule_expected: PathRule, paths: &[&str]) {
        for path in paths {
            assert_eq!(rule(path), Some(rule_expected), "{path:?}");
            match ZnodePath::new(*path) {
                Err(Error::InvalidPath { path: reported, rule }) => {
                    assert_eq!(rule, rule_expected, "{path:?}");
                    assert_eq!(reported, *path);
                }
                other => panic!("{path:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn valid_paths() {
        for path in [
            "/",
            "/a",
            "/app/lock",
            "/a/b/c/d/e/f",
            "/...",
            "/a/.../b",
            "/.x",
            "/x.",
            "/a/..b",
            "/a/b..",
            "/zookeeperx",
            "/zookeeper-app",
            "/app/zookeeper",
            "/app/zookeeper/quota",
            "/Zookeeper",
            "/a b/c d",
            "/é/日本/ñ",
            "/\u{20}",
            "/\u{7e}",
            "/\u{a0}",
            "/\u{d7ff}",
            "/\u{f900}",
            "/\u{ffef}",
            "/{braces}",
            "/lock-0000000001",
            "/:@!$&'()*+,;=",
        ] {
            assert_eq!(validate(path), Ok(()), "{path:?}");
            assert_eq!(ZnodePath::new(path).unwrap().as_str(), path);
        }
    }

    #[test]
    fn empty() {
        assert_rule(PathRule::Empty, &[""]);
    }

    #[test]
    fn no_leading_slash() {
        assert_rule(
            PathRule::NoLeadingSlash,
            &["a", "app/lock", " /a", "\\a", ".", "zookeeper", "a/", "\u{0}/"],
        );
    }

    #[test]
    fn too_long() {
        let longest = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert_eq!(longest.len(), MAX_PATH_LEN);
        assert_eq!(validate(&longest), Ok(()));
        let too_long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        let too_long_segments = "/a".repeat(MAX_PATH_LEN / 2 + 1);
        // Multi-byte characters count in bytes; 'é' is two.
        let too_long_bytes = format!("/{}", "é".repeat(MAX_PATH_LEN / 2 + 1));
        // Length is checked before the other rules.
        let too_long_and_bad = format!("/{}//", "\u{0}".repeat(MAX_PATH_LEN));
        assert_rule(
            PathRule::TooLong,
            &[&too_long, &too_long_segments, &too_long_bytes, &too_long_and_bad],
        );
    }

    #[test]
    fn forbidden_characters() {
        let mut paths = Vec::new();
        for c in [
            '\u{0}', '\u{1}', '\t', '\n', '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}',
        ] {
            paths.push(format!("/a{c}b"));
        }
        for c in [
            '\u{e000}', '\u{f8ff}', '\u{fff0}', '\u{fffd}', '\u{fffe}', '\u{ffff}',
        ] {
            paths.push(format!("/{c}"));
        }
        for c in ['\u{10000}', '🦀', '😀', '\u{10ffff}'] {
            paths.push(format!("/crab/{c}"));
        }
        // Checked before the structural rules.
        paths.push("/a/\u{0}/".to_owned());
        paths.push("/zookeeper/\u{1}".to_owned());
        paths.push("/\u{0}//.".to_owned());
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_rule(PathRule::ForbiddenCharacter, &paths);
    }

    #[test]
    fn trailing_slash() {
        assert_rule(
            PathRule::TrailingSlash,
            &["/a/", "/app/lock/", "//", "///", "/a//", "/./", "/zookeeper/"],
        );
    }

    #[test]
    fn empty_segment() {
        assert_rule(
            PathRule::EmptySegment,
            &["//a", "/a//b", "/a///b", "//zookeeper", "/./a//b"],
        );
    }

    #[test]
    fn relative_segment() {
        assert_rule(
            PathRule::RelativeSegment,
            &[
                "/.",
                "/..",
                "/a/.",
                "/a/..",
                "/./a",
                "/../a",
                "/a/./b",
                "/a/../b",
                "/zookeeper/..",
            ],
        );
    }

    #[test]
    fn reserved() {
        assert_rule(
            PathRule::Reserved,
            &[
                "/zookeeper",
                "/zookeeper/quota",
                "/zookeeper/config",
                "/zookeeper/a/b",
            ],
        );
    }

    #[test]
    fn conversions() {
        let path = ZnodePath::try_from("/a/b").unwrap();
        assert_eq!(ZnodePath::try_from(String::from("/a/b")).unwrap(), path);
        assert_eq!("/a/b".parse::<ZnodePath>().unwrap(), path);
        assert_eq!(path.to_string(), "/a/b");
        assert_eq!(AsRef::<str>::as_ref(&path), "/a/b");
        assert_eq!(String::from(path.clone()), "/a/b");
        assert_eq!(path.clone().into_string(), "/a/b");
        assert!(ZnodePath::try_from("a").is_err());
        assert!("".parse::<ZnodePath>().is_err());
        assert!(ZnodePath::new("/a").unwrap() < ZnodePath::new("/b").unwrap());
    }

    #[test]
    fn error_message_names_rule_and_path() {
        let err = ZnodePath::new("/a//b").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"/a//b\""), "{message}");
        assert!(message.contains("empty segment"), "{message}");
    }

    #[test]
    fn navigation() {
        let root = ZnodePath::root();
        assert!(root.is_root());
        assert_eq!(root.name(), "");
        assert_eq!(root.parent(), None);
        assert_eq!(root.segments().count(), 0);
        assert_eq!(root.ancestors().count(), 0);

        let a = ZnodePath::new("/a").unwrap();
        assert!(!a.is_root());
        assert_eq!(a.name(), "a");
        assert_eq!(a.parent(), Some(root.clone()));
        assert_eq!(a.segments().collect::<Vec<_>>(), ["a"]);
        assert_eq!(a.ancestors().count(), 0);

        let abc = ZnodePath::new("/a/bb/ccc").unwrap();
        assert_eq!(abc.name(), "ccc");
        assert_eq!(abc.parent().unwrap(), "/a/bb");
        assert_eq!(abc.segments().collect::<Vec<_>>(), ["a", "bb", "ccc"]);
        assert_eq!(abc.segments().rev().collect::<Vec<_>>(), ["ccc", "bb", "a"]);
        assert_eq!(
            abc.ancestors().collect::<Vec<_>>(),
            [ZnodePath::new("/a").unwrap(), ZnodePath::new("/a/bb").unwrap()]
        );
    }

    #[test]
    fn starts_with() {
        let p = |s: &str| ZnodePath::new(s).unwrap();
        assert!(p("/a/b").starts_with(&p("/")));
        assert!(p("/").starts_with(&p("/")));
        assert!(p("/a/b").starts_with(&p("/a")));
        assert!(p("/a/b").starts_with(&p("/a/b")));
        assert!(!p("/a/b").starts_with(&p("/a/b/c")));
        assert!(!p("/a/bc").starts_with(&p("/a/b")));
        assert!(!p("/ab").starts_with(&p("/a")));
        assert!(!p("/").starts_with(&p("/a")));
        assert!(!p("/b").starts_with(&p("/a")));
    }

    #[test]
    fn join() {
        let root = ZnodePath::root();
        let a = root.join("a").unwrap();
        assert_eq!(a, "/a");
        assert_eq!(a.join("b").unwrap(), "/a/b");
        assert_eq!(a.join("...").unwrap(), "/a/...");
        assert_eq!(root.join("zookeeperx").unwrap(), "/zookeeperx");
        assert_eq!(a.join("zookeeper").unwrap(), "/a/zookeeper");

        let cases: &[(&ZnodePath, &str, PathRule, &str)] = &[
            (&a, "", PathRule::BadParameter, "/a/"),
            (&a, "b/c", PathRule::BadParameter, "/a/b/c"),
            (&a, "/", PathRule::BadParameter, "/a//"),
            (&a, "/b", PathRule::BadParameter, "/a//b"),
            (&root, "", PathRule::BadParameter, "/"),
            (&a, ".", PathRule::RelativeSegment, "/a/."),
            (&a, "..", PathRule::RelativeSegment, "/a/.."),
            (&a, "x\u{0}", PathRule::ForbiddenCharacter, "/a/x\u{0}"),
            (&a, "🦀", PathRule::ForbiddenCharacter, "/a/🦀"),
            (&root, "zookeeper", PathRule::Reserved, "/zookeeper"),
        ];
        for (base, segment, expected, joined) in cases {
            match base.join(segment) {
                Err(Error::InvalidPath { path, rule }) => {
                    assert_eq!(rule, *expected, "{base} + {segment:?}");
                    assert_eq!(path, *joined);
                }
                other => panic!("{base} + {segment:?} gave {other:?}"),
            }
        }
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN - 2));
        let long = ZnodePath::new(long).unwrap();
        assert!(matches!(
            long.join("b"),
            Err(Error::InvalidPath {
                rule: PathRule::TooLong,
                ..
            })
        ));
    }

    fn template_rule(template: &str, params: &[(&str, &str)]) -> Option<PathRule> {
        match ZnodePath::from_template(template, params) {
            Ok(_) => None,
            Err(Error::InvalidPath { rule, .. }) => Some(rule),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn templates() {
        let t = |template: &str, params: &[(&str, &str)]| ZnodePath::from_template(template, params).unwrap();
        assert_eq!(t("/a/{x}", &[("x", "b")]), "/a/b");
        assert_eq!(t("/a/{x}/c", &[("x", "b")]), "/a/b/c");
        assert_eq!(t("/a/p-{x}-s", &[("x", "b")]), "/a/p-b-s");
        assert_eq!(t("/{x}/{y}/{x}", &[("y", "2"), ("x", "1")]), "/1/2/1");
        assert_eq!(t("/{x}{y}", &[("x", "1"), ("y", "2")]), "/12");
        assert_eq!(t("/no/params", &[]), "/no/params");
        assert_eq!(t("/{{lit}}/{x}", &[("x", "v")]), "/{lit}/v");
        assert_eq!(t("/a{{{x}}}", &[("x", "v")]), "/a{v}");
        assert_eq!(t("/{_id9}", &[("_id9", "v")]), "/v");
        assert_eq!(t("/{x}", &[("x", "...")]), "/...");
        assert_eq!(t("/{x}", &[("x", "日本")]), "/日本");
        // Dots are fine inside a value.
        assert_eq!(t("/a{x}", &[("x", "b.")]), "/ab.");

        // Values that are not one valid segment.
        for value in ["", "a/b", "/", "..", ".", "a\u{0}", "🦀", "\n"] {
            assert_eq!(
                template_rule("/a/{x}", &[("x", value)]),
                Some(PathRule::BadParameter),
                "{value:?}"
            );
        }
        match ZnodePath::from_template("/a/{x}", &[("x", "b/c")]) {
            Err(Error::InvalidPath { path, .. }) => assert_eq!(path, "/a/b/c"),
            other => panic!("{other:?}"),
        }

        // Template and parameter mismatches.
        for (template, params) in [
            ("/a/{x}", &[][..]),
            ("/a/{x}", &[("y", "1")][..]),
            ("/a/{x}", &[("x", "1"), ("y", "2")][..]),
            ("/a/{x}", &[("x", "1"), ("x", "2")][..]),
            ("/a", &[("x", "1")][..]),
            ("/a/{x", &[("x", "1")][..]),
            ("/a/x}", &[("x", "1")][..]),
            ("/a/{}", &[("", "1")][..]),
            ("/a/{1x}", &[("1x", "1")][..]),
            ("/a/{x-y}", &[("x-y", "1")][..]),
            ("/a/{x{y}}", &[("x", "1"), ("y", "1")][..]),
        ] {
            assert_eq!(
                template_rule(template, params),
                Some(PathRule::BadTemplate),
                "{template:?} {params:?}"
            );
        }
        match ZnodePath::from_template("/a/{x", &[]) {
            Err(Error::InvalidPath { path, .. }) => assert_eq!(path, "/a/{x"),
            other => panic!("{other:?}"),
        }

        // The filled-in path is validated as a whole.
        assert_eq!(
            template_rule("/{x}", &[("x", "zookeeper")]),
            Some(PathRule::Reserved)
        );
        assert_eq!(
            template_rule("a/{x}", &[("x", "b")]),
            Some(PathRule::NoLeadingSlash)
        );
        assert_eq!(
            template_rule("/a//{x}", &[("x", "b")]),
            Some(PathRule::EmptySegment)
        );
        assert_eq!(
            template_rule("/{x}/", &[("x", "b")]),
            Some(PathRule::TrailingSlash)
        );
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert_eq!(
            template_rule(&format!("{long}{{x}}"), &[("x", "b")]),
            Some(PathRule::TooLong)
        );
    }

    #[test]
    fn placeholder_names() {
        assert_eq!(placeholders("/a"), Ok(vec![]));
        assert_eq!(placeholders(""), Ok(vec![]));
        assert_eq!(
            placeholders("/{a}/{b}/{a}"),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            placeholders("/x-{a}{b}"),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(placeholders("/{{a}}"), Ok(vec![]));
        assert_eq!(placeholders("/{{{a}}}"), Ok(vec!["a".to_owned()]));
        assert_eq!(
            placeholders("{é}").map_err(|m| m.contains("identifier")),
            Err(true)
        );
        assert_eq!(placeholders("/{a").map_err(|m| m.contains("unclosed")), Err(true));
        assert_eq!(
            placeholders("/a}").map_err(|m| m.contains("unmatched")),
            Err(true)
        );
        assert_eq!(
            placeholders("/{a{b}}").map_err(|m| m.contains("inside")),
            Err(true)
        );
        assert!(placeholders("/{}").is_err());
        assert!(placeholders("/{ a }").is_err());
        assert!(placeholders("{").is_err());
        assert!(placeholders("}").is_err());
    }

    /// Strings that look like paths often enough to hit every rule.
    fn path_like() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            4 => "[a-z0-9_-]{1,6}",
            1 => Just(String::new()),
            1 => Just(".".to_owned()),
            1 => Just("..".to_owned()),
            1 => Just("zookeeper".to_owned()),
            1 => "[.a]{1,3}",
            1 => any::<char>().prop_map(String::from),
        ];
        (
            any::<bool>(),
            proptest::collection::vec(segment, 0..6),
            any::<bool>(),
        )
            .prop_map(|(lead, segments, trail)| {
                let mut path = if lead { String::from("/") } else { String::new() };
                path.push_str(&segments.join("/"));
                if trail {
                    path.push('/');
                }
                path
            })
    }

    fn check_round_trip(path: &str) {
        if let Ok(parsed) = ZnodePath::new(path) {
            let mut rebuilt = ZnodePath::root();
            for segment in parsed.segments() {
                rebuilt = rebuilt.join(segment).expect("segment of a valid path joins");
            }
            assert_eq!(rebuilt, parsed);
            assert_eq!(parsed.as_str(), path);
            let ancestors: Vec<ZnodePath> = parsed.ancestors().collect();
            assert_eq!(ancestors.len(), parsed.segments().count().saturating_sub(1));
            for ancestor in &ancestors {
                assert!(parsed.starts_with(ancestor));
                assert!(validate(ancestor.as_str()).is_ok());
            }
            if let Some(parent) = parsed.parent() {
                assert_eq!(parent.join(parsed.name()).expect("name joins"), parsed);
            }
        }
    }

    proptest! {
        #[test]
        fn new_never_panics_and_round_trips(path in any::<String>()) {
            let _ = ZnodePath::new(path.clone());
            check_round_trip(&path);
        }

        #[test]
        fn path_like_strings_round_trip(path in path_like()) {
            let result = ZnodePath::new(path.clone());
            prop_assert_eq!(result.is_ok(), validate(&path).is_ok());
            check_round_trip(&path);
        }

        #[test]
        fn templates_never_panic(template in "[/{}a-z]{0,12}", value in "[/.{}a-z\u{0}]{0,4}") {
            let _ = placeholders(&template);
            let _ = ZnodePath::from_template(&template, &[("a", &value)]);
        }
    }
}
