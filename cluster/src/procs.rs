//! The `bftsim-node` processes of one run: spawned, killed (SIGKILL), paused (SIGSTOP) and
//! resumed (SIGCONT) by the harness, and always killed when the [`Nodes`] value is dropped (a
//! failed check, an error and a panic all drop it), so no run leaves processes behind.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// What the harness believes about one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Running.
    Up,
    /// Stopped with SIGSTOP.
    Paused,
    /// Killed with SIGKILL (or never started).
    Down,
}

/// One node process and how to start it again.
struct Node {
    config: PathBuf,
    log: PathBuf,
    byzantine: Option<String>,
    child: Option<Child>,
    status: Status,
}

/// Every node of the run.
pub struct Nodes {
    binary: PathBuf,
    nodes: Vec<Node>,
}

/// Where the `bftsim-node` binary is: `explicit`, else `$BFTSIM_NODE`, else next to the running
/// executable (or one directory up, where cargo puts binaries beside `deps/`).
pub fn find_node_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() { Ok(p.to_path_buf()) } else { Err(format!("{}: no such file", p.display())) };
    }
    if let Some(p) = std::env::var_os("BFTSIM_NODE") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("bftsim-node");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(format!(
        "no bftsim-node binary next to {}; fix: `cargo build -p node` (same profile), or pass --node-bin \
         (or set BFTSIM_NODE)",
        exe.display()
    ))
}

impl Nodes {
    /// Nodes for `configs` (not started yet); node i writes its output to `logs[i]` and runs
    /// with `byzantine[i]`'s strategy when set.
    pub fn new(binary: PathBuf, configs: Vec<PathBuf>, logs: Vec<PathBuf>, byzantine: Vec<Option<String>>) -> Nodes {
        let nodes = configs
            .into_iter()
            .zip(logs)
            .zip(byzantine)
            .map(|((config, log), byzantine)| Node { config, log, byzantine, child: None, status: Status::Down })
            .collect();
        Nodes { binary, nodes }
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node i's status.
    pub fn status(&self, i: usize) -> Status {
        self.nodes.get(i).map_or(Status::Down, |n| n.status)
    }

    /// Node i's output so far (for failure messages).
    pub fn output(&self, i: usize) -> String {
        self.nodes.get(i).and_then(|n| std::fs::read_to_string(&n.log).ok()).unwrap_or_default()
    }

    /// Starts node i (again); its output is appended to its log file.
    pub fn start(&mut self, i: usize) -> std::io::Result<()> {
        let binary = self.binary.clone();
        let node = self.nodes.get_mut(i).ok_or_else(|| std::io::Error::other(format!("no node {i}")))?;
        if node.child.is_some() {
            return Ok(());
        }
        let out = OpenOptions::new().create(true).append(true).open(&node.log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&binary);
        cmd.arg("run").arg("--config").arg(&node.config);
        if let Some(strategy) = &node.byzantine {
            cmd.arg("--byzantine").arg(strategy);
        }
        node.child = Some(cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn()?);
        node.status = Status::Up;
        Ok(())
    }

    /// Crash: SIGKILL, then reaps it. A paused process dies too (SIGKILL needs no SIGCONT).
    pub fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i) {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            node.status = Status::Down;
        }
    }

    /// Pause: SIGSTOP (the process keeps its sockets; the kernel buffers what peers send).
    pub fn pause(&mut self, i: usize) -> Result<(), String> {
        self.signal(i, Signal::SIGSTOP, Status::Paused)
    }

    /// Resume after [`Nodes::pause`]: SIGCONT.
    pub fn resume(&mut self, i: usize) -> Result<(), String> {
        self.signal(i, Signal::SIGCONT, Status::Up)
    }

    fn signal(&mut self, i: usize, signal: Signal, then: Status) -> Result<(), String> {
        let node = self.nodes.get_mut(i).ok_or_else(|| format!("no node {i}"))?;
        let Some(child) = &node.child else { return Err(format!("node {i} is not running")) };
        let pid = i32::try_from(child.id()).map_err(|_| format!("node {i}: pid out of range"))?;
        kill(Pid::from_raw(pid), signal).map_err(|e| format!("{signal} to node {i} (pid {pid}): {e}"))?;
        node.status = then;
        Ok(())
    }

    /// Node i's exit status if it exited on its own (a node that refused to start, or died).
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let node = self.nodes.get_mut(i)?;
        let status = node.child.as_mut()?.try_wait().ok().flatten()?;
        node.child = None;
        node.status = Status::Down;
        Some(status)
    }

    /// Kills every node.
    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.crash(i);
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_binary_that_does_not_exist_is_refused_with_the_path() {
        let err = find_node_binary(Some(Path::new("/nonexistent/bftsim-node"))).unwrap_err();
        assert!(err.contains("/nonexistent/bftsim-node"), "{err}");
    }

    #[test]
    fn signals_to_a_node_that_is_not_running_are_refused() {
        let mut nodes = Nodes::new(PathBuf::from("/bin/true"), vec![PathBuf::new()], vec![PathBuf::new()], vec![None]);
        assert!(nodes.pause(0).unwrap_err().contains("not running"));
        assert!(nodes.resume(7).unwrap_err().contains("no node 7"));
        assert_eq!(nodes.status(0), Status::Down);
    }
}
