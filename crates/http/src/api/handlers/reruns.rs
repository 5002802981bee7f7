use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::guard::Caller;
use ferry_service::auth::Principal;
use ferry_service::reruns::{RerunRequest, Triggered};
use ferry_service::Hub;

/// Rerun an ended run, with the configuration it recorded (`original`: its
/// release, connections, configs and mapping versions) or the job as it is
/// now (`current`), and its mode and options. The new run has `rerun_of` and a
/// `rerun` trigger. While a run of the job is going, the rerun waits for a run
/// of its own after it (`bundled`; the answer names the run holding the job).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/jobs/{job}/runs/{run}/rerun", tag = "runs",
    params(("tenant" = String, Path), ("job" = String, Path), ("run" = String, Path)), request_body = RerunRequest,
    responses((status = 202, body = Triggered), (status = 404, body = ErrorBody),
        (status = 409, description = "The run cannot be rerun: it has not ended (`run_not_finished`), it is a webhook \
            run (`not_rerunnable`), or, with `original`, it recorded no configuration (`run_config_unknown`) or what \
            it recorded is gone (`release_gone`, `mapping_version_gone`, `connection_gone`).", body = ErrorBody)))]
pub async fn rerun(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path((tenant, job, run)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<RerunRequest>,
) -> Result<(StatusCode, Json<Triggered>), ApiError> {
    let by = match &p {
        Principal::User { email, .. } => email.clone(),
        Principal::ApiKey { key_id, .. } => format!("API key {key_id}"),
    };
    Ok((StatusCode::ACCEPTED, Json(hub.runs().rerun(&tenant, &job, &run, body, &by).await?)))
}
