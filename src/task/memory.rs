//! The memory the process may use, for maxBytesInMemory's default: the
//! cgroup's limit where one is set (a container's, v2 `memory.max` or v1
//! `memory.limit_in_bytes`), else the machine's (`/proc/meminfo`). Druid
//! takes a sixth of the JVM heap; a native process has no heap, so a sixth
//! of this stands in for it.

use std::path::{Path, PathBuf};

/// Where to look: the cgroup limit files in the order tried, and meminfo.
pub(super) struct MemorySources {
    pub cgroup_limits: Vec<PathBuf>,
    pub meminfo: PathBuf,
}

impl MemorySources {
    /// This process's: its own cgroup's files (from /proc/self/cgroup),
    /// then the root's (a container usually sees its own cgroup there).
    pub fn of_this_process() -> MemorySources {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        MemorySources {
            cgroup_limits: cgroup_limit_files(&own, Path::new("/sys/fs/cgroup")),
            meminfo: PathBuf::from("/proc/meminfo"),
        }
    }

    /// The bytes the process may use: the smaller of the first cgroup limit
    /// set and the machine's memory; None when neither can be read.
    pub fn limit(&self) -> Option<u64> {
        let machine = std::fs::read_to_string(&self.meminfo)
            .ok()
            .and_then(|t| mem_total(&t));
        let cgroup = self
            .cgroup_limits
            .iter()
            .find_map(|p| parse_limit(&std::fs::read_to_string(p).ok()?));
        match (cgroup, machine) {
            (Some(c), Some(m)) => Some(c.min(m)),
            (c, m) => c.or(m),
        }
    }
}

/// The limit files to try, given /proc/self/cgroup's text: v2 (`0::/path`)
/// and v1 (`N:...memory...:/path`) under `root`, each process's own
/// cgroup first, then the root cgroup.
fn cgroup_limit_files(proc_self_cgroup: &str, root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            files.push(root.join(rel).join("memory.max"));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push(root.join("memory").join(rel).join("memory.limit_in_bytes"));
        }
    }
    files.push(root.join("memory.max"));
    files.push(root.join("memory/memory.limit_in_bytes"));
    files.dedup();
    files
}

/// A limit file's value: "max" (v2) is no limit; v1's "no limit" is a huge
/// number, which the machine's memory then bounds.
fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|n| *n > 0)
}

/// MemTotal from /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16384000 kB\nMemFree:         1000 kB\n";

    fn sources(dir: &Path, files: &[(&str, &str)]) -> MemorySources {
        let mut limits = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            limits.push(path);
        }
        std::fs::write(dir.join("meminfo"), MEMINFO).unwrap();
        MemorySources {
            cgroup_limits: limits,
            meminfo: dir.join("meminfo"),
        }
    }

    #[test]
    fn a_cgroup_limit_wins_over_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(dir.path(), &[("v2/memory.max", "2147483648\n")]);
        assert_eq!(s.limit(), Some(2 << 30));
        // v1's value, read when v2 has none.
        let s = sources(
            dir.path(),
            &[
                ("a/memory.max", "max\n"),
                ("b/memory.limit_in_bytes", "1073741824\n"),
            ],
        );
        assert_eq!(s.limit(), Some(1 << 30));
    }

    #[test]
    fn no_limit_means_the_machines_memory() {
        let dir = tempfile::tempdir().unwrap();
        let machine = 16_384_000 * 1024;
        // v2 "max", v1's "unlimited" (a page-rounded i64::MAX), a missing file.
        let s = sources(
            dir.path(),
            &[
                ("v2/memory.max", "max\n"),
                ("v1/memory.limit_in_bytes", "9223372036854771712\n"),
            ],
        );
        assert_eq!(s.limit(), Some(machine));
        let s = MemorySources {
            cgroup_limits: vec![dir.path().join("missing")],
            meminfo: dir.path().join("meminfo"),
        };
        assert_eq!(s.limit(), Some(machine));
        // Neither readable, or garbage: None (the caller has a fallback).
        let s = MemorySources {
            cgroup_limits: vec![dir.path().join("missing")],
            meminfo: dir.path().join("missing"),
        };
        assert_eq!(s.limit(), None);
        assert_eq!(parse_limit("12abc"), None);
        assert_eq!(parse_limit("0"), None);
    }

    #[test]
    fn the_processs_own_cgroup_is_tried_first() {
        let root = Path::new("/cg");
        let v2 = cgroup_limit_files("0::/kubepods/pod1/c1\n", root);
        assert_eq!(
            v2,
            vec![
                PathBuf::from("/cg/kubepods/pod1/c1/memory.max"),
                PathBuf::from("/cg/memory.max"),
                PathBuf::from("/cg/memory/memory.limit_in_bytes"),
            ]
        );
        let v1 = cgroup_limit_files("12:cpu,cpuacct:/x\n4:memory:/docker/abc\n", root);
        assert_eq!(
            v1[0],
            PathBuf::from("/cg/memory/docker/abc/memory.limit_in_bytes")
        );
        // The root cgroup ("0::/"): the root's file, once.
        let root_only = cgroup_limit_files("0::/\n", root);
        assert_eq!(root_only[0], PathBuf::from("/cg/memory.max"));
        assert_eq!(root_only.len(), 2);
    }
}
