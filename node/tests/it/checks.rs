//! `check` and `run` refuse what would start a node that never decides.

use std::process::Command;
use std::time::Duration;

use node::cluster::{init_cluster, ClusterSpec};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bftsim-node"))
}

/// A 4-agent cluster's files (no process), in a fresh directory.
fn files(name: &str) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let dir = std::env::temp_dir().join(format!("bftsim-node-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = ClusterSpec {
        agents: 4,
        base_port: 0,
        host: "127.0.0.1".into(),
        out: dir.clone(),
        evaluator: None,
        ports: Some((0..4).map(|i| (47_100 + i, 47_200 + i)).collect()),
    };
    let configs = init_cluster(&spec).unwrap_or_else(|e| panic!("init-cluster: {e}"));
    (dir, configs)
}

fn edit(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap_or_else(|e| panic!("{e}"));
}

/// Agent 1 configured with agent 2's key: `check` names the key_file line and exits non-zero;
/// `run` exits at once with the same message instead of starting, answering `/healthz` and
/// never deciding.
#[test]
fn a_node_with_another_agents_key_is_refused_by_check_and_run() {
    let (dir, configs) = files("wrong-key");
    let ok = bin().args(["check", "--config"]).arg(&configs[1]).output().unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    edit(&configs[1], "key_file = \"agent-1.key\"", "key_file = \"agent-2.key\"");
    let text = std::fs::read_to_string(&configs[1]).unwrap_or_default();
    let line = text.lines().position(|l| l.starts_with("key_file")).map_or(0, |i| i + 1);
    let expected = format!("{}:{line}:12: key_file agent-2.key holds agent 2's key", configs[1].display());

    let check = bin().args(["check", "--config"]).arg(&configs[1]).output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success() && stderr.starts_with(&expected), "{stderr}");

    let mut child = bin()
        .args(["run", "--config"])
        .arg(&configs[1])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the node with agent 2's key started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap_or_else(|| panic!("stderr"))).unwrap_or_default();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&expected) && stderr.contains("fix:"), "{stderr}");
    assert_eq!(stderr.matches("holds agent 2's key").count(), 1, "said once: {stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `check` reports every problem at its own line: a key that does not parse, `http` equal to
/// `listen`, `listen` equal to a peer's address, the opener's missing client key, a repeated
/// id at the repeating entry.
#[test]
fn check_reports_every_problem_at_its_line() {
    let (dir, configs) = files("check-all");
    let path = &configs[0];
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line_of = |needle: &str| text.lines().position(|l| l.starts_with(needle)).map_or(0, |i| i + 1);
    let peer3_id = text.lines().position(|l| l == "id = 3").map_or(0, |i| i + 1);
    let peer1_public = text.lines().skip(line_of("id = 1")).find(|l| l.starts_with("public_key")).unwrap_or_default();
    edit(path, peer1_public, "public_key = \"00\"");
    edit(path, "http = \"127.0.0.1:47200\"", "http = \"127.0.0.1:47100\"");
    edit(path, "address = \"127.0.0.1:47102\"", "address = \"127.0.0.1:47100\"");
    edit(path, "key_file = \"client.key\"", "key_file = \"no-such-client.key\"");
    edit(path, "id = 3\n", "id = 1\n");
    let out = bin().args(["check", "--config"]).arg(path).output().unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let at = |line: usize, what: &str| format!("{}:{line}:", path.display()) + what;
    let expected = [
        at(peer3_id, "6: [[peers]] id = 1 repeats the id"),
        at(0, "") + "agent 1: public_key \"00\"",
        at(line_of("http ="), "8: http 127.0.0.1:47100 is also this agent's listen address"),
        "[[peers]] id = 2 address 127.0.0.1:47100 is also this agent's listen address".into(),
        at(line_of("key_file = \"no-such"), "12: [client] key_file no-such-client.key: cannot read"),
    ];
    for e in expected {
        let e = e.replace(&format!("{}:0:", path.display()), "");
        assert!(stderr.contains(&e), "missing {e:?} in:\n{stderr}");
    }
    assert!(stderr.contains("5 problem(s)"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
