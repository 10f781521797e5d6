//! A `kinesis-peon` child process whose log (stderr) is read line by line
//! as it comes, so a test can act when a line appears.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: a deadline for a condition, not a measurement.
const DEADLINE: Duration = Duration::from_secs(300);

pub struct LoggedRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: String,
}

impl LoggedRun {
    /// Start `cmd` at log level info, its stdout kept for `finish`.
    pub fn start(mut cmd: Command) -> LoggedRun {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LoggedRun {
            child,
            lines,
            log: String::new(),
        }
    }

    /// Read the log until `count` lines containing `needle` have come
    /// (counted from the start of the run).
    pub fn wait_for(&mut self, needle: &str, count: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.log.matches(needle).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                }
                Err(e) => panic!("waiting for {count} x {needle:?}: {e}\n{}", self.log),
            }
        }
    }

    /// Send `signal` (`-TERM`, `-STOP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Wait for the exit: its output, and the whole log.
    pub fn finish(mut self) -> (Output, String) {
        let out = self.child.wait_with_output().unwrap();
        for line in self.lines.iter() {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (out, self.log)
    }
}
