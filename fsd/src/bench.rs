//! `fsd bench`: closed-loop throughput and latency of setData (or getData with `--reads`)
//! against any ZooKeeper-protocol servers.
//!
//! Client `i` connects to server `i % len(--servers)` and works on its own znode
//! `/bench/c{i}`, one request at a time, for `--seconds`. Only standard ZooKeeper requests
//! are used, so the same binary measures quorumfs and Apache ZooKeeper alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use crate::cli::args::BenchArgs;
use crate::cli::client::{call, close, connect, prefixed, zk_error};

/// Parent of the per-client znodes.
const ROOT: &str = "/bench";

/// What one run measured; with `--json`, printed as one line in this field order.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Summary {
    clients: usize,
    ops: usize,
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Runs the benchmark and prints one summary (text, or one JSON line with `--json`).
pub(crate) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    run_bench(args).await.map_err(prefixed)
}

async fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let servers: Vec<String> = args
        .servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if servers.is_empty() {
        bail!("--servers names no server");
    }
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let value = Arc::new(vec![b'x'; args.size]);
    let duration = Duration::from_secs(args.seconds);

    // Phase 1: every client connects and prepares its znode, so the clock starts with all
    // of them ready.
    let setups: Vec<_> = (0..args.clients)
        .map(|i| {
            let server = servers[i % servers.len()].clone();
            let value = Arc::clone(&value);
            tokio::spawn(async move { BenchClient::start(i, server, &value).await })
        })
        .collect();
    let mut clients = Vec::with_capacity(args.clients);
    let mut failure = None;
    for setup in setups {
        match setup.await {
            Ok(Ok(client)) => clients.push(client),
            Ok(Err(err)) => failure = failure.or(Some(err)),
            Err(err) => failure = failure.or(Some(anyhow!("bench client task failed: {err}"))),
        }
    }
    if let Some(err) = failure {
        for client in clients {
            client.finish().await;
        }
        return Err(err);
    }

    // Phase 2: all measure at once.
    let runs: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let value = Arc::clone(&value);
            let reads = args.reads;
            tokio::spawn(async move {
                let result = client.measure(&value, reads, duration).await;
                client.finish().await;
                result
            })
        })
        .collect();
    let mut latencies: Vec<u64> = Vec::new();
    let mut elapsed = Duration::ZERO;
    for run in runs {
        let (lat, took) = run
            .await
            .map_err(|err| anyhow!("bench client task failed: {err}"))??;
        latencies.extend(lat);
        elapsed = elapsed.max(took);
    }
    let summary = summarize(args.clients, &mut latencies, elapsed);
    let text = if args.json {
        // A struct keeps the documented key order (serde_json's `json!` would sort the keys).
        let rounded = Summary {
            ops_per_sec: round3(summary.ops_per_sec),
            p50_ms: round3(summary.p50_ms),
            p99_ms: round3(summary.p99_ms),
            max_ms: round3(summary.max_ms),
            ..summary.clone()
        };
        serde_json::to_string(&rounded)?
    } else {
        format!(
            "{} {} B x {} clients for {}s against {}\nops {}  ops/s {:.1}\nlatency ms: p50 {:.3}  p99 {:.3}  max {:.3}",
            if args.reads { "getData" } else { "setData" },
            args.size,
            summary.clients,
            args.seconds,
            servers.join(","),
            summary.ops,
            summary.ops_per_sec,
            summary.p50_ms,
            summary.p99_ms,
            summary.max_ms,
        )
    };
    println!("{text}");
    Ok(())
}

/// One benchmark client: a session on one server and its own znode.
struct BenchClient {
    zk: Client,
    label: String,
    path: String,
}

impl BenchClient {
    /// Connects to `server` and makes `/bench/c{i}` hold `value`.
    async fn start(i: usize, server: String, value: &[u8]) -> anyhow::Result<Self> {
        let zk = connect(&server).await?;
        let client = BenchClient {
            zk,
            label: format!("client {i} on {server}"),
            path: format!("{ROOT}/c{i}"),
        };
        match client.prepare(value).await {
            Ok(()) => Ok(client),
            Err(err) => {
                let label = client.label.clone();
                client.finish().await;
                Err(err.context(label))
            }
        }
    }

    /// Creates `/bench` and this client's znode if needed and sets its data to `value`.
    async fn prepare(&self, value: &[u8]) -> anyhow::Result<()> {
        let (zk, path) = (&self.zk, self.path.as_str());
        let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
        match call(zk.create(ROOT, &[], &options)).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(err) => return Err(zk_error(ROOT, &err)),
        }
        match call(zk.create(path, value, &options)).await {
            Ok(_) => Ok(()),
            Err(ZkError::NodeExists) => call(zk.set_data(path, value, None))
                .await
                .map(drop)
                .map_err(|err| zk_error(path, &err)),
            Err(err) => Err(zk_error(path, &err)),
        }
    }

    /// The timed loop: one request at a time until `duration` has passed. Returns each
    /// request's latency in ns and how long the loop ran.
    async fn measure(
        &self,
        value: &[u8],
        reads: bool,
        duration: Duration,
    ) -> anyhow::Result<(Vec<u64>, Duration)> {
        let (zk, path) = (&self.zk, self.path.as_str());
        let mut latencies = Vec::with_capacity(4096);
        let start = Instant::now();
        let deadline = start + duration;
        loop {
            let sent = Instant::now();
            if sent >= deadline {
                break;
            }
            let result = if reads {
                call(zk.get_data(path)).await.map(drop)
            } else {
                call(zk.set_data(path, value, None)).await.map(drop)
            };
            result.map_err(|err| zk_error(path, &err).context(self.label.clone()))?;
            latencies.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        Ok((latencies, start.elapsed()))
    }

    /// Deletes this client's znode (best effort; `/bench` may be shared) and closes the session.
    async fn finish(self) {
        let _ = call(self.zk.delete(&self.path, None)).await;
        close(self.zk).await;
    }
}

/// Sorts `latencies` (ns) and reduces them to the summary; nearest-rank percentiles.
fn summarize(clients: usize, latencies: &mut [u64], elapsed: Duration) -> Summary {
    latencies.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let rank = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
        ms(latencies[index])
    };
    let secs = elapsed.as_secs_f64();
    Summary {
        clients,
        ops: latencies.len(),
        ops_per_sec: if secs > 0.0 {
            latencies.len() as f64 / secs
        } else {
            0.0
        },
        p50_ms: rank(0.50),
        p99_ms: rank(0.99),
        max_ms: latencies.last().map_or(0.0, |&ns| ms(ns)),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut ns: Vec<u64> = (1..=100).rev().map(|i| i * 1_000_000).collect();
        let s = summarize(2, &mut ns, Duration::from_secs(2));
        assert_eq!(s.ops, 100);
        assert_eq!(s.ops_per_sec, 50.0);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
    }

    #[test]
    fn empty_run_is_zero() {
        let s = summarize(1, &mut [], Duration::ZERO);
        assert_eq!(
            (s.ops, s.ops_per_sec, s.p50_ms, s.max_ms),
            (0, 0.0, 0.0, 0.0)
        );
    }
}
