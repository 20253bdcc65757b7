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
//! An upload is checked before anything runs (size, manifest, quota,
//! limits, a real component of a supported contract importing only what
//! the host allows, compiled within a time bound, then the canary run of
//! [`super::canary`]), and only then written to the fleet registry
//! ([`crate::registry`]), which every instance follows. A refused upload
//! changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::canary::Canary;
use crate::config::{AdminConfig, Config, EngineConfig, GroupConfig, LimitsConfig, is_name};
use crate::metrics::Metrics;
use crate::registry::{self, Entry, Record, Registry, Running, WriteError};
use crate::sandbox::compile::{CompileFailure, compile_bounded};
use crate::sandbox::{CacheOutcome, LoadedFilter, Sandbox, sha256_hex};

/// What the filter API needs.
pub struct Api {
    /// `[admin]` as the service started (listen, uploads).
    admin: AdminConfig,
    /// Who may do what: the tokens and groups, replaced on SIGHUP.
    access: RwLock<Access>,
    engine: EngineConfig,
    sandbox: Arc<Sandbox>,
    registry: Arc<Registry>,
    canary: Arc<Canary>,
    metrics: Arc<Metrics>,
    /// Topics no upload may produce to (replaced on SIGHUP).
    reserved_topics: RwLock<Vec<String>>,
    /// One change at a time per group, so that its quota count holds
    /// (within this instance; see docs/operators.md).
    changing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One compile or canary at a time. The permit moves into the
    /// blocking task and is released when the work really ends, even
    /// after the request gave up on it (compile_timeout).
    validating: Arc<tokio::sync::Semaphore>,
    /// Components (sha256) whose compile outlasted compile_timeout here:
    /// refused at once when uploaded again.
    too_slow: Mutex<HashSet<String>>,
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
        registry: Arc<Registry>,
        canary: Canary,
        metrics: Arc<Metrics>,
    ) -> Api {
        let admin = config.admin.clone().expect("the API needs [admin]");
        Api {
            access: RwLock::new(Access::of(&admin)),
            admin,
            engine: config.engine.clone(),
            sandbox,
            registry,
            canary: Arc::new(canary),
            metrics,
            reserved_topics: RwLock::new(registry::reserved_topics(config)),
            changing: Mutex::new(HashMap::new()),
            validating: Arc::new(tokio::sync::Semaphore::new(1)),
            too_slow: Mutex::new(HashSet::new()),
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

    /// Takes the tokens, groups and topics of a reloaded config (SIGHUP).
    /// A config without `[admin]` leaves no token valid.
    pub fn reconfigure(&self, config: &Config) {
        *self.access.write().unwrap() = match &config.admin {
            Some(admin) => Access::of(admin),
            None => Access {
                operator_token_sha256: None,
                groups: Vec::new(),
            },
        };
        *self.reserved_topics.write().unwrap() = registry::reserved_topics(config);
        self.registry.reconfigure(config);
    }

    /// A turn to compile or run a canary, waiting at most a compile's
    /// time for the one before to end.
    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        let wait = self.admin.uploads.compile_timeout + Duration::from_secs(5);
        match tokio::time::timeout(wait, self.validating.clone().acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("another upload has been checked here for {wait:?}: try again later"),
            )),
        }
    }

    /// The lock serializing changes to `group`'s filters.
    fn changing(&self, group: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.changing
            .lock()
            .unwrap()
            .entry(group.to_string())
            .or_default()
            .clone()
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
enum Caller {
    Operator,
    Group(String),
}

impl Caller {
    fn name(&self) -> &str {
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
    reason: String,
}

/// Longest reason in a refusal, in bytes: a reason may quote what the
/// caller sent, and is shown cut and escaped (`text::shown`), in the reply
/// and in the log line that records it.
const MAX_REASON_BYTES: usize = 2048;

fn refuse(status: StatusCode, reason: impl Into<String>) -> ApiError {
    let reason = crate::text::shown_owned(reason.into(), MAX_REASON_BYTES);
    ApiError { status, reason }
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

type Reply = Result<Response, ApiError>;

/// The paths of the filter API, each described in docs/admin-api.yaml.
const PATHS: [&str; 6] = [
    "/v1/filters",
    "/v1/groups/{group}/filters",
    "/v1/groups/{group}/filters/{name}",
    "/v1/groups/{group}/filters/{name}/enable",
    "/v1/groups/{group}/filters/{name}/disable",
    "/v1/groups/{group}/filters/{name}/logs",
];

/// The `/v1` routes.
pub fn routes(api: Arc<Api>) -> Router {
    // Multipart framing and the manifest on top of the component.
    let body_limit = api.admin.uploads.max_size + (1 << 20);
    Router::new()
        .route(PATHS[0], get(list_all))
        .route(PATHS[1], get(list_group))
        .route(PATHS[2], get(show).put(upload).delete(remove))
        .route(PATHS[3], post(enable))
        .route(PATHS[4], post(disable))
        .route(PATHS[5], get(logs))
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
    fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
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

    /// The caller, if it may act on `group`'s filters, and that group's
    /// settings (none for a group no longer configured, whose filters
    /// only the operator can still see and delete).
    fn authorize(
        &self,
        headers: &HeaderMap,
        group: &str,
    ) -> Result<(Caller, Option<GroupConfig>), ApiError> {
        let caller = self.caller(headers)?;
        if let Caller::Group(own) = &caller
            && own != group
        {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "this token is group '{own}''s: it cannot see or manage group '{group}''s filters"
                ),
            ));
        }
        let config = self
            .access
            .read()
            .unwrap()
            .groups
            .iter()
            .find(|g| g.name == group)
            .cloned();
        Ok((caller, config))
    }

    /// One filter as the API shows it, with this instance's counters.
    fn view(&self, entry: &Entry) -> Value {
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

    fn entry(&self, group: &str, name: &str) -> Result<Entry, ApiError> {
        self.registry.entry(group, name).ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                format!("group '{group}' has no filter '{name}'"),
            )
        })
    }
}

fn ok(status: StatusCode, body: Value) -> Reply {
    Ok((status, Json(body)).into_response())
}

/// The answer to a change whose registry write did not end well: 503
/// when it was not written (nothing changed), 202 with `body` and the
/// reason when it was written but does not run here yet.
fn written(error: WriteError, mut body: Value) -> Reply {
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
    let (caller, _) = api.authorize(&headers, &group)?;
    let changing = api.changing(&group);
    let _one = changing.lock().await;
    api.entry(&group, &name)?;
    if let Err(e) = api.registry.delete(&group, &name).await {
        return written(e, json!({ "deleted": registry::key(&group, &name) }));
    }
    tracing::info!(
        group,
        filter = name,
        by = caller.name(),
        "uploaded filter deleted"
    );
    ok(
        StatusCode::OK,
        json!({ "deleted": registry::key(&group, &name) }),
    )
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
    let (caller, _) = api.authorize(headers, group)?;
    let changing = api.changing(group);
    let _one = changing.lock().await;
    let entry = api.entry(group, name)?;
    let mut record = entry.record.clone();
    record.enabled = enabled;
    if let Err(e) = api.registry.put(&record, &entry.component, None).await {
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

/// The JSON part of an upload. Name, version and survey, where given,
/// must agree with the path and the component's own manifest.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadManifest {
    name: Option<String>,
    version: Option<String>,
    survey: Option<String>,
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    limits: Option<LimitsConfig>,
    /// Upload disabled (registered, not run). Default true.
    enabled: Option<bool>,
    /// Refused unless it is the derived topic: present so the refusal
    /// can say so.
    output_topic: Option<String>,
}

async fn upload(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Reply {
    let (caller, group_config) = api.authorize(&headers, &group)?;
    let group_config = group_config.ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            format!("no group '{group}': groups are defined in [[admin.group]]"),
        )
    })?;
    if !is_name(&name, 64) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "'{name}' is not a filter name: use lowercase letters, digits and dashes (at most 64)"
            ),
        ));
    }
    let max = api.admin.uploads.max_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max + (1 << 20)) {
        return Err(too_large(max));
    }
    let mut multipart = multipart.map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("send multipart/form-data with a `component` part (the .wasm) and a `manifest` part (JSON): {e}"),
        )
    })?;
    let body_timeout = api.admin.body_timeout;
    let (manifest_text, component) = tokio::time::timeout(
        body_timeout,
        read_parts(&mut multipart, max),
    )
    .await
    .map_err(|_| {
        refuse(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the upload's body did not arrive within {body_timeout:?} (admin.body_timeout)"
            ),
        )
    })??;
    let component = component.ok_or_else(|| {
        refuse(
            StatusCode::BAD_REQUEST,
            "no `component` part: attach the .wasm as `component`",
        )
    })?;
    if component.len() > max {
        return Err(too_large(max));
    }
    let (manifest, params) = parse_manifest(manifest_text.as_deref())?;
    let record = check_manifest(&api, &caller, &group_config, &name, manifest, params)?;

    let changing = api.changing(&group);
    let _one = changing.lock().await;
    let existing = api.registry.entry(&group, &name);
    let count = api
        .registry
        .entries()
        .values()
        .filter(|e| e.record.group == group)
        .count();
    if existing.is_none() && count >= group_config.max_filters {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "group '{group}' has {count} filters, its quota (max_filters = {}): delete one, or ask the operator for more",
                group_config.max_filters
            ),
        ));
    }
    // The group's share of the workers: its filters' mean times together.
    let budget = group_config.time_budget(&api.engine);
    let others: Duration = api
        .registry
        .entries()
        .values()
        .filter(|e| e.record.group == group && e.record.name != name)
        .map(|e| Duration::from_millis(e.record.limits.mean_ms))
        .sum();
    let asked = Duration::from_millis(record.limits.mean_ms);
    if others + asked > budget {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "group '{group}''s filters would together take up to {:?} per alert, over its \
                 time_budget of {budget:?} (each filter's limits.mean_time, added): ask for less \
                 mean_time, delete a filter, or ask the operator for more",
                others + asked
            ),
        ));
    }
    let mut record = record;
    let (filter, report) = validate(&api, &component, &mut record).await?;
    record.version = filter.manifest.version.clone();
    record.survey = filter.manifest.survey.clone();
    if record.description.is_empty() {
        record.description = filter.manifest.description.clone();
    }
    let put = api
        .registry
        .put(&record, &component, record.enabled.then_some(filter))
        .await;
    if let Err(e) = put {
        if matches!(e, WriteError::Pending(_)) {
            api.metrics.upload_accepted();
        }
        let view = api.entry(&group, &name).map(|e| api.view(&e)).ok();
        return written(e, json!({ "filter": view, "canary": report }));
    }
    api.metrics.upload_accepted();
    tracing::info!(
        group,
        filter = name,
        version = record.version,
        by = caller.name(),
        replaced = existing.is_some(),
        "filter uploaded"
    );
    let entry = api.entry(&group, &name)?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    ok(
        status,
        json!({ "filter": api.view(&entry), "canary": report }),
    )
}

/// The refusal of an upload over `max` bytes (however it was found out).
fn too_large(max: usize) -> ApiError {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the upload is larger than the {max} bytes allowed (admin.uploads.max_size)"),
    )
}

/// Bounds of what an upload's `manifest` part may hold, checked before
/// the host keeps any of it (docs/admin-api.yaml).
mod bounds {
    /// The whole `manifest` part, in bytes.
    pub const MANIFEST_BYTES: usize = 64 << 10;
    /// Parameters.
    pub const PARAMS: usize = 64;
    /// A parameter's name, in bytes.
    pub const PARAM_KEY_BYTES: usize = 64;
    /// A parameter's value, in bytes.
    pub const PARAM_VALUE_BYTES: usize = 4096;
}

/// Reads the `manifest` and `component` parts.
async fn read_parts(
    multipart: &mut Multipart,
    max: usize,
) -> Result<(Option<String>, Option<Vec<u8>>), ApiError> {
    let mut manifest = None;
    let mut component = None;
    let failed = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return too_large(max);
        }
        refuse(
            status,
            format!("the multipart body could not be read: {}", e.body_text()),
        )
    };
    while let Some(mut field) = multipart.next_field().await.map_err(failed)? {
        match field.name().unwrap_or_default() {
            "manifest" => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(failed)? {
                    if text.len() + chunk.len() > bounds::MANIFEST_BYTES {
                        return Err(refuse(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "the manifest part is over {} bytes: it holds names, limits and params only",
                                bounds::MANIFEST_BYTES
                            ),
                        ));
                    }
                    text.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(text).map_err(|_| {
                    refuse(
                        StatusCode::BAD_REQUEST,
                        "the manifest part is not UTF-8 JSON",
                    )
                })?;
                manifest = Some(text);
            }
            "component" => component = Some(field.bytes().await.map_err(failed)?.to_vec()),
            other => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("unknown part '{other}': send only `component` and `manifest`"),
                ));
            }
        }
    }
    Ok((manifest, component))
}

/// The `manifest` part, parsed and checked against [`bounds`] before
/// anything is kept; its params as the text `init` receives.
fn parse_manifest(
    text: Option<&str>,
) -> Result<(UploadManifest, BTreeMap<String, String>), ApiError> {
    let manifest: UploadManifest = match text.map(str::trim) {
        None | Some("") => UploadManifest::default(),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("manifest: {e}")))?,
    };
    if manifest.params.len() > bounds::PARAMS {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "manifest: {} params; at most {}",
                manifest.params.len(),
                bounds::PARAMS
            ),
        ));
    }
    if let Some(d) = &manifest.description
        && d.len() > crate::sandbox::manifest_bounds::DESCRIPTION_BYTES
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "manifest: description is {} bytes; at most {}",
                d.len(),
                crate::sandbox::manifest_bounds::DESCRIPTION_BYTES
            ),
        ));
    }
    let mut params = BTreeMap::new();
    for (k, v) in &manifest.params {
        if k.is_empty() || k.len() > bounds::PARAM_KEY_BYTES {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "manifest: param name '{k}' must be 1 to {} bytes",
                    bounds::PARAM_KEY_BYTES
                ),
            ));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("manifest: param '{k}' is {other}: give a string, number or boolean"),
                ));
            }
        };
        if text.len() > bounds::PARAM_VALUE_BYTES {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "manifest: param '{k}' is {} bytes; a value may have at most {}",
                    text.len(),
                    bounds::PARAM_VALUE_BYTES
                ),
            ));
        }
        params.insert(k.clone(), text);
    }
    Ok((manifest, params))
}

/// The record an upload asks for, checked against the caller's rights.
fn check_manifest(
    api: &Api,
    caller: &Caller,
    group: &GroupConfig,
    name: &str,
    manifest: UploadManifest,
    params: BTreeMap<String, String>,
) -> Result<Record, ApiError> {
    if let Some(n) = &manifest.name
        && n != name
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("manifest: name '{n}' differs from the path's '{name}'"),
        ));
    }
    let derived = registry::output_topic(&group.name, name);
    if let Some(t) = &manifest.output_topic
        && *t != derived
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "manifest: output_topic '{t}' refused: group '{}''s filter '{name}' produces to '{derived}', derived from the group and filter names",
                group.name
            ),
        ));
    }
    if api.reserved_topics.read().unwrap().contains(&derived) {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "'{derived}' is already an input, dead-letter, registry or configured output topic of this service: give the filter another name"
            ),
        ));
    }
    let limits = manifest.limits.unwrap_or(api.engine.limits);
    let max = group.max_limits.unwrap_or(api.engine.max_limits);
    if !limits.within(&max) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "manifest: limits ({}) over group '{}''s maximum ({})",
                limits.describe(),
                group.name,
                max.describe()
            ),
        ));
    }
    Ok(Record {
        group: group.name.clone(),
        name: name.to_string(),
        enabled: manifest.enabled.unwrap_or(true),
        params,
        limits: limits.to_limits(),
        version: manifest.version.unwrap_or_default(),
        survey: manifest.survey.unwrap_or_default(),
        // Kept as shown, like the component's own (sandbox/validate.rs).
        description: manifest
            .description
            .map(|d| crate::text::shown_owned(d, usize::MAX))
            .unwrap_or_default(),
        sha256: String::new(),
        uploaded_by: caller.name().to_string(),
        uploaded_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    })
}

fn refused(reason: String) -> ApiError {
    refuse(StatusCode::UNPROCESSABLE_ENTITY, reason)
}

fn crashed(e: tokio::task::JoinError) -> ApiError {
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("checking the upload crashed ({e}); nothing changed: report it to the operator"),
    )
}

/// Refuses what it can without compiling (`Sandbox::precheck`), then
/// loads (compiling within the time bound), checks the manifest's version
/// and survey against the component's own, and runs the canary; fills in
/// the record's sha256. A refused upload leaves no compiled code behind.
async fn validate(
    api: &Api,
    component: &[u8],
    record: &mut Record,
) -> Result<(Arc<LoadedFilter>, super::canary::CanaryReport), ApiError> {
    api.sandbox
        .precheck(component)
        .map_err(|e| refused(format!("component refused: {e}")))?;
    let bytes = Arc::new(component.to_vec());
    let hashed = bytes.clone();
    record.sha256 = tokio::task::spawn_blocking(move || sha256_hex(&hashed))
        .await
        .map_err(crashed)?;
    let cached_before = api.sandbox.is_cached(&record.sha256);
    let checked = compile_and_try(api, bytes, record).await;
    if checked.is_err() && !cached_before {
        api.sandbox.forget_compiled(&record.sha256);
    }
    checked
}

/// [`validate`]'s steps from the compile on.
async fn compile_and_try(
    api: &Api,
    bytes: Arc<Vec<u8>>,
    record: &mut Record,
) -> Result<(Arc<LoadedFilter>, super::canary::CanaryReport), ApiError> {
    let timeout: Duration = api.admin.uploads.compile_timeout;
    if api.too_slow.lock().unwrap().contains(&record.sha256) {
        return Err(refused(format!(
            "this component took longer than {timeout:?} to compile here before (admin.uploads.compile_timeout): make it smaller"
        )));
    }
    let sandbox = api.sandbox.clone();
    // With a compiled-code cache (the default with uploads), the compile
    // runs in a child process, killed at the time bound (see
    // sandbox/compile.rs); the load below then reads its artifact.
    let permit = api.permit().await?;
    let (compiling, checking) = (bytes.clone(), sandbox.clone());
    let (sha256, memory) = (record.sha256.clone(), api.admin.uploads.compile_memory);
    let compiled = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        compile_bounded(&checking, &compiling, &sha256, timeout, memory)
    })
    .await
    .map_err(crashed)?;
    if let Err(failure) = compiled {
        if matches!(failure, CompileFailure::TimedOut(_)) {
            api.too_slow.lock().unwrap().insert(record.sha256.clone());
        }
        return Err(refused(failure.to_string()));
    }
    let permit = api.permit().await?;
    let params: Vec<(String, String)> = record.params.clone().into_iter().collect();
    let limits = record.limits;
    let loading = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        sandbox.load(&bytes, params, limits)
    });
    let filter = match tokio::time::timeout(timeout, loading).await {
        Err(_) => {
            api.too_slow.lock().unwrap().insert(record.sha256.clone());
            return Err(refused(CompileFailure::TimedOut(timeout).to_string()));
        }
        Ok(joined) => joined
            .map_err(crashed)?
            .map_err(|e| refused(format!("component refused: {e}")))?,
    };
    if filter.cache == CacheOutcome::Compiled && api.sandbox.options().cache.is_some() {
        tracing::warn!(
            sha256 = %record.sha256,
            "an upload compiled in its child process was compiled again in the service: \
             the cache did not keep the artifact (see earlier warnings)"
        );
    }
    for (what, asked, own) in [
        ("version", &record.version, &filter.manifest.version),
        ("survey", &record.survey, &filter.manifest.survey),
    ] {
        if !asked.is_empty() && asked != own {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("manifest: {what} '{asked}' differs from the component's own, '{own}'"),
            ));
        }
    }
    let permit = api.permit().await?;
    let canary = api.canary.clone();
    let tried = filter.clone();
    let report = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        canary.try_filter(&tried)
    })
    .await
    .map_err(crashed)?
    .map_err(|why| refused(format!("canary: {why}")))?;
    Ok((filter, report))
}

/// Entry points for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub mod fuzzing {
    use axum::extract::FromRequest;

    use super::*;

    /// Reads an upload's body as the upload route does: its multipart
    /// parts within `max` bytes, then the manifest part's checks. Gives
    /// the number of params and the component's size, or the refusal.
    pub async fn read_upload(
        content_type: &str,
        body: Vec<u8>,
        max: usize,
    ) -> Result<(usize, usize), String> {
        let request = axum::http::Request::builder()
            .method("PUT")
            .uri("/")
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .map_err(|e| e.to_string())?;
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| e.body_text())?;
        let (manifest, component) = read_parts(&mut multipart, max)
            .await
            .map_err(|e| e.reason)?;
        let (_, params) = parse_manifest(manifest.as_deref()).map_err(|e| e.reason)?;
        Ok((params.len(), component.map_or(0, |c| c.len())))
    }
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
