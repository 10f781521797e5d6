//! A test server (kinesalite, moto, Azurite, s3rver) as a child process on
//! a loopback port, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A test server process on a loopback port, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start `cmd` and read its standard output until `ready` finds the
    /// port in a line (the servers print it once they listen).
    pub fn spawn(mut cmd: Command, what: &str, ready: impl Fn(&str) -> Option<u16>) -> Server {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} runs (scripts/test installs it): {e}"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(port) = ready(&line) {
                        break port;
                    }
                }
                other => panic!("{what} did not start: {other:?}"),
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, port }
    }

    /// A server started on a known `port` that says nothing when ready:
    /// ready once the port accepts a connection.
    pub fn await_port(mut child: Child, port: u16, what: &str) -> Server {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{what} did not listen on {port}");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{what} exited: {status}");
            }
            std::thread::yield_now();
        }
        Server { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
