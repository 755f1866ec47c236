//! The HTTP admin endpoint: `/status` (JSON), `/metrics` (Prometheus text), `/health`, and
//! `/members` (list, or POST a membership change). It reads the node through its handle and
//! forwards membership changes to the leader through the ensemble.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use quorumfs_ensemble::{Handle, MembershipChange};
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::zk;

/// What the admin handlers need.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub node: Handle,
    pub zk: Arc<zk::Server>,
    pub metrics: PrometheusHandle,
}

/// Installs the process-wide Prometheus recorder.
pub(crate) fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    Ok(PrometheusBuilder::new().install_recorder()?)
}

pub(crate) async fn serve(listener: TcpListener, state: AdminState, cancel: CancellationToken) {
    let app = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/members", get(members).post(change_members))
        .with_state(state);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin endpoint failed");
    }
}

async fn status(State(s): State<AdminState>) -> Json<serde_json::Value> {
    let cluster = s.node.cluster_status().await;
    Json(json!({
        "node": cluster.node,
        "members": cluster.members,
        "watches": s.zk.watch_count(),
        "connections": s.zk.connection_count(),
    }))
}

async fn health(State(s): State<AdminState>) -> Response {
    if s.node.is_healthy().await {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no leader, or not caught up\n",
        )
            .into_response()
    }
}

async fn members(State(s): State<AdminState>) -> Json<serde_json::Value> {
    Json(json!(s.node.cluster_status().await.members))
}

async fn change_members(
    State(s): State<AdminState>,
    Json(change): Json<MembershipChange>,
) -> Response {
    match s.node.change_membership(change).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => {
            let code = match e {
                quorumfs_ensemble::Error::Membership { .. } => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            (code, Json(json!({"error": e.to_string()}))).into_response()
        }
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let st = s.node.local_status();
    metrics::gauge!("quorumfs_raft_term").set(st.term as f64);
    metrics::gauge!("quorumfs_raft_last_log_index").set(st.last_log_index as f64);
    metrics::gauge!("quorumfs_raft_applied_index").set(st.applied_index as f64);
    metrics::gauge!("quorumfs_raft_is_leader").set(if st.role == "leader" { 1.0 } else { 0.0 });
    metrics::gauge!("quorumfs_znodes").set(st.znodes as f64);
    metrics::gauge!("quorumfs_sessions").set(st.sessions as f64);
    metrics::gauge!("quorumfs_watches").set(s.zk.watch_count() as f64);
    metrics::gauge!("quorumfs_client_connections").set(s.zk.connection_count() as f64);
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
