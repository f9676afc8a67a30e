//! A minimal policy from an `strace -f` log.
//!
//! Every syscall seen gets one line. The arguments that decide what a syscall can do
//! (ioctl request, socket family and type, mmap/mprotect protection, clone flags, prctl
//! option, fcntl command, futex operation) are constrained to the values seen; the rest
//! are left free. Each line says how often the call was seen.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use crate::parser::parse_value;
use crate::policy::Policy;
use crate::tables::syscall_number;

/// The arguments constrained per syscall: `(argument index, strace's name for it)`.
const CONSTRAINED: &[(&str, &[(usize, &str)])] = &[
    ("ioctl", &[(1, "request")]),
    ("socket", &[(0, "domain"), (1, "type")]),
    ("mmap", &[(2, "prot")]),
    ("mprotect", &[(2, "prot")]),
    ("pkey_mprotect", &[(2, "prot")]),
    ("clone", &[(0, "flags")]),
    ("prctl", &[(0, "option")]),
    ("fcntl", &[(1, "cmd")]),
    ("futex", &[(1, "op")]),
];

/// What a trace showed for one syscall.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// How many calls.
    pub count: usize,
    /// Distinct values of the constrained arguments, with how each was written and how
    /// often it was seen.
    pub tuples: BTreeMap<Vec<u64>, (Vec<String>, usize)>,
    /// Argument texts that could not be evaluated (their calls add no constraint).
    pub unresolved: BTreeSet<String>,
}

/// Everything a trace showed, by syscall name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// Per syscall name.
    pub syscalls: BTreeMap<String, Seen>,
    /// Lines that were neither calls nor strace's own notes.
    pub skipped_lines: usize,
}

/// Reads an strace log: `-f` pid prefixes (`1234 ` or `[pid 1234] `), `-t`/`-tt`/`-ttt`
/// timestamps, `<unfinished ...>` / `<... resumed>` pairs, `+++`/`---` notes, and `-X raw`
/// or `-X verbose` numbers.
pub fn parse_strace(text: &str) -> Trace {
    let mut trace = Trace::default();
    let mut pending: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let (pid, rest) = split_pid(line);
        let rest = strip_timestamp(rest);
        if rest.is_empty() || rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        let call = match rest.strip_prefix("<... ") {
            Some(resumed) => match (pending.remove(&pid), resumed.split_once(" resumed>")) {
                (Some(head), Some((_, tail))) => head + tail,
                _ => continue,
            },
            None => rest.to_string(),
        };
        if let Some(head) = call.strip_suffix("<unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        }
        match parse_call(&call) {
            Some((name, args)) => trace.record(name, &args),
            None => trace.skipped_lines += 1,
        }
    }
    for head in pending.into_values() {
        if let Some((name, args)) = parse_call(&head) {
            trace.record(name, &args);
        }
    }
    trace
}

impl Trace {
    fn record(&mut self, name: &str, args: &[&str]) {
        let seen = self.syscalls.entry(name.to_string()).or_default();
        seen.count += 1;
        let Some((_, spec)) = CONSTRAINED.iter().find(|(n, _)| *n == name) else {
            return;
        };
        let mut values = Vec::new();
        let mut texts = Vec::new();
        for (index, key) in spec.iter() {
            let text = argument(args, *index, key);
            match text.and_then(evaluate) {
                Some(v) => {
                    values.push(v);
                    texts.push(text.unwrap_or_default().to_string());
                }
                None => {
                    seen.unresolved
                        .insert(text.unwrap_or("<missing>").to_string());
                    return;
                }
            }
        }
        let entry = seen.tuples.entry(values).or_insert((texts, 0));
        entry.1 += 1;
    }
}

/// Argument `index`, or the one strace labelled `key=` (clone prints its arguments named
/// and in its own order).
fn argument<'a>(args: &[&'a str], index: usize, key: &str) -> Option<&'a str> {
    let labelled = args
        .iter()
        .find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')));
    let any_labelled = args
        .iter()
        .any(|a| a.split_once('=').is_some_and(|(k, _)| is_label(k)));
    match (labelled, any_labelled) {
        (Some(v), _) => Some(v.trim()),
        (None, true) => None,
        (None, false) => args.get(index).map(|a| a.trim()),
    }
}

fn is_label(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// The value of an argument as strace printed it.
fn evaluate(text: &str) -> Option<u64> {
    let text = text.split("/*").next().unwrap_or(text).trim();
    match text.strip_prefix("_IOC(") {
        Some(fields) => ioc(fields.strip_suffix(')')?),
        None => parse_value(text, "trace").ok(),
    }
}

/// `_IOC(dir, type, nr, size)` as strace prints ioctls it does not know.
fn ioc(fields: &str) -> Option<u64> {
    let parts: Vec<&str> = fields.split(',').map(str::trim).collect();
    let [dir, kind, nr, size] = parts.as_slice() else {
        return None;
    };
    let mut direction = 0u64;
    for flag in dir.split('|').map(str::trim) {
        direction |= match flag {
            "_IOC_NONE" => 0,
            "_IOC_WRITE" => 1,
            "_IOC_READ" => 2,
            other => parse_value(other, "trace").ok()?,
        };
    }
    let number = |t: &str| parse_value(t, "trace").ok();
    Some(direction << 30 | number(size)? << 16 | number(kind)? << 8 | number(nr)?)
}

fn split_pid(line: &str) -> (String, &str) {
    if let Some(rest) = line.strip_prefix("[pid") {
        if let Some((pid, tail)) = rest.split_once(']') {
            return (pid.trim().to_string(), tail.trim_start());
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    let after = &line[digits..];
    match digits > 0 && after.starts_with([' ', '\t']) {
        true => (line[..digits].to_string(), after.trim_start()),
        false => (String::new(), line),
    }
}

fn strip_timestamp(text: &str) -> &str {
    let stamp = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ':' || *c == '.')
        .count();
    let after = &text[stamp..];
    match stamp > 0 && after.starts_with(' ') {
        true => after.trim_start(),
        false => text,
    }
}

/// `name(args) = ret` -> name and the top-level arguments.
fn parse_call(call: &str) -> Option<(&str, Vec<&str>)> {
    let open = call.find('(')?;
    let name = &call[..open];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((name, split_arguments(&call[open + 1..])))
}

/// Splits at commas outside brackets and strings, stopping at the closing parenthesis.
fn split_arguments(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => in_string = false,
            (true, false, _) => {}
            (false, _, '"') => in_string = true,
            (false, _, '(' | '[' | '{') => depth += 1,
            (false, _, ')') if depth == 0 => {
                out.push(&text[start..i]);
                return out
                    .into_iter()
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .collect();
            }
            (false, _, ')' | ']' | '}') => depth = depth.saturating_sub(1),
            (false, _, ',') if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect()
}

/// The policy text for `trace`; with `existing`, followed by that policy's rules the trace
/// never needed (as comments).
pub fn policy_text(trace: &Trace, existing: Option<&Policy>) -> String {
    let mut out = String::new();
    let calls: usize = trace.syscalls.values().map(|s| s.count).sum();
    let _ = writeln!(
        out,
        "# Learned by ray-seccomp from an strace log: {calls} calls of {} syscalls.",
        trace.syscalls.len()
    );
    for (name, seen) in &trace.syscalls {
        let Some(spec) = CONSTRAINED.iter().find(|(n, _)| n == name).map(|(_, s)| s) else {
            let _ = writeln!(out, "{}", unconstrained_line(name, seen.count));
            continue;
        };
        for text in &seen.unresolved {
            let _ = writeln!(out, "# {name}: could not evaluate `{text}` (re-trace with -X raw); those calls add no constraint");
        }
        let clauses: Vec<String> = seen
            .tuples
            .values()
            .map(|(texts, _)| {
                let atoms: Vec<String> = spec
                    .iter()
                    .zip(texts)
                    .map(|((index, _), text)| format!("arg{index} == {}", written(text)))
                    .collect();
                atoms.join(" && ")
            })
            .collect();
        let line = match clauses.is_empty() {
            true => format!(
                "# {name}: seen {} times, no argument could be evaluated",
                seen.count
            ),
            false => format!(
                "{name}: {}  # seen {} times",
                clauses.join(" || "),
                seen.count
            ),
        };
        let _ = writeln!(out, "{line}");
    }
    if let Some(policy) = existing {
        let unused: Vec<String> = policy
            .syscalls()
            .iter()
            .filter(|r| !trace.syscalls.contains_key(r.name()))
            .flat_map(|r| {
                r.definitions()
                    .iter()
                    .map(move |d| format!("#   {}: {}  ({})", r.name(), d.text, d.at))
            })
            .collect();
        let _ = writeln!(
            out,
            "\n# Rules of {} that the trace never needed ({}):",
            policy.name(),
            unused.len()
        );
        for line in unused {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn unconstrained_line(name: &str, count: usize) -> String {
    match (syscall_number(name), name) {
        (None, _) => format!("# {name}: seen {count} times, but x86_64 has no such syscall"),
        (Some(_), "clone3") => format!(
            "clone3: 1  # seen {count} times; its flags cannot be filtered: consider `clone3: return ENOSYS` so libc falls back to clone"
        ),
        (Some(_), _) => format!("{name}: 1  # seen {count} times"),
    }
}

/// How to write a value in the policy: strace's symbolic text when the policy language
/// reads it the same, else hexadecimal.
fn written(text: &str) -> String {
    let clean = text.split("/*").next().unwrap_or(text).trim();
    let symbolic = clean.chars().any(|c| c.is_ascii_alphabetic()) && !clean.starts_with("0x");
    match (symbolic, parse_value(clean, "trace")) {
        (true, Ok(_)) => clean.replace(' ', ""),
        _ => format!("{:#x}", evaluate(text).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_prefixes_and_timestamps_are_stripped() {
        let trace = parse_strace(
            "12  10:00:00.123456 close(3) = 0\n[pid 13] 1700000000.5 close(4) = 0\nclose(5) = 0\n",
        );

        assert_eq!(trace.syscalls["close"].count, 3);
    }

    #[test]
    fn unfinished_and_resumed_make_one_call_with_all_arguments() {
        let trace = parse_strace(
            "7 ioctl(3, TCGETS, <unfinished ...>\n8 close(1) = 0\n7 <... ioctl resumed>{c_iflag=0}) = 0\n",
        );

        assert_eq!(trace.syscalls["ioctl"].count, 1);
        assert_eq!(
            trace.syscalls["ioctl"].tuples.keys().collect::<Vec<_>>(),
            vec![&vec![0x5401]]
        );
    }

    #[test]
    fn unknown_ioctls_printed_as_ioc_are_computed() {
        let trace =
            parse_strace("ioctl(3, _IOC(_IOC_READ|_IOC_WRITE, 0x64, 0, 0x40), 0x7ff) = 0\n");

        assert_eq!(
            trace.syscalls["ioctl"].tuples.keys().collect::<Vec<_>>(),
            vec![&vec![0xc040_6400]]
        );
    }

    #[test]
    fn clone_flags_are_found_by_label() {
        let trace = parse_strace(
            "clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 5\n",
        );

        assert_eq!(
            trace.syscalls["clone"].tuples.keys().collect::<Vec<_>>(),
            vec![&vec![0x0120_0011]]
        );
    }

    #[test]
    fn exit_and_signal_notes_are_not_calls() {
        let trace = parse_strace("5 +++ exited with 0 +++\n5 --- SIGCHLD {si_signo=SIGCHLD} ---\n");

        assert_eq!(trace.syscalls.len(), 0);
    }

    #[test]
    fn raw_numbers_with_verbose_comments_are_read() {
        let trace = parse_strace("ioctl(0x3, 0x5401 /* TCGETS */, 0x7ffc) = 0\n");

        assert_eq!(
            trace.syscalls["ioctl"].tuples.keys().collect::<Vec<_>>(),
            vec![&vec![0x5401]]
        );
    }

    #[test]
    fn learned_text_constrains_security_arguments_and_counts_calls() {
        let trace = parse_strace(
            "socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0) = 3\nmmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f\nmmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE, 3, 0) = 0x7e\n",
        );

        let text = policy_text(&trace, None);

        assert!(
            text.contains("mmap: arg2 == PROT_READ|PROT_WRITE  # seen 2 times"),
            "{text}"
        );
        assert!(
            text.contains(
                "socket: arg0 == AF_UNIX && arg1 == SOCK_STREAM|SOCK_CLOEXEC  # seen 1 times"
            ),
            "{text}"
        );
    }
}
