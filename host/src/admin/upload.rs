//! The upload route, `PUT /v1/groups/{group}/filters/{name}`: what is
//! HTTP about an upload (the token, the multipart body read within its
//! bounds and time), handed to [`crate::fleet::Admission`] for the
//! decision, then written to the fleet.

use std::sync::Arc;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::json;

use super::api::{Api, ApiError, Reply, ok, refuse, written};
use crate::fleet::admission::{self, bounds};
use crate::fleet::policy::check_name;
use crate::fleet::{Upload, WriteError};

pub(super) async fn upload(
    State(api): State<Arc<Api>>,
    Path((group, name)): Path<(String, String)>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Reply {
    let caller = api.authorize(&headers, &group)?;
    api.registry.policy().group(&group)?;
    check_name(&name)?;
    let max = api.admission.max_size();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max + (1 << 20)) {
        return Err(api.admission.too_large().into());
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
    let admitted = api
        .admission
        .decide(Upload {
            group: group.clone(),
            name: name.clone(),
            by: caller.name().to_string(),
            manifest: manifest_text,
            component,
        })
        .await?;
    let (record, report) = (&admitted.record, &admitted.report);
    let put = api.registry.put(&admitted).await;
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
        replaced = admitted.replaces,
        "filter uploaded"
    );
    let entry = api.entry(&group, &name)?;
    let status = if admitted.replaces {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    ok(
        status,
        json!({ "filter": api.view(&entry), "canary": report }),
    )
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
            return ApiError::from(admission::too_large(max));
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
        let params = crate::fleet::admission::fuzzing::parse_manifest(manifest.as_deref())
            .map_err(|denial| ApiError::from(denial).reason)?;
        Ok((params, component.map_or(0, |c| c.len())))
    }
}
