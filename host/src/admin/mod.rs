//! The admin HTTP port of `bandpass serve`: `/healthz` (the process
//! answers), `/readyz` (connected to a broker, in the consumer group,
//! with partitions assigned; 503 with the reason otherwise), `/metrics`
//! (Prometheus text format, see [`crate::metrics`]) and `/`, a status
//! page for people, sorted, grouped and narrowed by its query
//! ([`status`]); and, where groups are configured, the
//! filter API of [`api`] (`/v1/...`: uploads, validated by [`canary`]).
//!
//! Runs on a thread of its own with a single-threaded tokio runtime, apart
//! from the pipeline's threads: a slow scrape never slows the stream, and
//! a stuck stream still answers `/healthz` and says why it is not ready.
//! Its connections are bounded in number and time ([`listener`]), so no
//! client, token or not, can hold the port from a liveness probe.
//! Must never hold a lock the pipeline needs while it writes a response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

pub mod api;
mod listener;
mod sky;
pub mod status;
pub mod upload;

pub use listener::Bounds;

async fn no_uploads() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "error": "this instance takes no uploads: [admin] names no group and no operator \
                      token (docs/operators.md, Uploads); turning uploads on needs a restart"
        })),
    )
}

/// What the handlers share.
struct Shared {
    metrics: Arc<Metrics>,
    history: status::History,
}

/// How long a stopping admin server waits for open connections.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running admin server; dropping it stops it.
pub struct Admin {
    /// Where it listens (the port chosen when the config said `:0`).
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stopped: std::sync::mpsc::Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Binds `listen` (failing at once if it cannot) and serves until
    /// dropped; with `api`, the filter API (`/v1/...`) too.
    pub fn start(
        listen: SocketAddr,
        bounds: Bounds,
        metrics: Arc<Metrics>,
        api: Option<Arc<api::Api>>,
    ) -> anyhow::Result<Admin> {
        let stop = Arc::new(AtomicBool::new(false));
        let (done, stopped) = std::sync::mpsc::channel();
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
        let shared = Arc::new(Shared {
            metrics,
            history: status::History::default(),
        });
        let uploads = api.is_some();
        let mut app = Router::new()
            .route("/", get(status_page))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            // A browser asks for it with the status page: no icon, and
            // not a refusal.
            .route(
                "/favicon.ico",
                get(|| async { axum::http::StatusCode::NO_CONTENT }),
            )
            .with_state(shared.clone());
        match api {
            Some(api) => app = app.merge(api::routes(api)),
            // Asked of an instance without uploads, the API says why.
            None => app = app.route("/v1/{*rest}", axum::routing::any(no_uploads)),
        }
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bandpass-admin".into())
            .spawn(move || {
                // The samples the status page's rates are taken against.
                runtime.spawn(async move {
                    let mut every = tokio::time::interval(status::SAMPLE_EVERY);
                    loop {
                        every.tick().await;
                        shared.history.record(shared.metrics.snapshot());
                    }
                });
                runtime.block_on(listener::serve(listener, app, bounds, stopping, STOP_GRACE));
                // A compile an upload gave up on may still run on a
                // blocking thread: do not wait for it.
                runtime.shutdown_timeout(Duration::from_millis(100));
                let _ = done.send(());
            })
            .context("starting the admin server's thread")?;
        tracing::info!(
            %addr,
            uploads,
            "admin port: / /healthz /readyz /metrics{}",
            if uploads { " /v1" } else { "" }
        );
        Ok(Admin {
            addr,
            stop,
            stopped,
            thread: Some(thread),
        })
    }
}

impl Drop for Admin {
    /// Stops the server, waiting at most [`STOP_GRACE`] for connections
    /// still open (a client that never finishes its request must not keep
    /// the process from exiting).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        match self.stopped.recv_timeout(STOP_GRACE) {
            Ok(()) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            Err(_) => tracing::warn!(
                "the admin server still had connections open after {STOP_GRACE:?}; leaving them"
            ),
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.metrics.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
}

/// The status page in the view its query asks for (see
/// [`status::View::parse`]); 400, saying why, for a query it does not take.
async fn status_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
    match status::View::parse(query.as_deref()) {
        Ok(view) => {
            let page = status::render(
                &shared.metrics.snapshot(),
                shared.history.oldest().as_ref(),
                &view,
            );
            (StatusCode::OK, html, page)
        }
        Err(why) => (StatusCode::BAD_REQUEST, html, status::refusal(&why)),
    }
}
