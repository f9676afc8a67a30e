//! The GPU process's log: its standard error is the write end of a pipe, never a host file,
//! and rayvmm reads the other end with bounds (line length, lines per second), so a process
//! that floods its log costs rayvmm neither memory nor a terminal full of text.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Longest line kept; the rest of a longer line is cut.
pub const MAX_LINE_BYTES: usize = 512;
/// Most lines passed on per second; the others are counted and reported as dropped.
pub const MAX_LINES_PER_SECOND: u32 = 50;

/// Reads `pipe` until its write end closes, passing each line (cut and rate-limited) to
/// `say`. Runs on the calling thread.
pub fn forward(pipe: OwnedFd, say: &dyn Fn(&str)) {
    let mut file = File::from(pipe);
    let mut limiter = LineLimiter::new(say);
    let mut chunk = [0u8; 4096];
    while let Ok(n) = file.read(&mut chunk) {
        if n == 0 {
            break;
        }
        limiter.push(&chunk[..n]);
    }
    limiter.finish();
}

/// Splits bytes into lines and passes them on within the bounds.
struct LineLimiter<'a> {
    say: &'a dyn Fn(&str),
    line: Vec<u8>,
    cut: bool,
    window: Instant,
    in_window: u32,
    dropped: u64,
}

impl<'a> LineLimiter<'a> {
    fn new(say: &'a dyn Fn(&str)) -> Self {
        LineLimiter {
            say,
            line: Vec::with_capacity(MAX_LINE_BYTES),
            cut: false,
            window: Instant::now(),
            in_window: 0,
            dropped: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_LINE_BYTES {
                self.line.push(byte);
            } else {
                self.cut = true;
            }
        }
    }

    fn emit(&mut self) {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.report_dropped();
            self.window = Instant::now();
            self.in_window = 0;
        }
        if self.in_window < MAX_LINES_PER_SECOND {
            self.in_window += 1;
            let text = String::from_utf8_lossy(&self.line);
            let marker = if self.cut { " [cut]" } else { "" };
            (self.say)(&format!("{text}{marker}"));
        } else {
            self.dropped += 1;
        }
        self.line.clear();
        self.cut = false;
    }

    fn report_dropped(&mut self) {
        if self.dropped > 0 {
            (self.say)(&format!(
                "[{} lines dropped: more than {MAX_LINES_PER_SECOND} a second]",
                self.dropped
            ));
            self.dropped = 0;
        }
    }

    fn finish(&mut self) {
        if !self.line.is_empty() {
            self.emit();
        }
        self.report_dropped();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn lines_of(input: &[u8]) -> Vec<String> {
        let said = RefCell::new(Vec::new());
        let say = |line: &str| said.borrow_mut().push(line.to_string());
        let mut limiter = LineLimiter::new(&say);
        limiter.push(input);
        limiter.finish();
        said.into_inner()
    }

    #[test]
    fn lines_are_passed_on_whole() {
        let lines = lines_of(b"first\nsecond\nlast without newline");

        assert_eq!(lines, vec!["first", "second", "last without newline"]);
    }

    #[test]
    fn long_line_is_cut_and_marked() {
        let lines = lines_of(&[b'x'; MAX_LINE_BYTES + 100]);

        assert_eq!(lines, vec![format!("{} [cut]", "x".repeat(MAX_LINE_BYTES))]);
    }

    #[test]
    fn flood_is_dropped_past_the_rate_and_counted() {
        let flood = "spam\n".repeat(MAX_LINES_PER_SECOND as usize + 30);

        let lines = lines_of(flood.as_bytes());

        assert_eq!(
            (lines.len(), lines.last().map(String::as_str)),
            (
                MAX_LINES_PER_SECOND as usize + 1,
                Some("[30 lines dropped: more than 50 a second]")
            )
        );
    }
}
