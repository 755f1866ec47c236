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
