//! `fsd run`: starts the replica, the ZooKeeper client port and the admin endpoint, reports
//! readiness, and on shutdown stops them in order: stop accepting, drain connections
//! (bounded), stop the replica (Raft, then a storage flush).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::config::RunConfig;
use crate::{admin, zk};

/// Mounts the tree at `dir` once the cluster can open the host's session (it needs a
/// leader); `None` if shutdown came first.
async fn mount_when_ready(
    node: &quorumfs_ensemble::Handle,
    dir: &std::path::Path,
    session_timeout: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<quorumfs_mount::Mount>> {
    let mut options = quorumfs_mount::MountOptions::new(dir.to_path_buf());
    options.session_timeout = session_timeout;
    loop {
        let attempt = quorumfs_mount::mount(node.clone(), options.clone());
        let result = tokio::select! {
            r = attempt => r,
            () = shutdown.cancelled() => return Ok(None),
        };
        match result {
            Ok(m) => return Ok(Some(m)),
            Err(quorumfs_mount::MountError::Session(e)) => {
                tracing::warn!("cannot mount yet ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("--mount {}", dir.display())),
        }
    }
}

pub(crate) async fn run(config: RunConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = admin::install_metrics()?;
    let node = quorumfs_ensemble::start(config.node.clone())
        .await
        .with_context(|| {
            format!(
                "starting node {} with data in {}",
                config.node.id,
                config.node.data_dir.display()
            )
        })?;

    let client_listener = TcpListener::bind(config.client_listen)
        .await
        .with_context(|| format!("cannot listen for clients on {}", config.client_listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for admin requests on {}",
                config.admin_listen
            )
        })?;

    let zk_server = Arc::new(zk::Server::new(
        node.clone(),
        config.tick,
        config.super_digest.clone(),
        zk::WatchLimits::per_connection(config.max_watches_per_connection),
    ));
    let zk_cancel = shutdown.child_token();
    let zk_task = tokio::spawn(zk_server.clone().serve(client_listener, zk_cancel.clone()));
    let admin_state = admin::AdminState {
        node: node.clone(),
        zk: zk_server.clone(),
        metrics,
    };
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        admin_state,
        shutdown.child_token(),
    ));

    let mount = match &config.mount {
        Some(dir) => mount_when_ready(&node, dir, config.session_timeout, &shutdown).await?,
        None => None,
    };

    tracing::info!(
        id = config.node.id,
        peer = %config.node.peer_listen,
        client = %config.client_listen,
        admin = %config.admin_listen,
        data = %config.node.data_dir.display(),
        session_timeout_ms = config.session_timeout.as_millis() as u64,
        "fsd ready"
    );

    shutdown.cancelled().await;
    if let Some(mount) = mount {
        // First, so that this host's ephemeral files and locks go while peers still run.
        mount.unmount().await;
    }
    zk_cancel.cancel();
    if tokio::time::timeout(Duration::from_secs(5), zk_task)
        .await
        .is_err()
    {
        tracing::warn!("client connections did not drain within 5 s");
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
    node.shutdown().await;
    tracing::info!("fsd stopped");
    Ok(())
}
