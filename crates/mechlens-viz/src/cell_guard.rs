//! Makes a failed notebook cell look failed: the kernel half that reports a `?` error or a
//! panic to Jupyter as an error, as a Python kernel would, so that "Run All" stops there.
//!
//! evcxr runs each cell in a child process. When a cell's `?` returns an error, evcxr's
//! generated code prints the error to stderr and the line `EVCXR_ERROR_OCCURRED` to stdout; a
//! panic prints the panic report to stderr and `EVCXR_PANIC_NOTIFICATION` to stdout. evcxr
//! reads both lines itself (to drop the cell's new variables) and then tells Jupyter that the
//! cell succeeded. [`install`] puts a relay between the child's file descriptors 1 and 2 and
//! the pipes evcxr reads: it passes everything through unchanged, and before each of those two
//! lines it adds one display block of type [`CELL_ERROR_MIME`] holding the error's name and
//! message. The kernel's front process (`kernel/proxy.py`) turns that block into a Jupyter
//! error. Variables of earlier cells survive as before: evcxr's own handling is untouched.
//!
//! The panic report is held back from stderr and carried in the block instead (so the
//! message is shown once, in the error), without a backtrace unless `MECHLENS_BACKTRACE=1`
//! was set when the kernel started or `RUST_BACKTRACE=1` is set in a cell.
//!
//! The relay works on file descriptors, not on Rust's `stdout()`, because every cell links
//! its own copy of `std`; it is installed once per child process (the prelude calls it at
//! kernel start; installing again is a no-op).

use std::io::Write as _;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use mechlens_core::{Error, Result};

/// The MIME type of the block that marks a failed cell.
pub const CELL_ERROR_MIME: &str = "application/vnd.mechlens.cell-error+json";

const USER_ERROR_LINE: &[u8] = b"EVCXR_ERROR_OCCURRED";
const PANIC_LINE: &[u8] = b"EVCXR_PANIC_NOTIFICATION";
const CELL_DONE_LINE: &[u8] = b"EVCXR_EXECUTION_COMPLETE";
const BEGIN_CONTENT: &[u8] = b"EVCXR_BEGIN_CONTENT ";
const END_CONTENT: &[u8] = b"EVCXR_END_CONTENT";
/// Set to the child's pid once the relay runs in it.
const INSTALLED_VAR: &str = "MECHLENS_CELL_GUARD";
/// How long stderr text is held before it is passed on: long enough that the message a `?`
/// prints just before `EVCXR_ERROR_OCCURRED` is still here to be claimed, short enough that
/// a reader does not notice.
const STDERR_HOLD: Duration = Duration::from_millis(25);
/// The most of a cell's error text carried in one block.
const MAX_MESSAGE: usize = 8000;

/// Installs the relay in this process (the kernel's child) unless it is already there.
/// Returns whether it installed it now.
///
/// # Errors
/// When a pipe cannot be made or a descriptor cannot be duplicated (the cell's output is
/// then unchanged).
pub fn install() -> Result<bool> {
    let pid = std::process::id().to_string();
    if std::env::var(INSTALLED_VAR).ok().as_deref() == Some(pid.as_str()) {
        return Ok(false);
    }
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let real_out = check(unsafe { libc::dup(1) }, "dup(1)")?;
    let real_err = check(unsafe { libc::dup(2) }, "dup(2)")?;
    let _ = std::io::stdout().flush();
    check(unsafe { libc::dup2(out_write, 1) }, "dup2(stdout)")?;
    check(unsafe { libc::dup2(err_write, 2) }, "dup2(stderr)")?;
    unsafe {
        libc::close(out_write);
        libc::close(err_write);
    }
    // The backtrace only on request: evcxr starts the child with RUST_BACKTRACE=1.
    let backtrace = std::env::var("MECHLENS_BACKTRACE").is_ok_and(|v| v == "1");
    // SAFETY: called once, from the cell that installs the relay, before the relay thread
    // starts; nothing else in the child reads the environment concurrently at this point.
    unsafe {
        std::env::set_var("RUST_BACKTRACE", if backtrace { "1" } else { "0" });
        std::env::set_var(INSTALLED_VAR, &pid);
    }
    std::thread::Builder::new()
        .name("mechlens-cell-guard".into())
        .spawn(move || Relay::new(real_out, real_err).run(out_read, err_read))
        .map_err(|e| Error::invalid("cell guard", format!("cannot start its thread: {e}")))?;
    Ok(true)
}

/// Writes the block that marks the running cell as failed, with a name (`Error`, `Panic`,
/// `DisplayError`) and a message. Displays whose rendering fails call it.
pub fn report_cell_error(ename: &str, evalue: &str) {
    let block = error_block(ename, evalue);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&block);
    let _ = out.flush();
}

fn error_block(ename: &str, evalue: &str) -> Vec<u8> {
    let evalue = tail(evalue.trim(), MAX_MESSAGE);
    let json = serde_json::json!({ "ename": ename, "evalue": evalue });
    format!("EVCXR_BEGIN_CONTENT {CELL_ERROR_MIME}\n{json}\nEVCXR_END_CONTENT\n").into_bytes()
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn check(result: libc::c_int, what: &str) -> Result<RawFd> {
    if result < 0 {
        Err(Error::invalid(
            "cell guard",
            format!("{what} failed: {}", std::io::Error::last_os_error()),
        ))
    } else {
        Ok(result)
    }
}

fn pipe() -> Result<(RawFd, RawFd)> {
    let mut fds = [0; 2];
    check(unsafe { libc::pipe(fds.as_mut_ptr()) }, "pipe")?;
    Ok((fds[0], fds[1]))
}

/// The relay's state: what it holds back, and where it is in evcxr's line protocol.
struct Relay {
    real_out: RawFd,
    real_err: RawFd,
    /// A stdout line not yet ended by `\n`.
    out_line: Vec<u8>,
    /// stderr text not passed on yet, and since when.
    held_err: Vec<u8>,
    held_since: Option<Instant>,
    /// A panic report being collected (from its `panicked at` line to evcxr's notice).
    panic_report: Option<Vec<u8>>,
    /// Inside an `EVCXR_BEGIN_CONTENT` ... `EVCXR_END_CONTENT` block.
    in_content: bool,
}

impl Relay {
    fn new(real_out: RawFd, real_err: RawFd) -> Self {
        Self {
            real_out,
            real_err,
            out_line: Vec::new(),
            held_err: Vec::new(),
            held_since: None,
            panic_report: None,
            in_content: false,
        }
    }

    fn run(mut self, out_read: RawFd, err_read: RawFd) {
        let mut buffer = vec![0u8; 1 << 16];
        let mut out_open = true;
        let mut err_open = true;
        while out_open || err_open {
            let waiting = !self.held_err.is_empty() || !self.out_line.is_empty();
            let timeout = if waiting {
                STDERR_HOLD.as_millis() as i32
            } else {
                -1
            };
            let mut fds = [
                libc::pollfd {
                    fd: if err_open { err_read } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: if out_open { out_read } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if ready < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            // stderr first: whatever a cell wrote there before a line on stdout is in the pipe
            // by the time that line is, so a `?`'s message is here when its notice arrives.
            if fds[0].revents != 0 {
                err_open = self.read_into_err(err_read, &mut buffer);
            }
            if fds[1].revents != 0 {
                match read(out_read, &mut buffer) {
                    Some(bytes) => self.take_stdout(&buffer[..bytes]),
                    None => out_open = false,
                }
            }
            if ready == 0 {
                // Quiet for a while: pass on a partial stdout line (a `print!` without `\n`).
                if !self.out_line.is_empty() {
                    let line = std::mem::take(&mut self.out_line);
                    write_all(self.real_out, &line);
                }
            }
            self.release_held_err(false);
        }
    }

    fn read_into_err(&mut self, fd: RawFd, buffer: &mut [u8]) -> bool {
        match read(fd, buffer) {
            Some(bytes) => {
                self.take_stderr(&buffer[..bytes]);
                true
            }
            None => false,
        }
    }

    fn take_stderr(&mut self, bytes: &[u8]) {
        if self.held_err.is_empty() {
            self.held_since = Some(Instant::now());
        }
        self.held_err.extend_from_slice(bytes);
        // A panic report starts with "thread '...' panicked at": from there on, stderr is the
        // report until evcxr's notice.
        if self.panic_report.is_none()
            && let Some(start) = find(&self.held_err, b"panicked at ").and_then(|at| {
                self.held_err[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|n| n + 1)
                    .or(Some(0))
            })
            && self.held_err[start..].starts_with(b"thread '")
        {
            let report = self.held_err.split_off(start);
            self.panic_report = Some(report);
        } else if let Some(report) = self.panic_report.as_mut() {
            report.append(&mut self.held_err);
        }
    }

    /// Passes held stderr on once it is old enough (or now, when `all`).
    fn release_held_err(&mut self, all: bool) {
        let old = self.held_since.is_some_and(|t| t.elapsed() >= STDERR_HOLD);
        if !self.held_err.is_empty() && (all || old) {
            write_all(self.real_err, &self.held_err);
            self.held_err.clear();
        }
        if self.held_err.is_empty() {
            self.held_since = None;
        }
    }

    fn take_stdout(&mut self, bytes: &[u8]) {
        self.out_line.extend_from_slice(bytes);
        while let Some(end) = self.out_line.iter().position(|&b| b == b'\n') {
            let rest = self.out_line.split_off(end + 1);
            let line = std::mem::replace(&mut self.out_line, rest);
            self.line(&line);
        }
    }

    /// One whole stdout line (with its `\n`).
    fn line(&mut self, line: &[u8]) {
        let text = &line[..line.len() - 1];
        if text == USER_ERROR_LINE {
            // The message `?` printed is the stderr held since the cell's last quiet spell.
            let message = String::from_utf8_lossy(&std::mem::take(&mut self.held_err)).into_owned();
            self.held_since = None;
            write_all(self.real_out, &error_block("Error", &message));
            write_all(self.real_out, line);
        } else if text == PANIC_LINE {
            let report = self.panic_report.take().unwrap_or_default();
            let message = panic_message(&String::from_utf8_lossy(&report));
            if self.in_content {
                // evcxr ends an open display block at this line; the marker comes after it.
                write_all(self.real_out, line);
                write_all(self.real_out, &error_block("Panic", &message));
                self.in_content = false;
            } else {
                write_all(self.real_out, &error_block("Panic", &message));
                write_all(self.real_out, line);
            }
        } else if text == CELL_DONE_LINE {
            // A panic on another thread has no notice: show its report as plain stderr.
            if let Some(report) = self.panic_report.take() {
                write_all(self.real_err, &report);
            }
            self.release_held_err(true);
            self.in_content = false;
            write_all(self.real_out, line);
        } else {
            if text.starts_with(BEGIN_CONTENT) {
                self.in_content = true;
            } else if text == END_CONTENT {
                self.in_content = false;
            }
            write_all(self.real_out, line);
        }
    }
}

/// The panic report without std's note about backtraces: `message (at file:line:col)`, then
/// the backtrace when one was asked for.
fn panic_message(report: &str) -> String {
    let report = report.trim();
    let Some(rest) = report.split_once("panicked at ").map(|(_, r)| r) else {
        return report.to_owned();
    };
    let (location, body) = rest.split_once(":\n").unwrap_or((rest, ""));
    let body: Vec<&str> = body
        .lines()
        .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE=1`"))
        .collect();
    let body = body.join("\n");
    let (message, backtrace) = match body.split_once("stack backtrace:") {
        Some((m, b)) => (m.trim(), format!("\nstack backtrace:{b}")),
        None => (body.trim(), String::new()),
    };
    format!("{message} (at {location}){backtrace}")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads what is there; `None` at end of file or on an error.
fn read(fd: RawFd, buffer: &mut [u8]) -> Option<usize> {
    loop {
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n > 0 {
            return Some(n as usize);
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

fn write_all(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // The reader is gone (the kernel is shutting down): nothing left to tell.
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_keeps_the_message_and_location_and_drops_the_note() {
        let report = "thread '<unnamed>' panicked at src/lib.rs:77:1:\nindex out of range\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(report),
            "index out of range (at src/lib.rs:77:1)"
        );
    }

    #[test]
    fn panic_message_keeps_a_requested_backtrace() {
        let report = "thread 'main' panicked at src/lib.rs:3:5:\nboom\nstack backtrace:\n   0: rust_begin_unwind\n";
        let message = panic_message(report);
        assert!(
            message.starts_with("boom (at src/lib.rs:3:5)\nstack backtrace:"),
            "{message}"
        );
        assert!(message.contains("rust_begin_unwind"), "{message}");
    }

    #[test]
    fn error_block_is_one_json_line_in_a_content_block() {
        let block = String::from_utf8(error_block("Error", "bad\n\"input\"")).unwrap();
        let lines: Vec<&str> = block.lines().collect();
        assert_eq!(lines.len(), 3, "{block}");
        assert_eq!(lines[0], format!("EVCXR_BEGIN_CONTENT {CELL_ERROR_MIME}"));
        let value: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(value["ename"], "Error");
        assert_eq!(value["evalue"], "bad\n\"input\"");
        assert_eq!(lines[2], "EVCXR_END_CONTENT");
    }

    /// The relay's protocol on a scripted stream: a `?` error's message is claimed from held
    /// stderr, a panic report becomes a block before evcxr's notice, other lines pass as-is.
    #[test]
    fn relay_marks_errors_and_panics_and_passes_the_rest() {
        let (out_r, out_w) = pipe().unwrap();
        let (err_r, err_w) = pipe().unwrap();
        let mut relay = Relay::new(out_w, err_w);
        relay.take_stdout(b"hello\n");
        relay.take_stderr(b"the file is missing\n");
        relay.take_stdout(b"EVCXR_ERROR_OCCURRED\nEVCXR_EXECUTION_COMPLETE\n");
        relay.take_stderr(b"\nthread '<unnamed>' panicked at src/lib.rs:9:1:\nboom\n");
        relay.take_stdout(b"EVCXR_PANIC_NOTIFICATION\nEVCXR_EXECUTION_COMPLETE\n");
        relay.take_stderr(b"a warning\n");
        relay.take_stdout(b"EVCXR_EXECUTION_COMPLETE\n");
        unsafe {
            libc::close(out_w);
            libc::close(err_w);
        }
        let mut buffer = vec![0u8; 1 << 16];
        let n = read(out_r, &mut buffer).unwrap();
        let out = String::from_utf8(buffer[..n].to_vec()).unwrap();
        let n = read(err_r, &mut buffer).unwrap();
        let err = String::from_utf8(buffer[..n].to_vec()).unwrap();
        let expected_out = format!(
            "hello\n{}EVCXR_ERROR_OCCURRED\nEVCXR_EXECUTION_COMPLETE\n{}EVCXR_PANIC_NOTIFICATION\nEVCXR_EXECUTION_COMPLETE\nEVCXR_EXECUTION_COMPLETE\n",
            String::from_utf8(error_block("Error", "the file is missing")).unwrap(),
            String::from_utf8(error_block("Panic", "boom (at src/lib.rs:9:1)")).unwrap(),
        );
        assert_eq!(out, expected_out);
        // Only the stderr that was no error's message or panic report reaches stderr.
        assert_eq!(err, "\na warning\n");
    }
}
