//! Errors of the policy parser and compiler, each naming where it happened.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A position in a policy file: `file:line:column`, both counted from 1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Location {
    /// The file name as given (or the name passed to `Policy::from_str`).
    pub file: String,
    /// Line number, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a policy could not be read, parsed or resolved.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file (or an included one) could not be read.
    #[error("{}: cannot read policy file: {source}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A character sequence that is no token of the language.
    #[error("{at}: invalid token `{text}`")]
    InvalidToken {
        /// Where.
        at: Location,
        /// The offending text.
        text: String,
    },
    /// The grammar wanted something else here.
    #[error("{at}: expected {expected}, found {found}")]
    Expected {
        /// Where.
        at: Location,
        /// What the grammar allows here.
        expected: &'static str,
        /// What was there (`end of line` at the end).
        found: String,
    },
    /// A syscall name that x86_64 does not have.
    #[error("{at}: unknown syscall `{name}` (not in the x86_64 syscall table)")]
    UnknownSyscall {
        /// Where.
        at: Location,
        /// The name.
        name: String,
    },
    /// A symbolic constant that is not in the generated constant table.
    #[error("{at}: unknown constant `{name}`")]
    UnknownConstant {
        /// Where.
        at: Location,
        /// The name.
        name: String,
    },
    /// A number that does not fit 64 bits or is not a valid C literal.
    #[error("{at}: invalid number `{text}` (must fit in 64 bits)")]
    BadNumber {
        /// Where.
        at: Location,
        /// The literal.
        text: String,
    },
    /// `argN` with N outside 0..=5.
    #[error("{at}: bad argument `{text}`: syscalls have arguments arg0 to arg5")]
    BadArgument {
        /// Where.
        at: Location,
        /// The argument token.
        text: String,
    },
    /// An operator that is not one of `== != < <= > >= & in`.
    #[error("{at}: bad operator `{text}`: expected one of == != < <= > >= & in")]
    BadOperator {
        /// Where.
        at: Location,
        /// The operator token.
        text: String,
    },
    /// An action the language does not have, or that this compiler does not support.
    #[error("{at}: bad action `{text}`: {why}")]
    BadAction {
        /// Where.
        at: Location,
        /// The action text.
        text: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// A minijail feature this implementation refuses on purpose.
    #[error("{at}: `{what}` is not supported: {why}")]
    Unsupported {
        /// Where.
        at: Location,
        /// The construct.
        what: String,
        /// Why it was refused.
        why: &'static str,
    },
    /// `@include` of a file found neither in the include directories nor beside the policy.
    #[error(
        "{at}: cannot find included file `{name}` (searched: {})",
        display_paths(searched)
    )]
    MissingInclude {
        /// Where the `@include` is.
        at: Location,
        /// The path as written.
        name: String,
        /// Every path tried, in order.
        searched: Vec<PathBuf>,
    },
    /// A file includes itself, directly or through others.
    #[error("{at}: include cycle: {} is already being included", path.display())]
    IncludeCycle {
        /// Where the `@include` that closes the cycle is.
        at: Location,
        /// The file included twice.
        path: PathBuf,
    },
    /// A syscall got a second unconditional action, or a rule after its unconditional one
    /// (minijail's `already had an unconditional action applied`).
    #[error(
        "{at}: syscall `{name}` already has an unconditional action (at {previous}); \
         a later rule for it could never apply"
    )]
    Redefined {
        /// Where the later definition is.
        at: Location,
        /// The syscall.
        name: String,
        /// Where its unconditional action was given.
        previous: Location,
    },
}

fn display_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// Why a parsed policy could not be turned into a BPF program.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// seccompiler refused a filter it was given.
    #[error("seccompiler rejected the {group} filter group: {source}")]
    Seccompiler {
        /// Which action group (`allow`, `errno 38` ...).
        group: String,
        /// seccompiler's error.
        source: seccompiler::BackendError,
    },
    /// seccompiler produced a program shape this compiler does not know how to chain.
    #[error("unexpected seccompiler output for the {group} filter group: {what}")]
    UnexpectedShape {
        /// Which action group.
        group: String,
        /// What was unexpected.
        what: &'static str,
    },
    /// An `&` expression expands into too many alternatives.
    #[error("{at}: the expression for `{name}` expands to more than {limit} rules")]
    TooManyRules {
        /// Where the definition is.
        at: Location,
        /// The syscall.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The whole program exceeds the kernel's 4096-instruction limit.
    #[error("the compiled program has {0} instructions; the kernel accepts at most 4096")]
    TooLong(usize),
}
