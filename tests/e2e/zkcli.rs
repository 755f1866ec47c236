//! Debian's `zkCli.sh` (the Java client ZooKeeper ships) against a three-voter cluster:
//! create, get, set, ls, stat and delete, in one batched JVM run, checked through another node.

use std::time::Duration;

use crate::harness::*;
use crate::zk::{zkcli, zkcli_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkcli_round_trip() {
    let zkcli_sh = match zkcli_path() {
        Ok(path) => path,
        Err(why) => {
            println!("SKIP zkcli_round_trip: {why}");
            return;
        }
    };
    let cluster = Cluster::start(3);
    let server = cluster.node(2).client_addr();

    let out = zkcli(
        &zkcli_sh,
        &server,
        &[
            "create /x data",
            "get /x",
            "set /x v2",
            "get /x",
            "create /x/child c",
            "ls /",
            "ls /x",
            "stat /x",
            "delete /x/child",
            "get /x/child",
        ],
    );
    let all = out.all();
    assert!(all.contains("Created /x"), "create /x confirmed");
    assert!(
        all.contains("Created /x/child"),
        "create /x/child confirmed"
    );
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    let data_at = lines
        .iter()
        .position(|l| *l == "data")
        .expect("`get /x` printed `data`");
    assert!(
        lines[data_at..].contains(&"v2"),
        "`get /x` after `set /x v2` printed `v2`"
    );
    let root = lines
        .iter()
        .find(|l| l.starts_with('[') && l.contains('x'))
        .unwrap_or_else(|| {
            panic!(
                "`ls /` printed a list containing x; stdout:\n{}",
                out.stdout
            )
        });
    assert!(
        root.trim_matches(['[', ']']).split(", ").any(|n| n == "x"),
        "`ls /` lists x: {root}"
    );
    assert!(lines.contains(&"[child]"), "`ls /x` lists child");
    assert!(
        lines.contains(&"dataVersion = 1"),
        "`stat /x` shows dataVersion = 1"
    );
    assert!(
        lines.contains(&"numChildren = 1"),
        "`stat /x` shows numChildren = 1"
    );
    assert!(
        all.contains("Node does not exist: /x/child"),
        "get after delete reports NoNode"
    );

    // What zkCli did is what the crate sees through another node.
    let c = zk_connect(&cluster.node(3).client_addr()).await;
    let c = &c;
    let (data, stat) = eventually(
        Duration::from_secs(10),
        "/x = v2 via node 3",
        || async move { c.get_data("/x").await.ok().filter(|(d, _)| d == b"v2") },
    )
    .await;
    assert_eq!(
        (data.as_slice(), stat.version, stat.num_children),
        (&b"v2"[..], 1, 0)
    );

    // Second (and last) JVM run: delete, then list.
    let out = zkcli(
        &zkcli_sh,
        &cluster.node(1).client_addr(),
        &["delete /x", "ls /", "get /x"],
    );
    assert!(
        out.all().contains("Node does not exist: /x"),
        "get /x after delete reports NoNode"
    );
    eventually(
        Duration::from_secs(10),
        "/x gone via node 3",
        || async move { (c.check_stat("/x").await.ok()?.is_none()).then_some(()) },
    )
    .await;
}
