use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::List;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ApiQuery, ListParams};
use crate::api::guard::Caller;
use ferry_core::model::UserView;
use ferry_service::auth::Principal;
use ferry_service::users::{NewUser, UserPatch};
use ferry_service::Hub;

/// Create a user (platform admins).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(hub): State<Hub>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    Ok((StatusCode::CREATED, Json(UserView::from(&hub.users().create_user(body).await?))))
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListParams), responses((status = 200, body = List<UserView>)))]
pub async fn list(State(hub): State<Hub>, ApiQuery(q): ApiQuery<ListParams>) -> Result<Json<List<UserView>>, ApiError> {
    Ok(Json(List::from_page(hub.users().list_users(&q.into()).await?, |u| UserView::from(u))))
}

#[utoipa::path(get, path = "/v1/users/{user}", tag = "users", params(("user" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get(State(hub): State<Hub>, Path(user): Path<String>) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&hub.users().get_user(&user).await?)))
}

/// Change a user's name, role, active flag or password. The email is immutable.
#[utoipa::path(patch, path = "/v1/users/{user}", tag = "users", params(("user" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(hub): State<Hub>,
    Path(user): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&hub.users().update_user(&user, body).await?)))
}

/// Delete a user: its sessions end and every API key it created is revoked.
#[utoipa::path(delete, path = "/v1/users/{user}", tag = "users", params(("user" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(State(hub): State<Hub>, Path(user): Path<String>) -> Result<StatusCode, ApiError> {
    hub.users().delete_user(&user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Let a user enter a tenant.
#[utoipa::path(put, path = "/v1/users/{user}/memberships/{tenant}", tag = "users",
    params(("user" = String, Path), ("tenant" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn add_membership(
    State(hub): State<Hub>,
    Path((user, tenant)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&hub.users().add_membership(&user, &tenant).await?)))
}

#[utoipa::path(delete, path = "/v1/users/{user}/memberships/{tenant}", tag = "users",
    params(("user" = String, Path), ("tenant" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn remove_membership(
    State(hub): State<Hub>,
    Path((user, tenant)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(&hub.users().remove_membership(&user, &tenant).await?)))
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/me", tag = "users", responses((status = 200, body = Principal)))]
pub async fn me(Extension(Caller(p)): Extension<Caller>) -> Json<Principal> {
    Json(p)
}
