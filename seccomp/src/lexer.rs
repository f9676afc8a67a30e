//! Splits policy text into logical lines of tokens (minijail's tokenizer rules).
//!
//! A logical line is a physical line plus the lines it continues with a trailing `\`.
//! `#` starts a comment that runs to the end of the line. Each token keeps the line and
//! column it started at, so every later error can point at it.

use crate::error::{Location, PolicyError};

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `@include`, `@frequency`, `@denylist`, `@default` ... (text keeps the `@`).
    Directive,
    /// A path: starts with `/` or `./`, runs to the next blank.
    Path,
    /// A C integer literal, optionally negative.
    Number,
    /// A name: syscall, constant, `argN`, `in`, `return`, an action keyword.
    Ident,
    /// `:`
    Colon,
    /// `;`
    Semicolon,
    /// `,`
    Comma,
    /// `~`
    Tilde,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `||`
    OrOr,
    /// `&&`
    AndAnd,
    /// `|`
    Pipe,
    /// `&`, `==`, `!=`, `<`, `<=`, `>`, `>=`
    Operator,
}

/// One token with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    pub at: Location,
}

/// Tokenizes `text` (named `file` in errors) into logical lines; blank and comment-only
/// lines produce nothing.
pub(crate) fn logical_lines(text: &str, file: &str) -> Result<Vec<Vec<Token>>, PolicyError> {
    let mut lines = Vec::new();
    let mut current = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let code = strip_comment(raw);
        let (code, continues) = match code.trim_end().strip_suffix('\\') {
            Some(rest) => (rest, true),
            None => (code, false),
        };
        tokenize_line(code, file, index + 1, &mut current)?;
        if !continues && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    Ok(lines)
}

fn strip_comment(line: &str) -> &str {
    line.find('#').map_or(line, |i| &line[..i])
}

fn tokenize_line(
    code: &str,
    file: &str,
    line: usize,
    out: &mut Vec<Token>,
) -> Result<(), PolicyError> {
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let at = Location {
            file: file.to_string(),
            line,
            column: i + 1,
        };
        let (kind, len) = match scan(&chars[i..]) {
            Some(found) => found,
            None => {
                let text: String = chars[i..]
                    .iter()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                return Err(PolicyError::InvalidToken { at, text });
            }
        };
        out.push(Token {
            kind,
            text: chars[i..i + len].iter().collect(),
            at,
        });
        i += len;
    }
    Ok(())
}

/// Recognises the token at the start of `s`: its kind and length in characters.
fn scan(s: &[char]) -> Option<(Kind, usize)> {
    let c = s[0];
    let next = s.get(1).copied();
    let word = |start: usize, ok: fn(char) -> bool| {
        start + s[start..].iter().take_while(|&&c| ok(c)).count()
    };
    match c {
        '@' => Some((Kind::Directive, word(1, is_ident_char))),
        '/' => Some((Kind::Path, word(1, |c| !c.is_whitespace()))),
        '.' if next == Some('/') => Some((Kind::Path, word(1, |c| !c.is_whitespace()))),
        '0'..='9' => Some((Kind::Number, word(1, |c| c.is_ascii_alphanumeric()))),
        '-' if next.is_some_and(|n| n.is_ascii_digit()) => {
            Some((Kind::Number, word(1, |c| c.is_ascii_alphanumeric())))
        }
        'a'..='z' | 'A'..='Z' | '_' => Some((Kind::Ident, word(1, is_ident_char))),
        ':' => Some((Kind::Colon, 1)),
        ';' => Some((Kind::Semicolon, 1)),
        ',' => Some((Kind::Comma, 1)),
        '~' => Some((Kind::Tilde, 1)),
        '(' => Some((Kind::LParen, 1)),
        ')' => Some((Kind::RParen, 1)),
        '{' => Some((Kind::LBrace, 1)),
        '}' => Some((Kind::RBrace, 1)),
        '[' => Some((Kind::LBracket, 1)),
        ']' => Some((Kind::RBracket, 1)),
        '|' if next == Some('|') => Some((Kind::OrOr, 2)),
        '|' => Some((Kind::Pipe, 1)),
        '&' if next == Some('&') => Some((Kind::AndAnd, 2)),
        '&' => Some((Kind::Operator, 1)),
        '=' | '!' if next == Some('=') => Some((Kind::Operator, 2)),
        '<' | '>' if next == Some('=') => Some((Kind::Operator, 2)),
        '<' | '>' => Some((Kind::Operator, 1)),
        _ => None,
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        logical_lines(text, "t")
            .unwrap()
            .concat()
            .iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn continuation_joins_lines_and_keeps_positions() {
        let lines = logical_lines("fcntl: arg1 == 1 || \\\n  arg1 == 2\n", "t").unwrap();

        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].last().unwrap().at.to_string(), "t:2:11");
    }

    #[test]
    fn comments_and_blank_lines_produce_nothing() {
        let lines = logical_lines("# c\n\n   # d\nread: 1 # e\n", "t").unwrap();

        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), 3);
    }

    #[test]
    fn operators_are_told_apart() {
        let found: Vec<Kind> = kinds("a & b && c | d || e == f != g <= h >= i < j > k")
            .into_iter()
            .filter(|k| *k != Kind::Ident)
            .collect();

        assert_eq!(
            found,
            vec![
                Kind::Operator,
                Kind::AndAnd,
                Kind::Pipe,
                Kind::OrOr,
                Kind::Operator,
                Kind::Operator,
                Kind::Operator,
                Kind::Operator,
                Kind::Operator,
                Kind::Operator
            ]
        );
    }

    #[test]
    fn invalid_character_is_reported_with_line_and_column() {
        let err = logical_lines("read: 1\nwrite: $x\n", "p.policy").unwrap_err();

        assert_eq!(err.to_string(), "p.policy:2:8: invalid token `$x`");
    }
}
