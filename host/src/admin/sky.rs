//! A group's watchlists and sky maps through the filter API
//! (docs/design/sky.md, section 3): `PUT /v1/groups/{group}/watchlists/{name}`
//! and `.../maps/{name}` (the file as the body; `?expires_in=12h`),
//! `GET` of one or of the group's list, `DELETE`.
//!
//! Owns: the HTTP of it and the group's quota (count and size), checked
//! before the body is read; the file is read by the same readers as the
//! operator's (every target, cell and count checked) before anything is
//! written to the registry, which takes it to every instance.
//!
//! Must never: keep a file that did not read, read more of a body than
//! the group's `max_sky_size`, or show one group another's files.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::api::{Api, Reply, ok, refuse, written};
use crate::fleet::follower::now_ms;
use crate::fleet::record::{SkyEntry, SkyFile, SkyKind, SkyRecord, sky_key};

/// The query an upload may carry.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PutQuery {
    /// After this long (`"12h"`, at most a week) the file's filters read
    /// it absent and it no longer counts in the quota.
    expires_in: Option<String>,
}

/// What the API shows of one file.
fn view(api: &Api, entry: &SkyEntry) -> Value {
    let r = &entry.record;
    let sky = api.registry.sky();
    let key = format!("{}/{}", r.group, r.name);
    let holds = match r.kind {
        SkyKind::Watchlist => sky
            .watchlist_for(Some(&r.group), &r.name)
            .filter(|(k, _)| *k == key)
            .map(|(_, l)| json!({ "version": l.version(), "targets": l.targets() })),
        SkyKind::Map => sky
            .map_for(Some(&r.group), &r.name)
            .filter(|(k, _)| *k == key)
            .map(|(_, m)| {
                json!({ "version": m.version(), "kind": m.kind(), "area_deg2": m.area_deg2() })
            }),
    };
    json!({
        "group": r.group,
        "kind": r.kind,
        "name": r.name,
        "version": &r.sha256[..12.min(r.sha256.len())],
        "sha256": r.sha256,
        "bytes": entry.file.len(),
        "expires_at_ms": r.expires_at_ms,
        "expired": r.expired(now_ms()),
        "uploaded_by": r.uploaded_by,
        "uploaded_at_ms": r.uploaded_at_ms,
        // What this instance's filters read under the name (null: none,
        // expired, or it did not read here), and whether this record is
        // what they read (false: on its way, or superseded).
        "in_use": holds,
        "in_effect": api.registry.in_effect(entry.offset),
        // Why it is not in use here though unexpired (it did not read on
        // this instance, configured apart).
        "problem": api.registry.sky_problem(&r.key()),
    })
}

fn entry(
    api: &Api,
    group: &str,
    kind: SkyKind,
    name: &str,
) -> Result<SkyEntry, super::api::ApiError> {
    let key = sky_key(group, kind, name);
    api.registry
        .sky_entries(group)
        .into_iter()
        .find(|e| e.record.key() == key)
        .ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                format!(
                    "group '{group}' has no {} '{}'",
                    singular(kind),
                    crate::text::shown(name, 64)
                ),
            )
        })
}

fn singular(kind: SkyKind) -> &'static str {
    match kind {
        SkyKind::Watchlist => "watchlist",
        SkyKind::Map => "sky map",
    }
}

pub(super) async fn list(api: Arc<Api>, group: String, headers: HeaderMap, kind: SkyKind) -> Reply {
    api.authorize(&headers, &group)?;
    let files: Vec<Value> = api
        .registry
        .sky_entries(&group)
        .iter()
        .filter(|e| e.record.kind == kind)
        .map(|e| view(&api, e))
        .collect();
    ok(StatusCode::OK, json!({ kind.plural(): files }))
}

pub(super) async fn show(
    api: Arc<Api>,
    (group, name): (String, String),
    headers: HeaderMap,
    kind: SkyKind,
) -> Reply {
    api.authorize(&headers, &group)?;
    let entry = entry(&api, &group, kind, &name)?;
    ok(StatusCode::OK, view(&api, &entry))
}

pub(super) async fn remove(
    api: Arc<Api>,
    (group, name): (String, String),
    headers: HeaderMap,
    kind: SkyKind,
) -> Reply {
    let caller = api.authorize(&headers, &group)?;
    let _turn = api.admission.turn(&group).await;
    entry(&api, &group, kind, &name)?;
    let key = sky_key(&group, kind, &name);
    if let Err(e) = api.registry.delete_sky(&group, kind, &name).await {
        return written(e, json!({ "deleted": key }));
    }
    tracing::info!(
        group,
        file = key,
        by = caller.name(),
        "group's sky file deleted"
    );
    ok(StatusCode::OK, json!({ "deleted": key }))
}

pub(super) async fn put(
    api: Arc<Api>,
    (group, name): (String, String),
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
    kind: SkyKind,
) -> Reply {
    let caller = api.authorize(&headers, &group)?;
    let rules = api.registry.policy();
    let quota = rules.group(&group)?.clone();
    if !crate::sky::is_catalog_name(&name) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "'{}' is not a {} name: use 1 to {} of a-z, 0-9, '_' and '-' (filters read it \
                 as {}.<name>.*)",
                crate::text::shown(&name, 80),
                singular(kind),
                crate::sky::CATALOG_NAME_BYTES,
                if kind == SkyKind::Map { "map" } else { "watch" }
            ),
        ));
    }
    let Query(query) = query.map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            format!("the query takes only expires_in (such as ?expires_in=12h): {e}"),
        )
    })?;
    let expires_in = query
        .expires_in
        .as_deref()
        .map(crate::units::parse_duration)
        .transpose()
        .map_err(|why| refuse(StatusCode::BAD_REQUEST, format!("expires_in: {why}")))?;
    let max = quota.max_sky_size(&api.admin.uploads);
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the file is larger than the {max} bytes group '{group}' may upload \
                 (admin.group.max_sky_size)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    // One name, one file: a group's file hiding the operator's of the
    // same name would change what its filters read when it goes.
    let sky = api.registry.sky();
    let operators = match kind {
        SkyKind::Watchlist => sky.watchlist(&name).is_some(),
        SkyKind::Map => sky.map(&name).is_some(),
    };
    if operators {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "the operator publishes a {} '{name}', which every group's filters read: give \
                 yours another name",
                singular(kind)
            ),
        ));
    }
    let _turn = api.admission.turn(&group).await;
    let key = sky_key(&group, kind, &name);
    let now = now_ms();
    let files = api.registry.sky_entries(&group);
    let replaces = files.iter().any(|e| e.record.key() == key);
    // Expired files count until deleted or replaced: the registry keeps
    // their records until then.
    let others: Vec<&SkyEntry> = files.iter().filter(|e| e.record.key() != key).collect();
    if others.len() >= quota.max_sky_files {
        let expired = others.iter().filter(|e| e.record.expired(now)).count();
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!(
                "group '{group}' already has {} other watchlists and sky maps ({expired} of \
                 them expired), its quota (max_sky_files = {}): delete one (DELETE \
                 /v1/groups/{group}/watchlists/NAME or .../maps/NAME), replace one, or ask the \
                 operator for more",
                others.len(),
                quota.max_sky_files
            ),
        ));
    }
    let body_timeout = api.admin.body_timeout;
    let bytes = tokio::time::timeout(body_timeout, axum::body::to_bytes(body, max))
        .await
        .map_err(|_| {
            refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!("the file did not arrive within {body_timeout:?} (admin.body_timeout)"),
            )
        })?
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is empty: send the {} file as the body",
                singular(kind)
            ),
        ));
    }
    // Read as every instance will read it: refused here, with the
    // reader's reason, rather than unused there.
    let max_radius = api.registry.sky().caps().max_radius_arcsec;
    let file = bytes.clone();
    let read =
        tokio::task::spawn_blocking(move || SkyFile::read(kind, &file, max_radius).map(drop))
            .await
            .map_err(|e| {
                refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("reading the file crashed: {e}"),
                )
            })?;
    if let Err(why) = read {
        return Err(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} '{name}': {why:#}", singular(kind)),
        ));
    }
    let record = SkyRecord {
        group: group.clone(),
        kind,
        name: name.clone(),
        sha256: crate::sandbox::sha256_hex(&bytes),
        expires_at_ms: expires_in.map(|d: Duration| now + d.as_millis() as u64),
        uploaded_by: caller.name().to_string(),
        uploaded_at_ms: now,
    };
    let shown = |api: &Api| entry(api, &group, kind, &name).map(|e| view(api, &e)).ok();
    if let Err(e) = api.registry.put_sky(&record, &bytes).await {
        return written(e, json!({ "file": shown(&api) }));
    }
    tracing::info!(
        group,
        file = key,
        version = &record.sha256[..12],
        by = caller.name(),
        replaced = replaces,
        "group's sky file uploaded"
    );
    let status = if replaces {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    ok(status, shown(&api).unwrap_or(Value::Null))
}
