//! A learner (`--join`) started after the tree was written gets the whole tree, serves reads
//! from its own replica, follows later writes, forwards its clients' writes, and shows up as
//! a non-voting member.

use std::time::Duration;

use crate::harness::*;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_joining_later_gets_the_whole_tree() {
    let mut cluster = Cluster::start(3);
    let ids = cluster.voter_ids();
    let c = zk_connect(&cluster.connect_string(&ids)).await;

    let mut tree: Vec<(String, Vec<u8>)> = vec![
        ("/app".into(), b"root".to_vec()),
        ("/app/config".into(), b"v1".to_vec()),
        ("/app/tasks".into(), vec![]),
        ("/app/deep".into(), vec![]),
        ("/app/deep/a".into(), vec![]),
        ("/app/deep/a/b".into(), vec![]),
        ("/app/deep/a/b/c".into(), b"leaf".to_vec()),
    ];
    tree.extend((0..100).map(|i| {
        (
            format!("/app/tasks/t{i:03}"),
            format!("task {i}").into_bytes(),
        )
    }));
    for (path, data) in &tree {
        c.create(path, data, &persistent())
            .await
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
    }
    c.set_data("/app/config", b"v2", Some(0))
        .await
        .expect("set /app/config");
    tree[1].1 = b"v2".to_vec();

    let learner = cluster.add_learner();
    let node = cluster.node(learner);
    let role = wait_until(TIMEOUT, "the learner's /status role", || node.role());
    assert_eq!(
        role,
        "learner",
        "node {learner} /status: {:?}",
        node.status()
    );

    // The whole tree, read through the learner's own client port.
    let lc = zk_connect(&node.client_addr()).await;
    let lc = &lc;
    eventually(
        TIMEOUT,
        "the learner to hold all of /app/tasks",
        || async move { (lc.list_children("/app/tasks").await.ok()?.len() == 100).then_some(()) },
    )
    .await;
    for (path, data) in &tree {
        let (got, _) = lc
            .get_data(path)
            .await
            .unwrap_or_else(|e| panic!("learner: get {path}: {e}"));
        assert_eq!(&got, data, "learner: data of {path}");
    }
    let (_, stat) = lc.get_data("/app/config").await.unwrap();
    assert_eq!(stat.version, 1, "learner: version of /app/config");

    // Later writes through a voter reach it.
    c.set_data("/app/config", b"v3", Some(1))
        .await
        .expect("set /app/config v3");
    eventually(
        TIMEOUT,
        "the learner to see /app/config = v3",
        || async move {
            lc.get_data("/app/config")
                .await
                .ok()
                .filter(|(d, _)| d == b"v3")
        },
    )
    .await;

    // Its clients' writes are forwarded and reach the voters.
    lc.create("/app/from-learner", b"hi", &persistent())
        .await
        .expect("write through the learner");
    let cr = &c;
    eventually(
        TIMEOUT,
        "the learner's write visible via the voters",
        || async move {
            cr.get_data("/app/from-learner")
                .await
                .ok()
                .filter(|(d, _)| d == b"hi")
        },
    )
    .await;

    // The leader lists it as a non-voting member.
    let leader = cluster.wait_leader(TIMEOUT);
    let member = wait_until(
        TIMEOUT,
        "the learner in the leader's /status members",
        || {
            let s = cluster.node(leader).status()?;
            s["members"]
                .as_array()?
                .iter()
                .find(|m| m["id"].as_u64() == Some(learner))
                .cloned()
        },
    );
    assert_eq!(
        member["voter"].as_bool(),
        Some(false),
        "learner member entry: {member}"
    );
    assert_eq!(cluster.node(learner).role().as_deref(), Some("learner"));
}

/// `fsd members` changes the membership online: a learner is promoted to voter, the cluster
/// keeps committing with four voters, and removing it again leaves three; bad requests get a
/// one-line error and a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_promote_and_remove_online() {
    let mut cluster = Cluster::start(3);
    let learner = cluster.add_learner();
    let admin = cluster.node(1).admin_addr().to_string();
    let members = || -> String {
        let out = fsd_cli(&["members", "list", "--admin", &admin]);
        assert!(out.status.success(), "members list: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(TIMEOUT, "the learner listed as a learner", || {
        members()
            .lines()
            .any(|l| l.starts_with(&format!("{learner} ")) && l.ends_with("learner"))
            .then_some(())
    });

    let out = fsd_cli(&[
        "members",
        "promote",
        &learner.to_string(),
        "--admin",
        &admin,
    ]);
    assert!(out.status.success(), "promote: {out:?}");
    let list = members();
    assert_eq!(
        list.lines().filter(|l| l.ends_with("voter")).count(),
        4,
        "after promote:\n{list}"
    );

    // Writes still commit with four voters, through the promoted node too.
    let c = zk_connect(&cluster.node(learner).client_addr()).await;
    c.create("/after-promote", b"x", &persistent())
        .await
        .expect("write through the promoted node");

    let out = fsd_cli(&["members", "remove", &learner.to_string(), "--admin", &admin]);
    assert!(out.status.success(), "remove: {out:?}");
    let list = members();
    assert_eq!(list.lines().count(), 3, "after remove:\n{list}");
    assert!(
        !list.lines().any(|l| l.starts_with(&format!("{learner} "))),
        "after remove:\n{list}"
    );

    // Unknown node: refused with a message, nothing changed.
    let out = fsd_cli(&["members", "promote", "99", "--admin", &admin]);
    assert!(
        !out.status.success(),
        "promote of an unknown node succeeded: {out:?}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("99"), "error names the node: {err}");
    assert_eq!(members().lines().count(), 3);

    let c1 = zk_connect(&cluster.node(1).client_addr()).await;
    c1.create("/after-remove", b"y", &persistent())
        .await
        .expect("write after the removal");
}
