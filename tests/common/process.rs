//! Guards for third-party processes in tests: spawn under `lifeline.py`, read their output in
//! threads, wait on what they report with a timeout, and stop them on Drop (panics included);
//! and the command lines that keep a btvod process on loopback.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Read;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The interpreter Debian's python3-libtorrent imports under; also runs `lifeline.py`.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Flags that keep a btvod client's peer side on 127.0.0.1, on a port the OS picks.
pub const LOOPBACK_FLAGS: [&str; 4] = ["--port", "0", "--bind", "127.0.0.1"];

/// A btvod command line for a test: `head`, the loopback flags, then `tail`.
pub fn loopback_command(head: &[&str], tail: &[&str]) -> Vec<String> {
    head.iter()
        .chain(&LOOPBACK_FLAGS)
        .chain(tail)
        .map(|s| s.to_string())
        .collect()
}
const LIFELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/lifeline.py");
/// Lines of each output stream kept for failure messages.
const TAIL_LINES: usize = 40;
/// How long Drop waits for the lifeline to stop its command before killing the lifeline.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// A value some threads update and others wait on, with a deadline.
pub struct Watched<T> {
    value: Mutex<T>,
    changed: Condvar,
}

impl<T> Watched<T> {
    pub fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            changed: Condvar::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        // A panicking test thread must not hide the state from the guard that reports it.
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn update(&self, change: impl FnOnce(&mut T)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `check` returns `Some`, or `timeout` passes (then `None`).
    pub fn wait_for<R>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&T) -> Option<R>,
    ) -> Option<R> {
        let deadline = Instant::now() + timeout;
        let mut value = self.lock();
        loop {
            if let Some(found) = check(&value) {
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            value = self
                .changed
                .wait_timeout(value, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// What a reader thread saw on one output stream.
pub enum OutputLine<'a> {
    Line(&'a str),
    Closed,
}

/// A spawned program that is stopped when this guard drops: its stdin is a pipe to
/// `lifeline.py`, which stops the program when the pipe closes, so even a test process killed
/// outright leaves no orphan. Drop closes the pipe, waits, then kills the lifeline by PID.
pub struct ProcessGuard {
    name: String,
    child: Mutex<Child>,
    lifeline: Mutex<Option<ChildStdin>>,
    stdout_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ProcessGuard {
    /// Starts `program args...` in `dir`; `on_stdout` sees every stdout line, then `Closed`.
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        dir: &Path,
        on_stdout: impl FnMut(OutputLine<'_>) + Send + 'static,
    ) -> Result<Self, String> {
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg(LIFELINE)
            .arg(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| {
                format!("cannot start {name} ({SYSTEM_PYTHON} {LIFELINE} {program}): {err}")
            })?;
        let lifeline = child.stdin.take();
        let stdout_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stdout) = child.stdout.take() {
            let tail = Arc::clone(&stdout_tail);
            let mut on_stdout = on_stdout;
            thread::spawn(move || {
                read_lines(stdout, &tail, &mut on_stdout);
                on_stdout(OutputLine::Closed);
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            thread::spawn(move || read_lines(stderr, &tail, &mut |_| {}));
        }
        Ok(Self {
            name: name.to_string(),
            child: Mutex::new(child),
            lifeline: Mutex::new(lifeline),
            stdout_tail,
            stderr_tail,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .id()
    }

    /// The exit status if the program has ended.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the program to end by itself.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} still running after {timeout:?}\n{}",
                    self.name,
                    self.report()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the program (idempotent): close the lifeline, which asks the program to stop
    /// (SIGTERM, SIGKILL 5 s later), wait, then kill the lifeline itself. Returns how the
    /// program ended as the lifeline relays it (128 + N for signal N), or `None` if the
    /// lifeline had to be killed.
    pub fn stop(&self) -> Option<ExitStatus> {
        drop(
            self.lifeline
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        match self.wait_exit(STOP_GRACE) {
            Ok(status) => Some(status),
            Err(_) => {
                let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// The last lines of the program's stdout and stderr, for failure messages.
    pub fn report(&self) -> String {
        let join = |tail: &Mutex<VecDeque<String>>| {
            let lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
            lines
                .iter()
                .map(|line| format!("    {line}\n"))
                .collect::<String>()
        };
        format!(
            "--- {} stdout (last lines):\n{}--- {} stderr (last lines):\n{}",
            self.name,
            join(&self.stdout_tail),
            self.name,
            join(&self.stderr_tail)
        )
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Splits a stream on `\n` and `\r` (Transmission redraws its progress line with `\r`).
fn read_lines(
    mut stream: impl Read,
    tail: &Mutex<VecDeque<String>>,
    on_line: &mut dyn FnMut(OutputLine<'_>),
) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(read @ 1..) = stream.read(&mut chunk) {
        pending.extend_from_slice(&chunk[..read]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n' || b == b'\r') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            deliver(&line, tail, on_line);
        }
    }
    deliver(&pending, tail, on_line);
}

fn deliver(line: &[u8], tail: &Mutex<VecDeque<String>>, on_line: &mut dyn FnMut(OutputLine<'_>)) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    let mut lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
    if lines.len() == TAIL_LINES {
        lines.pop_front();
    }
    lines.push_back(text.to_string());
    drop(lines);
    on_line(OutputLine::Line(text));
}
