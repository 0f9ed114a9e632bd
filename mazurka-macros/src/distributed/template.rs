//! Path templates (`"/accounts/{id}"`) at compile time: a copy of the template syntax of
//! `mazurka::path` (`parse_template`, `placeholders`), pure `std`; keep the two in step.

/// A piece of a parsed path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Literal text (an escaped brace is its own one-character piece).
    Text(&'a str),
    /// A `{name}` placeholder, by name.
    Param(&'a str),
}

/// Splits a template into literal text and `{name}` placeholders, with the runtime's messages.
pub(crate) fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut chars = template.char_indices().peekable();
    let mut text_start = 0;
    let slice = |from: usize, to: usize| template.get(from..to).unwrap_or("");
    while let Some((i, c)) = chars.next() {
        if c != '{' && c != '}' {
            continue;
        }
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
                    "'{{' at byte {j} of {template:?} opens a placeholder inside the placeholder opened at \
                         byte {i}"
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
                "placeholder {{{name}}} at byte {i} of {template:?} must be named by an identifier (letters, \
                 digits and '_', not starting with a digit)"
            ));
        }
        pieces.push(Piece::Param(name));
        text_start = name_end + 1;
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

/// The placeholder names, each once, in order of first appearance.
pub(crate) fn placeholders<'a>(pieces: &[Piece<'a>]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for piece in pieces {
        if let Piece::Param(name) = *piece {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The path the template stands for with every placeholder filled with `value` (braces
/// unescaped): what to check against the path rules at compile time.
pub(crate) fn fill(pieces: &[Piece<'_>], value: &str) -> String {
    pieces
        .iter()
        .map(|piece| match *piece {
            Piece::Text(text) => text,
            Piece::Param(_) => value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(template: &str) -> Result<Vec<&str>, String> {
        parse_template(template).map(|pieces| placeholders(&pieces))
    }

    #[test]
    fn placeholders_in_order_of_first_appearance() {
        assert_eq!(names("/accounts/{bank}/{id}/{bank}"), Ok(vec!["bank", "id"]));
        assert_eq!(names("/queues/q-{n}"), Ok(vec!["n"]));
        assert_eq!(names("/plain/{{braces}}"), Ok(vec![]));
        assert_eq!(names("/cfg"), Ok(vec![]));
        assert_eq!(names("/{_x1}"), Ok(vec!["_x1"]));
    }

    #[test]
    fn malformed_templates() {
        assert!(names("/accounts/{id").is_err_and(|e| e.starts_with("unclosed '{' at byte 10")));
        assert!(names("/accounts/id}").is_err_and(|e| e.starts_with("unmatched '}' at byte 12")));
        assert!(names("/a/{x{y}}").is_err_and(|e| e.contains("inside the placeholder")));
        assert!(names("/a/{}").is_err_and(|e| e.contains("must be named by an identifier")));
        assert!(names("/a/{1x}").is_err_and(|e| e.contains("must be named by an identifier")));
        assert!(names("/a/{a-b}").is_err_and(|e| e.contains("must be named by an identifier")));
    }

    #[test]
    fn filled_paths() {
        let pieces = parse_template("/accounts/{{{id}}}/acct-{id}").unwrap_or_default();
        assert_eq!(fill(&pieces, "x"), "/accounts/{x}/acct-x");
    }
}
