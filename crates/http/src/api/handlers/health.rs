use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::{ApiError, ErrorBody};
use ferry_core::ports::{Port, StoreError, Unavailable};
use ferry_core::Error;
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
    responses((status = 200, body = Health),
        (status = 503, body = ErrorBody, description = "The store cannot be read (`backend_unavailable`).")))]
pub async fn healthz(State(hub): State<Hub>) -> Result<Json<Health>, ApiError> {
    hub.store.get(&keys::bootstrap()).await.map_err(|e| match e {
        StoreError::Unavailable(u) => Error::Unavailable(u),
        // Unhealthy whatever keeps the store from answering, a misconfigured one too.
        other => Error::Unavailable(Unavailable::new(Port::Store, other)),
    })?;
    Ok(Json(Health { status: "ok", store: hub.store.backend_name(), secrets: hub.secrets.backend_name() }))
}
