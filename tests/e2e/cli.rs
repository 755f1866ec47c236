//! The `fsd` command-line client (`create/get/set/ls/stat/rm`, `status`) and the four-letter
//! words, against a three-voter cluster.

use std::process::Output;
use std::time::Duration;

use crate::harness::*;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `fsd ARGS --server SERVER` and requires exit 0.
fn ok(server: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--server", server]);
    let o = fsd_cli(&all);
    assert!(
        o.status.success(),
        "fsd {all:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        describe_exit(&o.status),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs `fsd ARGS --server SERVER` and requires exit 1 with a one-line message on stderr.
fn fails(server: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--server", server]);
    let o = fsd_cli(&all);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "fsd {all:?} should exit 1; stdout:\n{}\nstderr:\n{err}",
        stdout(&o)
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "fsd {all:?}: one-line message on stderr, got:\n{err}"
    );
    assert!(!err.trim().is_empty(), "fsd {all:?}: a message on stderr");
    err.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_round_trip() {
    let cluster = Cluster::start(3);
    let server = cluster.node(1).client_addr();
    let s = server.as_str();

    ok(s, &["create", "/cli", "hello"]);
    assert_eq!(ok(s, &["get", "/cli"]).trim_end(), "hello");
    ok(s, &["set", "/cli", "world"]);
    assert_eq!(ok(s, &["get", "/cli"]).trim_end(), "world");
    ok(s, &["create", "/cli/child", "c"]);
    ok(s, &["create", "/cli/other"]);
    let ls = ok(s, &["ls", "/cli"]);
    let mut names: Vec<&str> = ls.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["child", "other"], "fsd ls /cli printed:\n{ls}");
    let stat = ok(s, &["stat", "/cli"]);
    let lower = stat.to_lowercase();
    assert!(
        lower.contains("version"),
        "fsd stat prints the versions:\n{stat}"
    );
    assert!(
        stat.contains('1'),
        "fsd stat /cli shows version 1 after one set:\n{stat}"
    );

    // Conditional set: the right version works, a stale one fails.
    ok(s, &["set", "/cli", "again", "--version", "1"]);
    let msg = fails(s, &["set", "/cli", "stale", "--version", "1"]);
    println!("stale set: {msg}");

    ok(s, &["rm", "/cli/child"]);
    let msg = fails(s, &["get", "/cli/child"]);
    println!("get of a missing node: {msg}");
    let msg = fails(s, &["create", "/cli/other"]);
    println!("create of an existing node: {msg}");
    let msg = fails(s, &["rm", "/cli"]);
    println!("rm of a non-empty node: {msg}");

    // What the CLI wrote is what a ZooKeeper client sees through another node.
    let c = zk_connect(&cluster.node(2).client_addr()).await;
    let c = &c;
    let (data, stat) = eventually(
        Duration::from_secs(10),
        "/cli = again via node 2",
        || async move { c.get_data("/cli").await.ok().filter(|(d, _)| d == b"again") },
    )
    .await;
    assert_eq!((data.as_slice(), stat.version), (&b"again"[..], 2));
    assert_eq!(c.list_children("/cli").await.unwrap(), ["other"]);

    ok(s, &["rm", "/cli/other"]);
    ok(s, &["rm", "/cli"]);
    fails(s, &["ls", "/cli"]);
}

fn status_json(admin: &str) -> serde_json::Value {
    let o = fsd_cli(&["status", "--admin", admin, "--json"]);
    assert!(
        o.status.success(),
        "fsd status --json: {}\n{}",
        describe_exit(&o.status),
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("fsd status --json is not JSON ({e}):\n{}", stdout(&o)))
}

#[test]
fn status_json_lists_three_members_with_one_leader() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_leader(Duration::from_secs(30));

    // Asked of the leader: every member, each with its status, exactly one of them leader.
    // Remote members' status may take a moment to be known, so poll the CLI itself.
    let leader_admin = cluster.node(leader).admin_addr().to_string();
    let status = wait_until(
        Duration::from_secs(30),
        "fsd status --json with every member's status",
        || {
            let v = status_json(&leader_admin);
            let members = v["members"].as_array()?;
            (members.len() == 3 && members.iter().all(|m| m["status"].is_object())).then_some(v)
        },
    );
    println!("fsd status --json (leader {leader}): {status:#}");
    let members = status["members"].as_array().expect("members");
    let mut ids: Vec<u64> = members
        .iter()
        .map(|m| m["id"].as_u64().expect("member id"))
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    for m in members {
        assert_eq!(m["voter"].as_bool(), Some(true), "member {m}");
        let addr = m["addr"].as_str().expect("member addr");
        let id = m["id"].as_u64().unwrap();
        assert_eq!(
            addr,
            cluster.node(id).peer_addr().to_string(),
            "member {id} addr"
        );
    }
    let leaders: Vec<u64> = members
        .iter()
        .filter(|m| m["status"]["role"].as_str() == Some("leader"))
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        leaders,
        [leader],
        "exactly one member is leader: {members:?}"
    );
    assert_eq!(status["node"]["id"].as_u64(), Some(leader));
    assert_eq!(status["node"]["role"].as_str(), Some("leader"));
    assert_eq!(status["node"]["leader"].as_u64(), Some(leader));
    for field in [
        "term",
        "last_log_index",
        "applied_index",
        "znodes",
        "sessions",
    ] {
        assert!(
            status["node"][field].is_u64(),
            "node.{field} is a number: {}",
            status["node"]
        );
    }
    assert!(
        status["watches"].is_u64() && status["connections"].is_u64(),
        "watch and connection counts"
    );

    // Asked of a follower: the same three members and the same leader.
    let follower = cluster
        .voter_ids()
        .into_iter()
        .find(|id| *id != leader)
        .unwrap();
    let v = status_json(&cluster.node(follower).admin_addr().to_string());
    let members = v["members"].as_array().expect("members");
    assert_eq!(
        members.len(),
        3,
        "follower {follower} lists three members: {v:#}"
    );
    assert_eq!(v["node"]["role"].as_str(), Some("follower"));
    assert_eq!(
        v["node"]["leader"].as_u64(),
        Some(leader),
        "follower {follower} knows the leader"
    );
    let other_leaders = members
        .iter()
        .filter(|m| {
            m["status"]["role"].as_str() == Some("leader") && m["id"].as_u64() != Some(leader)
        })
        .count();
    assert_eq!(
        other_leaders, 0,
        "no second leader in follower {follower}'s view: {v:#}"
    );
    let admin = cluster.node(follower).admin_addr().to_string();

    // The table form mentions the leader too.
    let o = fsd_cli(&["status", "--admin", &admin]);
    assert!(o.status.success(), "fsd status: {}", stderr(&o));
    assert!(
        stdout(&o).contains("leader"),
        "fsd status table:\n{}",
        stdout(&o)
    );

    // /health and the four-letter word on every node.
    for node in cluster.nodes() {
        assert!(node.healthy(), "node {} /health", node.id());
        assert_eq!(
            four_letter_word(node.client_socket(), "ruok").expect("ruok"),
            "imok",
            "node {} ruok",
            node.id()
        );
    }
}

/// `fsd watch --recursive` prints the events of the whole subtree, made through any node.
#[test]
fn watch_recursive_follows_the_subtree() {
    let cluster = Cluster::start(3);
    let (s1, s2) = (cluster.node(1).client_addr(), cluster.node(2).client_addr());
    ok(&s2, &["create", "/tree"]);
    let out = cluster.node(1).dir().join("watch.out");
    let mut watch = std::process::Command::new(FSD);
    watch
        .args(["watch", "--recursive", "/tree", "--server", &s1])
        .stdout(std::fs::File::create(&out).expect("watch.out"))
        .stderr(std::process::Stdio::piped());
    set_parent_death_signal(&mut watch);
    let mut guard = ChildGuard(Some(watch.spawn().expect("spawn fsd watch")));
    // The watch is registered once it says so on stderr.
    let stderr = guard
        .0
        .as_mut()
        .and_then(|c| c.stderr.take())
        .expect("stderr");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line).expect("banner");
    assert!(line.starts_with("watching /tree"), "{line}");

    ok(&s2, &["create", "/tree/a", "1"]);
    ok(&s2, &["create", "/tree/a/b", "2"]);
    ok(&s2, &["set", "/tree/a/b", "3"]);
    ok(&s2, &["rm", "/tree/a/b"]);
    let want = [
        "NodeCreated /tree/a",
        "NodeCreated /tree/a/b",
        "NodeDataChanged /tree/a/b",
        "NodeDeleted /tree/a/b",
    ];
    let got = wait_until(Duration::from_secs(10), "recursive watch events", || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= want.len()).then_some(lines)
    });
    assert_eq!(got, want);
    guard.kill9();
}
