//! A job's inbound webhook and connector information.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiJson;
use crate::api::guard::Caller;
use ferry_service::auth::Principal;
use ferry_service::hooks::service::{ConnectorInfo, WebhookInfo};
use ferry_service::Hub;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableWebhook {
    /// The provider's signing secret, when the provider issues it (Shopify app
    /// secret, HubSpot client secret). Omit it to get a generated Standard Webhooks secret.
    #[serde(default)]
    pub secret: Option<String>,
}

/// Enable the job's inbound webhook, or rotate its secret (operators only).
/// The answer holds the URL and the secret to paste into the provider.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/jobs/{job}/webhook", tag = "webhooks",
    params(("tenant" = String, Path), ("job" = String, Path)), request_body = EnableWebhook,
    responses((status = 200, body = WebhookInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(hub): State<Hub>,
    Path((tenant, job)): Path<(String, String)>,
    ApiJson(body): ApiJson<EnableWebhook>,
) -> Result<Json<WebhookInfo>, ApiError> {
    Ok(Json(hub.hooks().enable_webhook_info(&tenant, &job, body.secret).await?))
}

/// What to set up in each provider: the manifest's connector descriptions and
/// setup hints, and the webhook URL (with its secret for operators, never for API keys).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/jobs/{job}/connector-info", tag = "webhooks",
    params(("tenant" = String, Path), ("job" = String, Path)),
    responses((status = 200, body = ConnectorInfo), (status = 404, body = ErrorBody)))]
pub async fn connector_info(
    State(hub): State<Hub>,
    Extension(Caller(p)): Extension<Caller>,
    Path((tenant, job)): Path<(String, String)>,
) -> Result<Json<ConnectorInfo>, ApiError> {
    let operator = matches!(p, Principal::User { .. }) || p.is_platform_admin();
    Ok(Json(hub.hooks().connector_info(&tenant, &job, operator).await?))
}
