//! The admin port's connections: accepting, bounding and closing them.
//!
//! Owns: the accept loop of the admin port and the bounds that keep any
//! client from holding it before a token is even checked.
//! - a connection must send a request's headers within `header_timeout`
//!   of opening (or of its last answer, when kept alive); else it is
//!   closed;
//! - at most `max_connections` are open at once. At the bound, a new
//!   connection closes the oldest one that has no request in progress
//!   (one idle, or still sending its headers), so that a liveness probe
//!   always gets in; if every one is in a request, the new one is closed.
//!   Requests in progress are bounded apart: the filter API admits a few
//!   at a time (`api::routes`), and an upload's body must arrive within
//!   its own time.
//!
//! Must never: let a connection live past its bounds, or count one that
//! has gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// The bounds of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Bounds {
    /// The bounds `[admin]` sets.
    pub fn of(admin: &crate::config::AdminConfig) -> Bounds {
        Bounds {
            max_connections: admin.max_connections,
            header_timeout: admin.header_timeout,
        }
    }
}

/// One open connection, as the accept loop sees it.
struct Open {
    opened: Instant,
    /// Requests being answered on it now.
    busy: Arc<AtomicUsize>,
    /// Told to close at once.
    close: Arc<Notify>,
}

/// The connections open now.
#[derive(Default)]
struct Connections {
    open: Mutex<HashMap<u64, Open>>,
    next: AtomicU64,
}

impl Connections {
    /// Makes room for one more under `max`: closes the oldest connection
    /// with no request in progress. False when every one is busy.
    fn make_room(&self, max: usize) -> bool {
        let mut open = self.open.lock().unwrap();
        if open.len() < max {
            return true;
        }
        let idle = open
            .iter()
            .filter(|(_, c)| c.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, c)| c.opened)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(victim) => {
                // Out of the count now; its task closes the socket.
                victim.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn count(&self) -> usize {
        self.open.lock().unwrap().len()
    }
}

/// Serves `app` on `listener` within `bounds` until `stop` is set; then
/// lets open connections finish their requests for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    bounds: Bounds,
    stop: Arc<AtomicBool>,
    grace: Duration,
) {
    let connections = Arc::new(Connections::default());
    let stopping = Arc::new(Notify::new());
    let watcher = {
        let (stop, stopping) = (stop.clone(), stopping.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stopping.notify_waiters();
        })
    };
    let mut refused_full = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.notified() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!(%error, "admin port: could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !connections.make_room(bounds.max_connections) {
            refused_full += 1;
            if refused_full.is_power_of_two() {
                tracing::warn!(
                    max = bounds.max_connections,
                    refused = refused_full,
                    "admin port: every connection is in a request; closed a new one (admin.max_connections)"
                );
            }
            drop(stream);
            continue;
        }
        let id = connections.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        connections.open.lock().unwrap().insert(
            id,
            Open {
                opened: Instant::now(),
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        let app = app.clone();
        let (connections, stopping) = (connections.clone(), stopping.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    let busy = InProgress::new(busy.clone());
                    let answered = app.clone().oneshot(request);
                    async move {
                        let response = answered.await;
                        drop(busy);
                        response
                    }
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(bounds.header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = close.notified() => {}
                _ = stopping.notified() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(grace, connection.as_mut()).await;
                }
            }
            connections.open.lock().unwrap().remove(&id);
        });
    }
    watcher.abort();
    // Give the connections their grace to finish.
    let deadline = Instant::now() + grace;
    while connections.count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Counts a request in progress on its connection while it lives.
struct InProgress(Arc<AtomicUsize>);

impl InProgress {
    fn new(busy: Arc<AtomicUsize>) -> InProgress {
        busy.fetch_add(1, Ordering::AcqRel);
        InProgress(busy)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(connections: &Connections, id: u64, busy: usize) -> Arc<Notify> {
        let close = Arc::new(Notify::new());
        connections.open.lock().unwrap().insert(
            id,
            Open {
                opened: Instant::now(),
                busy: Arc::new(AtomicUsize::new(busy)),
                close: close.clone(),
            },
        );
        std::thread::sleep(Duration::from_millis(2));
        close
    }

    #[tokio::test(flavor = "current_thread")]
    async fn at_the_bound_the_oldest_connection_without_a_request_is_closed() {
        let connections = Connections::default();
        let _busy_oldest = connection(&connections, 0, 1);
        let idle_older = connection(&connections, 1, 0);
        let _idle_newer = connection(&connections, 2, 0);
        assert!(connections.make_room(4), "under the bound: room");
        assert!(connections.make_room(3));
        // The busy one is older, but in a request: the older idle one goes,
        // and is out of the count at once.
        tokio::time::timeout(Duration::from_secs(1), idle_older.notified())
            .await
            .expect("the oldest idle connection is told to close");
        assert_eq!(connections.count(), 2);
        assert!(!connections.open.lock().unwrap().contains_key(&1));
    }

    #[test]
    fn at_the_bound_with_every_connection_busy_there_is_no_room() {
        let connections = Connections::default();
        connection(&connections, 0, 1);
        connection(&connections, 1, 2);
        assert!(!connections.make_room(2));
    }
}
