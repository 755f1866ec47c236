//! Power loss (issue #9, item 0): every voter's data directory lives on a forgetful
//! filesystem ([`crate::lazyfs`]); while clients write, all voters are killed at once and every
//! write they had not fsynced is dropped, as a power cut drops a disk's volatile cache. After
//! the restart every acknowledged create must be there, on every replica, and the replicas
//! must agree.
//!
//! kill -9 alone cannot show this: the kernel's page cache survives a process kill. This is a
//! safety check, so `.config/nextest.toml` runs it without retries.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::lazyfs::LazyMount;

/// Power cuts per run.
const CYCLES: usize = 3;
/// Concurrent writers per cycle.
const WRITERS: usize = 8;
/// Acknowledged creates to wait for before each cut.
const ACKS_BEFORE_CUT: usize = 400;

/// One writer: creates `/pl/c{cycle}-w{w}-{n}` back to back through one node until `stop` or
/// the first error (its server died: the outcome of that create is unknown, so it is not
/// counted, and nothing is retried).
async fn writer(
    cycle: usize,
    w: usize,
    addr: String,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<String>>>,
) {
    let client = zk_connect(&addr).await;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let path = format!("/pl/c{cycle}-w{w}-{n:06}");
        let res = tokio::time::timeout(
            Duration::from_secs(5),
            client.create(&path, path.as_bytes(), &persistent()),
        )
        .await;
        match res {
            Ok(Ok(_)) => acks.lock().unwrap().push(path),
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// What node `id` holds under `/pl`, read through its own client port once it has applied
/// the barrier's zxid (so every replica is read at the same point of the log), and a summary
/// of `/pl`'s stat. A node whose log diverged shows it here: the barrier's zxid is applied
/// but the barrier is not what it holds there.
async fn view_at(cluster: &Cluster, id: u64, barrier_zxid: i64) -> (BTreeSet<String>, String) {
    wait_until(
        Duration::from_secs(60),
        &format!("node {id} applies zxid {barrier_zxid}"),
        || {
            let applied = cluster.node(id).applied_index()?;
            (applied >= barrier_zxid as u64).then_some(())
        },
    );
    let client = zk_connect(&cluster.node(id).client_addr()).await;
    let kids = client.list_children("/pl").await.expect("ls /pl");
    let (_, stat) = client.get_data("/pl").await.expect("get /pl");
    let summary = format!(
        "children={} cversion={} pzxid={}",
        stat.num_children, stat.cversion, stat.pzxid
    );
    let have = kids.into_iter().map(|k| format!("/pl/{k}")).collect();
    (have, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_of_every_voter_loses_no_acknowledged_write() {
    const TEST: &str = "power_loss_of_every_voter_loses_no_acknowledged_write";
    // Declared before the cluster, so it is unmounted after every daemon is gone.
    let Some(lazy) = LazyMount::mount(TEST) else {
        return;
    };
    // Small snapshot interval: snapshots and log purges happen between the cuts too.
    let mut cluster = Cluster::builder(3)
        .data_root(lazy.path())
        .snapshot_every(500)
        .start();
    let ids = cluster.voter_ids();
    {
        let c = zk_connect(&cluster.connect_string(&ids)).await;
        c.create("/pl", b"", &persistent())
            .await
            .expect("create /pl");
    }

    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut report = Vec::new();
    for cycle in 1..=CYCLES {
        let stop = Arc::new(AtomicBool::new(false));
        let acks: Arc<Mutex<Vec<String>>> = Arc::default();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let addr = cluster.node(ids[w % ids.len()]).client_addr();
                tokio::spawn(writer(cycle, w, addr, stop.clone(), acks.clone()))
            })
            .collect();
        wait_until(
            Duration::from_secs(60),
            &format!("{ACKS_BEFORE_CUT} acknowledged creates in cycle {cycle}"),
            || (acks.lock().unwrap().len() >= ACKS_BEFORE_CUT).then_some(()),
        );

        // The cut: every voter dies at once, mid-write, then loses what it had not synced.
        cluster.kill9_all();
        let t_cut = Instant::now();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("writer task");
        }
        let cut = lazy.pull_plug();
        let this_cycle = std::mem::take(&mut *acks.lock().unwrap());
        acked.extend(this_cycle.iter().cloned());

        for id in &ids {
            cluster.node_mut(*id).spawn();
        }
        cluster.wait_healthy(START_TIMEOUT);
        cluster.wait_leader(Duration::from_secs(30));
        // A barrier written after the restart: once a node applied it, it holds the whole
        // committed log up to there, whatever it had lost.
        let barrier = format!("/pl/barrier-{cycle}");
        let c = zk_connect(&cluster.connect_string(&ids)).await;
        let barrier_zxid = eventually(Duration::from_secs(30), "barrier create", || async {
            match c.create(&barrier, b"", &persistent()).await {
                Ok((stat, _)) => Some(stat.czxid),
                // The reply of an earlier attempt was lost.
                Err(zookeeper_client::Error::NodeExists) => {
                    c.get_data(&barrier).await.ok().map(|(_, s)| s.czxid)
                }
                // `/pl` itself was lost: recreate it, so the check below counts the loss.
                Err(zookeeper_client::Error::NoNode) => {
                    let _ = c.create("/pl", b"", &persistent()).await;
                    None
                }
                Err(_) => None,
            }
        })
        .await;
        drop(c);

        let mut views = Vec::new();
        for id in &ids {
            let (have, summary) = view_at(&cluster, *id, barrier_zxid).await;
            let lost: Vec<&String> = acked.iter().filter(|p| !have.contains(*p)).collect();
            let summary = format!("{summary} barrier={}", have.contains(&barrier));
            views.push((
                *id,
                have,
                summary,
                lost.len(),
                lost.first().map(|s| s.to_string()),
            ));
        }
        let line = format!(
            "cycle {cycle}: {} acked this cycle ({} in all); the cut dropped {} dirty pages in {} files; \
             recovered {:?} after the cut; per node: {}",
            this_cycle.len(),
            acked.len(),
            cut.pages,
            cut.files,
            t_cut.elapsed(),
            views
                .iter()
                .map(|(id, _, summary, lost, first)| format!(
                    "n{id} lost {lost} (first {first:?}) {summary}"
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        println!("{line}");
        report.push(line);
        for (id, _, _, lost, first) in &views {
            assert_eq!(
                *lost,
                0,
                "node {id} lost {lost} acknowledged creates after power loss (e.g. {first:?}):\n{}",
                report.join("\n")
            );
        }
        for w in views.windows(2) {
            assert!(
                w[0].1 == w[1].1 && w[0].2 == w[1].2,
                "replicas {} and {} disagree after power loss: {} vs {}",
                w[0].0,
                w[1].0,
                w[0].2,
                w[1].2
            );
        }
    }
    let counters = lazy.counters();
    println!(
        "power loss: {CYCLES} cuts, {} acknowledged creates all present on every replica; \
         {} fsyncs reached the forgetful filesystem",
        acked.len(),
        counters.fsyncs
    );
}
