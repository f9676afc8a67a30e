//! minijail's policy grammar (x86_64), with `@include` resolution and merging of repeated
//! syscalls.
//!
//! ```text
//! statement  = '@include' PATH | '@frequency' PATH | syscall ':' filter
//! filter     = '1' | 'allow' | 'log' | 'trap' | 'kill' | 'kill-process' | 'kill-thread'
//!            | 'return' single | expression [ ';' 'return' single ]
//! expression = clause { '||' clause }          (minijail has no parentheses here)
//! clause     = atom { '&&' atom }
//! atom       = 'arg'N op value                 (N in 0..=5)
//! op         = '==' | '!=' | '<' | '<=' | '>' | '>=' | '&' | 'in'
//! value      = constant { '|' constant }
//! constant   = [ '~' ] ( '(' value ')' | single )
//! single     = NUMBER | CONSTANT_NAME
//! ```
//! Semantics follow minijail's C compiler (`syscall_filter.c`): `EXPR; return E` allows
//! when EXPR holds and fails with errno E otherwise. Repeated syscalls follow minijail's
//! policy compiler (`tools/parser.py`): their conditions are ORed, and a syscall may get
//! only one unconditional action, which must come last.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::action::Action;
use crate::error::{Location, PolicyError};
use crate::lexer::{logical_lines, Kind, Token};
use crate::policy::{Clause, Comparison, Definition, Op, Policy, SyscallRule};
use crate::tables::{constant, syscall_entry};

/// Largest errno a `return` may name (the kernel's MAX_ERRNO).
const MAX_ERRNO: u64 = 4095;

impl Policy {
    /// Reads and parses the policy file at `path`. `@include`d files are looked up by file
    /// name in `include_dirs`, then beside the including file, then at the path as written.
    pub fn from_file(path: &Path, include_dirs: &[PathBuf]) -> Result<Policy, PolicyError> {
        parse_file(path, include_dirs)
    }

    /// Parses policy text; `name` stands for the file name in errors.
    pub fn from_str(
        text: &str,
        name: &str,
        include_dirs: &[PathBuf],
    ) -> Result<Policy, PolicyError> {
        parse_text(text, name, include_dirs)
    }
}

pub(crate) fn parse_file(path: &Path, include_dirs: &[PathBuf]) -> Result<Policy, PolicyError> {
    let mut loader = Loader::new(include_dirs);
    loader.load_file(path)?;
    Ok(loader.finish(&path.display().to_string()))
}

pub(crate) fn parse_text(
    text: &str,
    name: &str,
    include_dirs: &[PathBuf],
) -> Result<Policy, PolicyError> {
    let mut loader = Loader::new(include_dirs);
    loader.load_text(text, name, None)?;
    Ok(loader.finish(name))
}

/// Evaluates a value expression (`PROT_READ|PROT_EXEC`, `~0x10`, `AF_INET`, `42`) as the
/// policy language does; `name` stands for the source in errors.
pub fn parse_value(text: &str, name: &str) -> Result<u64, PolicyError> {
    let tokens = logical_lines(text, name)?.concat();
    let mut cursor = Cursor::new(&tokens, name);
    let value = cursor.value()?;
    cursor.end()?;
    Ok(value)
}

/// Reads policy files, following includes, and merges their statements.
struct Loader<'a> {
    include_dirs: &'a [PathBuf],
    including: Vec<PathBuf>,
    rules: Vec<SyscallRule>,
    by_nr: HashMap<i64, usize>,
}

impl<'a> Loader<'a> {
    fn new(include_dirs: &'a [PathBuf]) -> Self {
        Loader {
            include_dirs,
            including: Vec::new(),
            rules: Vec::new(),
            by_nr: HashMap::new(),
        }
    }

    fn finish(self, name: &str) -> Policy {
        Policy {
            name: name.to_string(),
            rules: self.rules,
        }
    }

    fn load_file(&mut self, path: &Path) -> Result<(), PolicyError> {
        let text = fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let identity = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.including.push(identity);
        let result = self.load_text(&text, &path.display().to_string(), path.parent());
        self.including.pop();
        result
    }

    fn load_text(&mut self, text: &str, name: &str, dir: Option<&Path>) -> Result<(), PolicyError> {
        for line in logical_lines(text, name)? {
            let mut cursor = Cursor::new(&line, name);
            let first = &line[0];
            match (first.kind, first.text.as_str()) {
                (Kind::Directive, "@include") => {
                    cursor.next();
                    let path = cursor.expect(Kind::Path, "a path after @include")?;
                    cursor.end()?;
                    self.include(&path, dir)?;
                }
                (Kind::Directive, "@frequency") => {
                    cursor.next();
                    cursor.expect(Kind::Path, "a path after @frequency")?;
                    cursor.end()?;
                }
                (Kind::Directive, _) => return Err(unsupported_directive(first)),
                _ => {
                    let statement = cursor.statement()?;
                    self.merge(statement)?;
                }
            }
        }
        Ok(())
    }

    fn include(&mut self, path: &Token, dir: Option<&Path>) -> Result<(), PolicyError> {
        let searched = self.candidates(&path.text, dir);
        let found = searched.iter().find(|p| p.is_file()).cloned();
        let Some(found) = found else {
            return Err(PolicyError::MissingInclude {
                at: path.at.clone(),
                name: path.text.clone(),
                searched,
            });
        };
        let identity = fs::canonicalize(&found).unwrap_or_else(|_| found.clone());
        if self.including.contains(&identity) {
            return Err(PolicyError::IncludeCycle {
                at: path.at.clone(),
                path: found,
            });
        }
        self.load_file(&found)
    }

    /// Where `@include written` may live, in search order.
    fn candidates(&self, written: &str, dir: Option<&Path>) -> Vec<PathBuf> {
        let written = Path::new(written);
        let mut out = Vec::new();
        if let Some(file_name) = written.file_name() {
            out.extend(self.include_dirs.iter().map(|d| d.join(file_name)));
            out.extend(dir.map(|d| d.join(file_name)));
        }
        match (written.is_relative(), dir) {
            (true, Some(d)) => out.push(d.join(written)),
            _ => out.push(written.to_path_buf()),
        }
        out.dedup();
        out
    }

    fn merge(&mut self, statement: Statement) -> Result<(), PolicyError> {
        let index = *self.by_nr.entry(statement.nr).or_insert_with(|| {
            self.rules.push(SyscallRule {
                name: statement.name,
                nr: statement.nr,
                allow_if: Vec::new(),
                otherwise: None,
                otherwise_at: None,
                definitions: Vec::new(),
            });
            self.rules.len() - 1
        });
        let rule = &mut self.rules[index];
        if let Some(previous) = &rule.otherwise_at {
            return Err(PolicyError::Redefined {
                at: statement.definition.at,
                name: statement.name.to_string(),
                previous: previous.clone(),
            });
        }
        rule.allow_if.extend(statement.allow_if);
        if let Some(action) = statement.otherwise {
            rule.otherwise = Some(action);
            rule.otherwise_at = Some(statement.definition.at.clone());
        }
        rule.definitions.push(statement.definition);
        Ok(())
    }
}

fn unsupported_directive(token: &Token) -> PolicyError {
    let why = match token.text.as_str() {
        "@denylist" => "only allow-list policies are compiled here",
        "@default" => "the default action is chosen when compiling (--default-action)",
        _ => "unknown directive (known: @include, @frequency)",
    };
    PolicyError::Unsupported {
        at: token.at.clone(),
        what: token.text.clone(),
        why,
    }
}

/// One `syscall: filter` line, before merging.
struct Statement {
    name: &'static str,
    nr: i64,
    allow_if: Vec<Clause>,
    otherwise: Option<Action>,
    definition: Definition,
}

/// A read position in one logical line.
struct Cursor<'t> {
    tokens: &'t [Token],
    pos: usize,
    file: &'t str,
}

impl<'t> Cursor<'t> {
    fn new(tokens: &'t [Token], file: &'t str) -> Self {
        Cursor {
            tokens,
            pos: 0,
            file,
        }
    }

    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.pos)
    }

    fn peek_is(&self, kind: Kind) -> bool {
        self.peek().is_some_and(|t| t.kind == kind)
    }

    fn next(&mut self) -> Option<&'t Token> {
        let token = self.peek();
        self.pos += usize::from(token.is_some());
        token
    }

    /// Where the next token is, or just past the last one.
    fn here(&self) -> Location {
        match (self.peek(), self.tokens.last()) {
            (Some(t), _) => t.at.clone(),
            (None, Some(last)) => Location {
                column: last.at.column + last.text.chars().count(),
                ..last.at.clone()
            },
            (None, None) => Location {
                file: self.file.to_string(),
                line: 1,
                column: 1,
            },
        }
    }

    fn unexpected(&self, expected: &'static str) -> PolicyError {
        let found = match self.peek() {
            Some(t) => format!("`{}`", t.text),
            None => "end of line".to_string(),
        };
        PolicyError::Expected {
            at: self.here(),
            expected,
            found,
        }
    }

    fn expect(&mut self, kind: Kind, expected: &'static str) -> Result<Token, PolicyError> {
        match self.peek() {
            Some(t) if t.kind == kind => {
                self.pos += 1;
                Ok(t.clone())
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn end(&self) -> Result<(), PolicyError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of line")),
        }
    }

    fn statement(&mut self) -> Result<Statement, PolicyError> {
        if self.peek_is(Kind::LBrace) {
            return Err(self.unsupported("{", "list each syscall on its own line"));
        }
        let name_token = self.expect(Kind::Ident, "a syscall name")?;
        let (name, nr) = lookup_syscall(&name_token)?;
        if self.peek_is(Kind::LBracket) {
            return Err(self.unsupported(
                "[",
                "per-architecture metadata: this compiler is x86_64 only",
            ));
        }
        self.expect(Kind::Colon, "`:` after the syscall name")?;
        let start = self.pos;
        let (allow_if, otherwise) = self.filter()?;
        self.end()?;
        let text = source_text(&self.tokens[start..]);
        Ok(Statement {
            name,
            nr,
            allow_if,
            otherwise,
            definition: Definition {
                at: name_token.at,
                text,
            },
        })
    }

    fn unsupported(&self, what: &str, why: &'static str) -> PolicyError {
        PolicyError::Unsupported {
            at: self.here(),
            what: what.to_string(),
            why,
        }
    }

    /// The filter after the colon: the allowing clauses and the unconditional action.
    fn filter(&mut self) -> Result<(Vec<Clause>, Option<Action>), PolicyError> {
        let Some(token) = self.peek() else {
            return Err(self.unexpected("an action or argument expression"));
        };
        if token.kind == Kind::Ident && token.text.starts_with("arg") {
            let clauses = self.expression()?;
            if self.next().is_none() {
                return Ok((clauses, None));
            }
            let previous = &self.tokens[self.pos - 1];
            if previous.kind != Kind::Semicolon {
                self.pos -= 1;
                return Err(self.unexpected("`&&`, `||`, `;` or end of line"));
            }
            return match self.peek() {
                Some(t) if t.text == "return" => Ok((clauses, Some(self.action()?))),
                Some(t) => Err(PolicyError::BadAction {
                    at: t.at.clone(),
                    text: t.text.clone(),
                    why: "only `return ERRNO` may follow an argument expression",
                }),
                None => Err(self.unexpected("`return ERRNO` after `;`")),
            };
        }
        if token.kind == Kind::LBrace {
            return Err(self.unsupported("{", "write one filter per line"));
        }
        Ok((Vec::new(), Some(self.action()?)))
    }

    fn action(&mut self) -> Result<Action, PolicyError> {
        let token = self.next().ok_or_else(|| self.unexpected("an action"))?;
        let bad = |why| PolicyError::BadAction {
            at: token.at.clone(),
            text: token.text.clone(),
            why,
        };
        match (token.kind, token.text.as_str()) {
            (Kind::Number, "1") | (Kind::Ident, "allow") => Ok(Action::Allow),
            (Kind::Number, _) => Err(bad("the only numeric action is `1` (allow); to refuse, leave the syscall out or write `return ERRNO`")),
            (Kind::Ident, "return") => {
                let errno_token = self.peek().cloned();
                let errno = self.single()?;
                match (errno_token, errno <= MAX_ERRNO) {
                    (_, true) => Ok(Action::Errno(errno as u16)),
                    (Some(t), false) => Err(PolicyError::BadAction {
                        at: t.at,
                        text: t.text,
                        why: "an errno must be between 0 and 4095",
                    }),
                    (None, false) => Err(self.unexpected("an errno")),
                }
            }
            (Kind::Ident, "log") => Ok(Action::Log),
            (Kind::Ident, "trap") => Ok(Action::Trap),
            (Kind::Ident, "kill" | "kill-process") => Ok(Action::KillProcess),
            (Kind::Ident, "kill-thread") => Ok(Action::KillThread),
            (Kind::Ident, "trace" | "user-notify") => Err(bad("the sandbox has no tracer or notification listener")),
            _ => Err(bad("expected 1, allow, return ERRNO, log, trap, kill-process or kill-thread")),
        }
    }

    /// `item { separator item }`
    fn separated<T>(
        &mut self,
        separator: Kind,
        item: fn(&mut Self) -> Result<T, PolicyError>,
    ) -> Result<Vec<T>, PolicyError> {
        let mut items = vec![item(self)?];
        while self.peek_is(separator) {
            self.next();
            items.push(item(self)?);
        }
        Ok(items)
    }

    fn expression(&mut self) -> Result<Vec<Clause>, PolicyError> {
        self.separated(Kind::OrOr, |c| c.separated(Kind::AndAnd, Self::atom))
    }

    fn atom(&mut self) -> Result<Comparison, PolicyError> {
        let argument = self.expect(Kind::Ident, "an argument (arg0 to arg5)")?;
        let arg = argument_index(&argument)?;
        let op = match self.next() {
            Some(t) if t.kind == Kind::Operator || t.text == "in" => {
                Op::from_symbol(&t.text).ok_or_else(|| bad_operator(t))?
            }
            Some(t) => return Err(bad_operator(t)),
            None => return Err(self.unexpected("an operator")),
        };
        let value = self.value()?;
        Ok(Comparison { arg, op, value })
    }

    fn value(&mut self) -> Result<u64, PolicyError> {
        let parts = self.separated(Kind::Pipe, Self::constant)?;
        Ok(parts.into_iter().fold(0, |a, b| a | b))
    }

    fn constant(&mut self) -> Result<u64, PolicyError> {
        let negate = self.peek_is(Kind::Tilde);
        self.pos += usize::from(negate);
        let value = if self.peek_is(Kind::LParen) {
            self.next();
            let inner = self.value()?;
            self.expect(Kind::RParen, "`)`")?;
            inner
        } else {
            self.single()?
        };
        Ok(if negate { !value } else { value })
    }

    fn single(&mut self) -> Result<u64, PolicyError> {
        match self.peek() {
            Some(t) if t.kind == Kind::Number => {
                self.next();
                parse_number(&t.text).ok_or_else(|| PolicyError::BadNumber {
                    at: t.at.clone(),
                    text: t.text.clone(),
                })
            }
            Some(t) if t.kind == Kind::Ident => {
                self.next();
                constant(&t.text).ok_or_else(|| PolicyError::UnknownConstant {
                    at: t.at.clone(),
                    name: t.text.clone(),
                })
            }
            _ => Err(self.unexpected("a number or constant")),
        }
    }
}

/// Tokens back to policy text, spaced as people write it (`A|B`, `~(X)`).
fn source_text(tokens: &[Token]) -> String {
    let mut out = String::new();
    let mut glue = true;
    for token in tokens {
        let tight = matches!(token.kind, Kind::Pipe | Kind::RParen | Kind::Semicolon);
        if !glue && !tight {
            out.push(' ');
        }
        out.push_str(&token.text);
        glue = matches!(token.kind, Kind::Pipe | Kind::Tilde | Kind::LParen);
    }
    out
}

fn lookup_syscall(token: &Token) -> Result<(&'static str, i64), PolicyError> {
    syscall_entry(&token.text).ok_or_else(|| PolicyError::UnknownSyscall {
        at: token.at.clone(),
        name: token.text.clone(),
    })
}

fn argument_index(token: &Token) -> Result<usize, PolicyError> {
    let index = token
        .text
        .strip_prefix("arg")
        .filter(|digits| !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .and_then(|digits| digits.parse::<usize>().ok());
    match index {
        Some(i) if i < 6 => Ok(i),
        _ => Err(PolicyError::BadArgument {
            at: token.at.clone(),
            text: token.text.clone(),
        }),
    }
}

fn bad_operator(token: &Token) -> PolicyError {
    PolicyError::BadOperator {
        at: token.at.clone(),
        text: token.text.clone(),
    }
}

/// Parses a C integer literal like strtol(.., 0): `0x` hex, leading `0` octal, else
/// decimal, with an optional `-` (stored as 64-bit two's complement).
pub(crate) fn parse_number(text: &str) -> Option<u64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None if digits.len() > 1 && digits.starts_with('0') => {
            u64::from_str_radix(&digits[1..], 8).ok()?
        }
        None => digits.parse::<u64>().ok()?,
    };
    match negative {
        false => Some(magnitude),
        true if magnitude <= 1 << 63 => Some(magnitude.wrapping_neg()),
        true => None,
    }
}
