//! The admin HTTP port of `bandpass serve`: `/healthz` (the process
//! answers), `/readyz` (connected to a broker, in the consumer group,
//! with partitions assigned; 503 with the reason otherwise) and
//! `/metrics` (Prometheus text format, see [`crate::metrics`]).
//!
//! Runs on a thread of its own with a single-threaded tokio runtime, apart
//! from the pipeline's threads: a slow scrape never slows the stream, and
//! a stuck stream still answers `/healthz` and says why it is not ready.
//! Must never hold a lock the pipeline needs while it writes a response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// The running admin server.
pub struct Admin {
    /// Where it listens (the port chosen when the config said `:0`).
    pub addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl Admin {
    /// Binds `listen` (failing at once if it cannot) and serves until
    /// `stop` is set.
    pub fn start(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Admin> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("starting the admin server's runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(listen))
            .with_context(|| {
                format!("admin.listen: cannot listen on {listen} (in use? another address?)")
            })?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(metrics);
        let thread = std::thread::Builder::new()
            .name("bandpass-admin".into())
            .spawn(move || {
                let stopped = async move {
                    while !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                let served = runtime.block_on(
                    axum::serve(listener, app)
                        .with_graceful_shutdown(stopped)
                        .into_future(),
                );
                if let Err(error) = served {
                    tracing::error!(%error, "the admin server stopped");
                }
            })
            .context("starting the admin server's thread")?;
        tracing::info!(%addr, "admin port: /healthz /readyz /metrics");
        Ok(Admin { addr, thread })
    }

    /// Waits for the server to stop (after `stop` was set).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    match metrics.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}
