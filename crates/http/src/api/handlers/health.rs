use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use ferry_service::repo::keys;
use ferry_service::Hub;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub store: &'static str,
    pub secrets: &'static str,
}

/// Liveness and store reachability.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn healthz(State(hub): State<Hub>) -> Result<Json<Health>, ApiError> {
    hub.store.get(&keys::bootstrap()).await.map_err(ferry_core::Error::from)?;
    Ok(Json(Health { status: "ok", store: hub.store.backend_name(), secrets: hub.secrets.backend_name() }))
}
