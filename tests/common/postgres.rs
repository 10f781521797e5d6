//! A PostgreSQL server of its own for one test (Debian's binaries, which
//! scripts/test installs), on a free loopback port, with the database
//! `druid` that a Druid cluster's metadata store would be. It can be
//! stopped and started again mid-test. Run as the postgres user when the
//! tests run as root (initdb refuses root).

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    pub fn start(name: &str) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries (scripts/test installs Debian's postgresql)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()
            .expect("an initdb under /usr/lib/postgresql");
        let as_postgres = running_as_root();
        let port = free_port();
        // Under /var/tmp: the postgres user cannot enter root's home.
        let dir = PathBuf::from(format!("/var/tmp/kinesis-peon-test-pg-{name}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pg = Postgres {
            bin,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            assert!(
                Command::new("chown")
                    .args(["postgres"])
                    .arg(&pg.dir)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        pg.pg_tool(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        pg.resume();
        pg.psql("create role druid login password 'druid'");
        pg.psql("create database druid owner druid");
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").to_string_lossy().into_owned()
    }

    fn pg_tool(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-qAt", "-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start the server (again); returns once it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("pg.log").to_string_lossy().into_owned();
        self.pg_tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stop the server (fast shutdown: open connections are closed).
    pub fn stop(&self) {
        self.pg_tool("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Runtime properties that point the peon's metadata store here, as a
    /// Druid cluster's would.
    pub fn properties(&self) -> Vec<(String, String)> {
        self.properties_of("druid")
    }

    /// A new database `name` (plain letters, digits, `_`), and the
    /// properties that point the metadata store at it.
    pub fn database_properties(&self, name: &str) -> Vec<(String, String)> {
        self.psql(&format!("create database {name} owner druid"));
        self.properties_of(name)
    }

    fn properties_of(&self, database: &str) -> Vec<(String, String)> {
        [
            ("druid.metadata.storage.type", "postgresql".to_string()),
            (
                "druid.metadata.storage.connector.connectURI",
                format!("jdbc:postgresql://127.0.0.1:{}/{database}", self.port),
            ),
            ("druid.metadata.storage.connector.user", "druid".into()),
            ("druid.metadata.storage.connector.password", "druid".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The effective uid, as /proc tells it.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
