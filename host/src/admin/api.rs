//! The filter API of the admin port, `/v1/...`: community groups upload,
//! list, show, enable, disable, replace and delete their filters and read
//! their logs; the operator does so for every group. Described in
//! `docs/admin-api.yaml`.
//!
//! Every request carries `Authorization: Bearer <token>`; the token's
//! SHA-256 names the caller (a group, or the operator). A group sees only
//! its own filters; their output topics are derived
//! (`bandpass.<group>.<filter>`), never chosen. Every refusal is a JSON
//! `{"error": reason}` with its status, and is logged with the caller's
//! address.
//!
//! An upload (`super::upload`) is decided by [`crate::fleet::Admission`]
//! before anything runs (size, manifest, the fleet's policy, a real
//! component of a supported contract importing only what the host allows,
//! compiled within a time bound, then the canary run), and only then
//! written to the fleet registry, which every instance follows. A refused
//! upload changes nothing. What is HTTP stays here: tokens, request rates,
//! routes, statuses and the JSON of each filter.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use crate::config::{AdminConfig, Config, GroupConfig};
use crate::fleet::canary::Canary;
use crate::fleet::record::{SkyKind, key};
use crate::fleet::{Admission, Denial, Entry, Fleet, Rule, Running, WriteError};
use crate::metrics::Metrics;
use crate::sandbox::{Sandbox, sha256_hex};

/// What the filter API needs.
pub struct Api {
    /// `[admin]` as the service started (listen, uploads).
    pub(super) admin: AdminConfig,
    /// Who may do what: the tokens and groups, replaced on SIGHUP.
    access: RwLock<Access>,
    pub(super) registry: Arc<Fleet>,
    pub(super) admission: Arc<Admission>,
    pub(super) metrics: Arc<Metrics>,
    /// Each known caller's request allowance (one entry per configured
    /// group and the operator: unknown tokens never get one).
    rates: Mutex<HashMap<String, Allowance>>,
    /// Requests to `/v1` being answered now, at most [`MAX_IN_FLIGHT`]:
    /// the rest are turned away at once, so that requests in progress
    /// cannot hold every connection of the port.
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Most `/v1` requests answered at once (see `admin/listener.rs`).
const MAX_IN_FLIGHT: usize = 16;

/// A token bucket: `requests_per_second` refilled, three seconds' worth
/// held at most.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    left: f64,
    at: std::time::Instant,
}

impl Api {
    pub fn new(
        config: &Config,
        sandbox: Arc<Sandbox>,
        registry: Arc<Fleet>,
        canary: Canary,
        metrics: Arc<Metrics>,
    ) -> Api {
        let admin = config.admin.clone().expect("the API needs [admin]");
        let admission = Admission::new(
            registry.clone(),
            sandbox,
            canary,
            &admin.uploads,
            config.remembers_objects().then(|| config.kept_history()),
        );
        Api {
            access: RwLock::new(Access::of(&admin)),
            admin,
            registry,
            admission: Arc::new(admission),
            metrics,
            rates: Mutex::new(HashMap::new()),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    /// Takes one request from `caller`'s allowance, or refuses with 429.
    fn spend(&self, caller: &Caller) -> Result<(), ApiError> {
        let rate = f64::from(self.admin.requests_per_second);
        let burst = 3.0 * rate;
        let now = std::time::Instant::now();
        let mut rates = self.rates.lock().unwrap();
        let allowance = rates.entry(caller.name().to_string()).or_insert(Allowance {
            left: burst,
            at: now,
        });
        let refilled = allowance.left + now.duration_since(allowance.at).as_secs_f64() * rate;
        allowance.left = refilled.min(burst);
        allowance.at = now;
        if allowance.left < 1.0 {
            return Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "'{}' is over its {} requests a second (admin.requests_per_second): slow down",
                    caller.name(),
                    self.admin.requests_per_second
                ),
            ));
        }
        allowance.left -= 1.0;
        Ok(())
    }

    /// Takes the tokens and rules of a reloaded config (SIGHUP).
    /// A config without `[admin]` leaves no token valid.
    pub fn reconfigure(&self, config: &Config) {
        *self.access.write().unwrap() = match &config.admin {
            Some(admin) => Access::of(admin),
            None => Access {
                operator_token_sha256: None,
                groups: Vec::new(),
            },
        };
        self.registry.reconfigure(config);
    }
}

/// The part of `[admin]` a SIGHUP replaces.
struct Access {
    operator_token_sha256: Option<String>,
    groups: Vec<GroupConfig>,
}

impl Access {
    fn of(admin: &AdminConfig) -> Access {
        Access {
            operator_token_sha256: admin.operator_token_sha256.clone(),
            groups: admin.groups.clone(),
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Caller {
    Operator,
    Group(String),
}

impl Caller {
    pub(super) fn name(&self) -> &str {
        match self {
            Caller::Operator => "operator",
            Caller::Group(g) => g,
        }
    }
}

/// A refusal: its status and a reason that says what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    pub(super) reason: String,
}

/// A refusal with `reason`, cut to `text::MAX_REASON_BYTES` and escaped
/// (a reason may quote what the caller sent), in the reply and in the log
/// line that records it.
pub(super) fn refuse(status: StatusCode, reason: impl Into<String>) -> ApiError {
    let reason = crate::text::shown_owned(reason.into(), crate::text::MAX_REASON_BYTES);
    ApiError { status, reason }
}

/// A rule's refusal, with the status that says which kind it is.
impl From<Denial> for ApiError {
    fn from(denial: Denial) -> ApiError {
        let status = match denial.rule {
            Rule::UnknownGroup => StatusCode::NOT_FOUND,
            Rule::Malformed => StatusCode::BAD_REQUEST,
            Rule::TopicTaken => StatusCode::CONFLICT,
            Rule::NotAllowed => StatusCode::FORBIDDEN,
            Rule::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rule::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            Rule::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Rule::Crashed => StatusCode::INTERNAL_SERVER_ERROR,
        };
        refuse(status, denial.reason)
    }
}

/// The reason, kept on the response for the refusal log.
#[derive(Clone)]
struct Refusal(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.reason }))).into_response();
        response.extensions_mut().insert(Refusal(self.reason));
        response
    }
}

pub(super) type Reply = Result<Response, ApiError>;

/// The paths of the filter API, each described in docs/admin-api.yaml.
const PATHS: [&str; 10] = [
    "/v1/filters",
    "/v1/groups/{group}/filters",
    "/v1/groups/{group}/filters/{name}",
    "/v1/groups/{group}/filters/{name}/enable",
    "/v1/groups/{group}/filters/{name}/disable",
    "/v1/groups/{group}/filters/{name}/logs",
    "/v1/groups/{group}/watchlists",
    "/v1/groups/{group}/watchlists/{name}",
    "/v1/groups/{group}/maps",
    "/v1/groups/{group}/maps/{name}",
];

async fn unknown_path() -> ApiError {
    refuse(
        StatusCode::NOT_FOUND,
        "no such path in the filter API: /v1/filters, and under /v1/groups/{group}/ filters, \
         watchlists and maps (docs/admin-api.yaml); names are 1 to 64 of a-z, 0-9, '-' (and \
         '_' for watchlists and maps)",
    )
}

async fn wrong_method(method: axum::http::Method) -> ApiError {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("this path does not take {method} (docs/admin-api.yaml lists what each takes)"),
    )
}

/// `GET` of a group's watchlists or maps.
fn sky_list(kind: SkyKind) -> MethodRouter<Arc<Api>> {
    get(
        move |State(api): State<Arc<Api>>, Path(group): Path<String>, headers: HeaderMap| {
            super::sky::list(api, group, headers, kind)
        },
    )
}

/// `GET`, `PUT` and `DELETE` of one watchlist or map of a group.
fn sky_file(kind: SkyKind) -> MethodRouter<Arc<Api>> {
    type Named = Path<(String, String)>;
    get(
        move |State(api): State<Arc<Api>>, Path(p): Named, headers: HeaderMap| {
            super::sky::show(api, p, headers, kind)
        },
    )
    .put(
        move |State(api): State<Arc<Api>>,
              Path(p): Named,
              query: Result<Query<super::sky::PutQuery>, QueryRejection>,
              headers: HeaderMap,
              body: Body| { super::sky::put(api, p, query, headers, body, kind) },
    )
    .delete(
        move |State(api): State<Arc<Api>>, Path(p): Named, headers: HeaderMap| {
            super::sky::remove(api, p, headers, kind)
        },
    )
}

/// The `/v1` routes.
pub fn routes(api: Arc<Api>) -> Router {
    // Multipart framing and the manifest on top of the component.
    let body_limit = api.admin.uploads.max_size + (1 << 20);
    Router::new()
        .route(PATHS[0], get(list_all))
        .route(PATHS[1], get(list_group))
        .route(
            PATHS[2],
            get(show).put(super::upload::upload).delete(remove),
        )
        .route(PATHS[3], post(enable))
        .route(PATHS[4], post(disable))
        .route(PATHS[5], get(logs))
        .route(PATHS[6], sky_list(SkyKind::Watchlist))
        .route(PATHS[7], sky_file(SkyKind::Watchlist))
        .route(PATHS[8], sky_list(SkyKind::Map))
        .route(PATHS[9], sky_file(SkyKind::Map))
        // Under /v1, a path or method the API does not have is refused in
        // JSON too, with the reason.
        .route("/v1/{*rest}", axum::routing::any(unknown_path))
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            limit_in_flight,
        ))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            log_refusals,
        ))
        .with_state(api)
}

/// Answers at most [`MAX_IN_FLIGHT`] requests at once; turns the rest
/// away at once with 503.
async fn limit_in_flight(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    match api.in_flight.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{MAX_IN_FLIGHT} requests to the filter API are being answered: try again shortly"
            ),
        )
        .into_response(),
    }
}

/// Logs and counts every refused request, with who asked, from where,
/// and why.
async fn log_refusals(State(api): State<Arc<Api>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let from = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let reason = response
            .extensions()
            .get::<Refusal>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or_default().to_string());
        api.metrics.admin_refused(status.as_u16());
        tracing::warn!(status = status.as_u16(), %method, %path, %from, %reason, "admin API refused a request");
    }
    response
}

impl Api {
    /// Who the bearer token belongs to, if they are within their request
    /// allowance.
    pub(super) fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let caller = self.identify(headers)?;
        self.spend(&caller)?;
        Ok(caller)
    }

    /// Who the bearer token belongs to.
    fn identify(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "no token: send the header `Authorization: Bearer <token>`",
            )
        })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                refuse(
                    StatusCode::UNAUTHORIZED,
                    "the Authorization header must read `Bearer <token>`",
                )
            })?;
        let hash = sha256_hex(token.as_bytes());
        let access = self.access.read().unwrap();
        if access.operator_token_sha256.as_deref() == Some(hash.as_str()) {
            return Ok(Caller::Operator);
        }
        access
            .groups
            .iter()
            .find(|g| g.token_sha256 == hash)
            .map(|g| Caller::Group(g.name.clone()))
            .ok_or_else(|| {
                refuse(
                    StatusCode::UNAUTHORIZED,
                    "token not recognised: ask the operator for your group's token",
                )
            })
    }

    /// The caller, if it may act on `group`'s filters (a group no longer
    /// configured keeps its filters, which only the operator can still
    /// see and delete).
    pub(super) fn authorize(&self, headers: &HeaderMap, group: &str) -> Result<Caller, ApiError> {
        let caller = self.caller(headers)?;
        if let Caller::Group(own) = &caller
            && own != group
        {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "this token is group '{own}''s: it cannot see or manage group '{group}''s filters, watchlists or maps"
                ),
            ));
        }
        Ok(caller)
    }

    /// One filter as the API shows it, with this instance's counters.
    pub(super) fn view(&self, entry: &Entry) -> Value {
        let r = &entry.record;
        let (state, reason) = match self.registry.running(&r.group, &r.name) {
            // The latest change is not running here yet.
            None | Some((_, false)) => ("pending", None),
            Some((Running::Deployed(d), true)) => match d.filter.health.quarantined() {
                Some(why) => ("quarantined", Some(why)),
                None => ("running", None),
            },
            Some((Running::Disabled, true)) => ("disabled", None),
            Some((Running::Failed(why), true)) => ("failed", Some(why)),
        };
        let deployment = r.deployment_name();
        let counts = self.metrics.counts(&deployment).unwrap_or_default();
        json!({
            "group": r.group,
            "name": r.name,
            "deployment": deployment,
            "version": r.version,
            "survey": r.survey,
            "description": r.description,
            "enabled": r.enabled,
            "state": state,
            "reason": reason,
            "output_topic": r.output_topic(),
            "sha256": r.sha256,
            "size": entry.component.len(),
            "params": r.params,
            "limits": {
                "fuel": r.limits.fuel_per_alert,
                "deadline_ms": r.limits.deadline_ms,
                "memory_bytes": r.limits.memory_bytes,
            },
            "uploaded_by": r.uploaded_by,
            "uploaded_at_ms": r.uploaded_at_ms,
            "counters": {
                "alerts": counts.alerts,
                "accepted": counts.accepted,
                "rejected": counts.rejected,
                "failed": counts.failed,
                "skipped": counts.skipped,
                "fuel": counts.fuel,
            },
        })
    }

    pub(super) fn entry(&self, group: &str, name: &str) -> Result<Entry, ApiError> {
        self.registry.entry(group, name).ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                format!("group '{group}' has no filter '{name}'"),
            )
        })
    }
}

pub(super) fn ok(status: StatusCode, body: Value) -> Reply {
    Ok((status, Json(body)).into_response())
}

/// The answer to a change whose registry write did not end well: 503
/// when it was not written (nothing changed), 202 with `body` and the
/// reason when it was written but does not run here yet.
pub(super) fn written(error: WriteError, mut body: Value) -> Reply {
    match error {
        WriteError::NotWritten(reason) => Err(refuse(StatusCode::SERVICE_UNAVAILABLE, reason)),
        WriteError::Pending(reason) => {
            body["pending"] = Value::String(reason);
            ok(StatusCode::ACCEPTED, body)
        }
    }
}

async fn list_all(State(api): State<Arc<Api>>, headers: HeaderMap) -> Reply {
    if let Caller::Group(own) = api.caller(&headers)? {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("only the operator lists every group's filters: use /v1/groups/{own}/filters"),
        ));
    }
    let filters: Vec<Value> = api
        .registry
        .entries()
        .values()
        .map(|e| api.view(e))
        .collect();
    ok(StatusCode::OK, json!({ "filters": filters }))
}

async fn list_group(
    State(api): State<Arc<Api>>,
    Path(group): Path<String>,
    headers: HeaderMap,
) -> Reply {
    api.authorize(&headers, &group)?;
    let filters: Vec<Value> = api
        .registry
        .entries()
        .values()
        .filter(|e| e.record.group == group)
        .map(|e| api.view(e))
        .collect();
    ok(StatusCode::OK, json!({ "filters": filters }))
}

async fn show(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    api.authorize(&headers, &group)?;
    let entry = api.entry(&group, &name)?;
    ok(StatusCode::OK, api.view(&entry))
}

async fn logs(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    api.authorize(&headers, &group)?;
    api.entry(&group, &name)?;
    let (lines, dropped) = match api.registry.running(&group, &name) {
        Some((Running::Deployed(d), _)) => (d.filter.log.lines(), d.filter.log.dropped()),
        _ => (Vec::new(), (0, 0)),
    };
    ok(
        StatusCode::OK,
        json!({
            "lines": lines,
            "dropped_lines": dropped.0,
            "dropped_bytes": dropped.1,
        }),
    )
}

async fn remove(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    let caller = api.authorize(&headers, &group)?;
    let _turn = api.admission.turn(&group).await;
    api.entry(&group, &name)?;
    if let Err(e) = api.registry.delete(&group, &name).await {
        return written(e, json!({ "deleted": key(&group, &name) }));
    }
    tracing::info!(
        group,
        filter = name,
        by = caller.name(),
        "uploaded filter deleted"
    );
    ok(StatusCode::OK, json!({ "deleted": key(&group, &name) }))
}

async fn enable(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    switch(&api, &group, &name, &headers, true).await
}

async fn disable(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Reply {
    switch(&api, &group, &name, &headers, false).await
}

async fn switch(api: &Api, group: &str, name: &str, headers: &HeaderMap, enabled: bool) -> Reply {
    let caller = api.authorize(headers, group)?;
    let _turn = api.admission.turn(group).await;
    let entry = api.entry(group, name)?;
    if let Err(e) = api.registry.switch(&entry, enabled).await {
        return written(e, api.view(&api.entry(group, name)?));
    }
    tracing::info!(
        group,
        filter = name,
        by = caller.name(),
        enabled,
        "uploaded filter switched"
    );
    let entry = api.entry(group, name)?;
    ok(StatusCode::OK, api.view(&entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_the_filter_api_is_in_the_openapi_file() {
        let described = include_str!("../../../docs/admin-api.yaml");
        for path in PATHS {
            assert!(
                described.contains(&format!("\n  {path}:\n")),
                "docs/admin-api.yaml does not describe {path}"
            );
        }
    }
}
