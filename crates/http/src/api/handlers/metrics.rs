//! Run metrics: reports read from the aggregates run ends keep (no scan of
//! run history), per tenant and platform-wide.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::ApiQuery;
use ferry_core::model::metrics::MetricsReport;
use ferry_service::metrics::MetricsQuery;
use ferry_service::Hub;

/// `?days=&integration=` of a metrics report.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// UTC days ending today, 1 to 90 (default 7). Taken as text so a bad
    /// value is answered with `invalid_days` rather than a generic error.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 90)]
    pub days: Option<String>,
    /// Only this integration's runs.
    pub integration: Option<String>,
}

impl From<MetricsParams> for MetricsQuery {
    fn from(p: MetricsParams) -> Self {
        MetricsQuery { days: p.days, integration: p.integration }
    }
}

/// Run metrics of every tenant (platform admins): runs per UTC day by
/// status, success rate, duration p50/p95 (from a histogram, within 9.1%),
/// records read and written, per integration.
#[utoipa::path(get, path = "/v1/metrics", tag = "metrics", params(MetricsParams),
    responses((status = 200, body = MetricsReport),
        (status = 400, description = "`invalid_days`, `invalid_integration`, `invalid_query`.", body = ErrorBody)))]
pub async fn platform(
    State(hub): State<Hub>,
    ApiQuery(q): ApiQuery<MetricsParams>,
) -> Result<Json<MetricsReport>, ApiError> {
    Ok(Json(hub.metrics().platform(&q.into()).await?))
}

/// Run metrics of one tenant, as `GET /v1/metrics` reports the platform's.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/metrics", tag = "metrics",
    params(("tenant" = String, Path), MetricsParams),
    responses((status = 200, body = MetricsReport),
        (status = 400, description = "`invalid_days`, `invalid_integration`, `invalid_query`.", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn tenant(
    State(hub): State<Hub>,
    Path(tenant): Path<String>,
    ApiQuery(q): ApiQuery<MetricsParams>,
) -> Result<Json<MetricsReport>, ApiError> {
    Ok(Json(hub.metrics().tenant(&tenant, &q.into()).await?))
}
