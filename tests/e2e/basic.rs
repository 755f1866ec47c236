//! Three voters through the ZooKeeper client port: a write through any node is read through
//! every node; create/get/set/children/delete with versions; sequential names; ephemerals end
//! with their session (closed, dropped connection, killed client process).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client::Error as ZkError;

use crate::harness::*;

const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_any_node_is_read_through_every_node() {
    let cluster = Cluster::start(3);
    let ids = cluster.voter_ids();
    let mut clients = Vec::new();
    for id in &ids {
        clients.push((*id, zk_connect(&cluster.node(*id).client_addr()).await));
    }

    clients[0]
        .1
        .create("/repl", b"", &persistent())
        .await
        .expect("create /repl");
    for (id, c) in &clients {
        let path = format!("/repl/from-{id}");
        c.create(
            &path,
            format!("written via node {id}").as_bytes(),
            &persistent(),
        )
        .await
        .unwrap_or_else(|e| panic!("create {path} via node {id}: {e}"));
    }
    for (src, _) in &clients {
        let path = format!("/repl/from-{src}");
        let want = format!("written via node {src}").into_bytes();
        for (dst, c) in &clients {
            let (p, w) = (path.as_str(), &want);
            eventually(
                READ_TIMEOUT,
                &format!("{path} (written via node {src}) readable via node {dst}"),
                || async move {
                    match c.get_data(p).await {
                        Ok((data, _)) if &data == w => Some(()),
                        _ => None,
                    }
                },
            )
            .await;
        }
    }
    // Every node lists the same children.
    for (dst, c) in &clients {
        let mut kids = c
            .list_children("/repl")
            .await
            .unwrap_or_else(|e| panic!("ls /repl via {dst}: {e}"));
        kids.sort();
        let want: Vec<String> = ids.iter().map(|id| format!("from-{id}")).collect();
        assert_eq!(kids, want, "children of /repl via node {dst}");
    }

    // The basic operations, with versions, through a follower.
    let follower = ids
        .iter()
        .copied()
        .find(|id| Some(*id) != cluster.leader())
        .expect("a follower");
    let c = &clients.iter().find(|(id, _)| *id == follower).unwrap().1;
    let other = &clients.iter().find(|(id, _)| *id != follower).unwrap().1;

    let (stat, _) = c
        .create("/crud", b"v0", &persistent())
        .await
        .expect("create /crud");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 2);
    assert_eq!(
        c.create("/crud", b"again", &persistent())
            .await
            .unwrap_err(),
        ZkError::NodeExists
    );

    let (data, stat) = c.get_data("/crud").await.expect("get /crud");
    assert_eq!((data.as_slice(), stat.version), (&b"v0"[..], 0));

    let stat = c
        .set_data("/crud", b"v1", Some(0))
        .await
        .expect("set /crud at version 0");
    assert_eq!(stat.version, 1);
    assert_eq!(
        c.set_data("/crud", b"stale", Some(0)).await.unwrap_err(),
        ZkError::BadVersion,
        "set with a stale version"
    );
    let stat = c
        .set_data("/crud", b"v2", None)
        .await
        .expect("unconditional set");
    assert_eq!(stat.version, 2);
    let (data, stat) = c.get_data("/crud").await.unwrap();
    assert_eq!(
        (data.as_slice(), stat.version),
        (&b"v2"[..], 2),
        "the stale set changed nothing"
    );

    c.create("/crud/a", b"", &persistent())
        .await
        .expect("create /crud/a");
    c.create("/crud/b", b"bee", &persistent())
        .await
        .expect("create /crud/b");
    let (mut kids, stat) = c.get_children("/crud").await.expect("get_children /crud");
    kids.sort();
    assert_eq!(kids, ["a", "b"]);
    assert_eq!(stat.num_children, 2);
    assert_eq!(
        c.create("/nope/child", b"", &persistent())
            .await
            .unwrap_err(),
        ZkError::NoNode
    );
    assert_eq!(c.get_data("/crud/zzz").await.unwrap_err(), ZkError::NoNode);
    assert_eq!(c.check_stat("/crud/zzz").await.unwrap(), None);

    // The same state is visible through another node once it has caught up.
    eventually(READ_TIMEOUT, "/crud/b via another node", || async move {
        other
            .get_data("/crud/b")
            .await
            .ok()
            .filter(|(d, _)| d == b"bee")
    })
    .await;

    assert_eq!(
        c.delete("/crud", None).await.unwrap_err(),
        ZkError::NotEmpty
    );
    assert_eq!(
        c.delete("/crud/a", Some(5)).await.unwrap_err(),
        ZkError::BadVersion
    );
    c.delete("/crud/a", Some(0))
        .await
        .expect("delete /crud/a at version 0");
    c.delete("/crud/b", None).await.expect("delete /crud/b");
    assert_eq!(
        c.delete("/crud/b", None).await.unwrap_err(),
        ZkError::NoNode
    );
    assert_eq!(
        c.delete("/crud", Some(1)).await.unwrap_err(),
        ZkError::BadVersion
    );
    c.delete("/crud", Some(2))
        .await
        .expect("delete /crud at version 2");
    assert_eq!(c.get_data("/crud").await.unwrap_err(), ZkError::NoNode);
    eventually(READ_TIMEOUT, "/crud gone via another node", || async move {
        (other.check_stat("/crud").await.ok()?.is_none()).then_some(())
    })
    .await;

    // Sequential names come from the parent's counter, %010d.
    c.create("/seq", b"", &persistent()).await.unwrap();
    let (_, s0) = c
        .create("/seq/job-", b"", &sequential())
        .await
        .expect("sequential create");
    let (_, s1) = other
        .create("/seq/job-", b"", &sequential())
        .await
        .expect("sequential create via another node");
    assert_eq!((s0.into_i64(), s1.into_i64()), (0, 1));
    // Sequentially consistent reads: `c`'s node sees the other node's create once applied.
    eventually(
        READ_TIMEOUT,
        "both sequential znodes via the first node",
        || async move {
            let mut kids = c.list_children("/seq").await.ok()?;
            kids.sort();
            (kids == ["job-0000000000", "job-0000000001"]).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemerals_end_with_their_session() {
    let cluster = Cluster::start(3);
    let observer = zk_connect(&cluster.node(3).client_addr()).await;
    let obs = &observer;

    // 1. The owner closes its session: the znode goes at once (well within a session timeout).
    let owner = zk_connect(&cluster.node(1).client_addr()).await;
    assert!(
        owner.session_timeout() <= Duration::from_millis(2000),
        "session timeout negotiated with --tick-ms {TICK_MS}: {:?}",
        owner.session_timeout()
    );
    let (stat, _) = owner
        .create("/eph-closed", b"x", &ephemeral())
        .await
        .expect("create ephemeral");
    assert_eq!(
        stat.ephemeral_owner,
        owner.session_id().0,
        "ephemeralOwner is the creating session"
    );
    assert_eq!(
        owner
            .create("/eph-closed/child", b"", &persistent())
            .await
            .unwrap_err(),
        ZkError::NoChildrenForEphemerals
    );
    eventually(
        READ_TIMEOUT,
        "/eph-closed visible via node 3",
        || async move { obs.check_stat("/eph-closed").await.ok()?.map(|_| ()) },
    )
    .await;
    let t = Instant::now();
    drop(owner); // not detached: the crate sends closeSession
    eventually(
        Duration::from_secs(5),
        "/eph-closed gone after closeSession",
        || async move { (obs.check_stat("/eph-closed").await.ok()?.is_none()).then_some(()) },
    )
    .await;
    println!("ephemeral of a closed session gone after {:?}", t.elapsed());

    // 2. The owner's connection drops without closeSession: gone once the session expires.
    let owner = zk_connect_with(
        zookeeper_client::Client::connector().with_detached(),
        &cluster.node(2).client_addr(),
    )
    .await;
    let timeout = owner.session_timeout();
    owner
        .create("/eph-dropped", b"x", &ephemeral())
        .await
        .expect("create ephemeral");
    eventually(
        READ_TIMEOUT,
        "/eph-dropped visible via node 3",
        || async move { obs.check_stat("/eph-dropped").await.ok()?.map(|_| ()) },
    )
    .await;
    let t = Instant::now();
    drop(owner);
    eventually(
        timeout + Duration::from_secs(8),
        "/eph-dropped gone after session expiry",
        || async move { (obs.check_stat("/eph-dropped").await.ok()?.is_none()).then_some(()) },
    )
    .await;
    println!(
        "ephemeral of a dropped connection gone after {:?} (session timeout {timeout:?})",
        t.elapsed()
    );

    // 3. The owning client process is killed (kill -9): gone once its session expires.
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        "basic::helper_hold_ephemeral",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(HOLD_SERVER, cluster.node(1).client_addr())
    .env(HOLD_PATH, "/eph-killed")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    set_parent_death_signal(&mut cmd);
    let mut child = ChildGuard(Some(
        cmd.spawn()
            .expect("spawn the ephemeral-holding client process"),
    ));
    let stdout = child.0.as_mut().unwrap().stdout.take().unwrap();
    let line = wait_for_line(stdout, Duration::from_secs(30), |l| l.contains("HOLDING "))
        .expect("the client process did not report its ephemeral within 30 s");
    println!("client process: {line}");
    eventually(
        READ_TIMEOUT,
        "/eph-killed visible via node 3",
        || async move { obs.check_stat("/eph-killed").await.ok()?.map(|_| ()) },
    )
    .await;
    let t = Instant::now();
    child.kill9();
    eventually(
        Duration::from_secs(10),
        "/eph-killed gone after its client process was killed",
        || async move { (obs.check_stat("/eph-killed").await.ok()?.is_none()).then_some(()) },
    )
    .await;
    println!(
        "ephemeral of a killed client process gone after {:?}",
        t.elapsed()
    );

    // Persistent znodes and the observer's own session are untouched.
    observer
        .create("/after", b"ok", &persistent())
        .await
        .expect("cluster still serves writes");
}

const HOLD_SERVER: &str = "QUORUMFS_E2E_HOLD_SERVER";
const HOLD_PATH: &str = "QUORUMFS_E2E_HOLD_PATH";

/// Not a test on its own: the client process that `ephemerals_end_with_their_session` starts
/// (re-running this test binary) and kills. It creates an ephemeral znode, says so on stdout,
/// and holds its session until killed. Without its environment variables it does nothing.
#[test]
#[ignore = "helper process for basic::ephemerals_end_with_their_session"]
fn helper_hold_ephemeral() {
    let (Ok(server), Ok(path)) = (std::env::var(HOLD_SERVER), std::env::var(HOLD_PATH)) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = zk_connect(&server).await;
        client
            .create(&path, b"held", &ephemeral())
            .await
            .expect("create the held ephemeral");
        println!("HOLDING {path} session {}", client.session_id());
        use std::io::Write;
        std::io::stdout().flush().ok();
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let _ = &client;
        }
    });
}
