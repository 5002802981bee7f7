//! The authorization policy. Every `/v1` route declares an [`Access`]; the API's
//! guard calls [`authorize`] before any handler runs. This is the one place where
//! roles and tenant membership decide what a caller may do.

use crate::auth::Principal;
use ferry_core::error::{Error, Result};
use ferry_core::model::Tenant;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed.
    Public,
    /// Any valid credentials.
    Authenticated,
    /// Platform admins (users or admin keys) only.
    PlatformAdmin,
    /// Anyone who may enter the `{tenant}` of the path: admins, member users,
    /// and that tenant's `api_user` keys. `write` routes refuse archived tenants.
    Tenant { write: bool },
    /// Like `Tenant`, but people only (operators): keys cannot manage keys,
    /// notification endpoints or webhook secrets, nor cancel runs.
    TenantOperator { write: bool },
}

impl Access {
    pub fn needs_tenant(self) -> bool {
        matches!(self, Access::Tenant { .. } | Access::TenantOperator { .. })
    }
    fn writes(self) -> bool {
        matches!(self, Access::Tenant { write: true } | Access::TenantOperator { write: true })
    }
}

/// Decides whether `principal` may use a route with `access`. `tenant` is the
/// path's tenant id for tenant routes, looked up after membership is checked
/// so that non-members cannot probe which tenants exist.
pub fn authorize(principal: Option<&Principal>, access: Access, tenant_id: Option<&str>) -> Result<()> {
    let Some(p) = principal else {
        return match access {
            Access::Public => Ok(()),
            _ => Err(Error::Unauthorized(
                "this route needs credentials: send `Authorization: Bearer <API key or session token>`".into(),
            )),
        };
    };
    match access {
        Access::Public | Access::Authenticated => Ok(()),
        Access::PlatformAdmin if p.is_platform_admin() => Ok(()),
        Access::PlatformAdmin => Err(Error::Forbidden("only platform admins may do this".into())),
        Access::Tenant { .. } | Access::TenantOperator { .. } => {
            let tenant = tenant_id.ok_or_else(|| Error::Internal("tenant route without a tenant".into()))?;
            if matches!(access, Access::TenantOperator { .. }) && p.is_api_key() && !p.is_platform_admin() {
                return Err(Error::Forbidden(
                    "only people may do this (API keys cannot manage keys, endpoints or webhooks, nor cancel runs); sign in as a user"
                        .into(),
                ));
            }
            if p.can_enter(tenant) {
                Ok(())
            } else {
                Err(Error::Forbidden(format!("you have no access to tenant '{tenant}'")))
            }
        }
    }
}

/// Second half of a tenant route's check, once the tenant is loaded.
pub fn check_tenant_state(access: Access, tenant: &Tenant) -> Result<()> {
    if access.writes() {
        crate::tenants::ensure_writable(tenant)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::{KeyRole, UserRole};

    fn user(memberships: &[&str]) -> Principal {
        Principal::User {
            user_id: "u".into(),
            email: "u@x".into(),
            role: UserRole::User,
            memberships: memberships.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn members_enter_only_their_tenants() {
        let p = user(&["a"]);
        assert!(authorize(Some(&p), Access::Tenant { write: true }, Some("a")).is_ok());
        assert!(matches!(authorize(Some(&p), Access::Tenant { write: false }, Some("b")), Err(Error::Forbidden(_))));
        assert!(matches!(authorize(Some(&p), Access::PlatformAdmin, None), Err(Error::Forbidden(_))));
    }

    #[test]
    fn api_user_keys_cannot_manage_keys() {
        let k = Principal::ApiKey { key_id: "k".into(), tenant: "a".into(), role: KeyRole::ApiUser };
        assert!(authorize(Some(&k), Access::Tenant { write: true }, Some("a")).is_ok());
        assert!(authorize(Some(&k), Access::TenantOperator { write: true }, Some("a")).is_err());
    }

    #[test]
    fn anonymous_only_reaches_public_routes() {
        assert!(authorize(None, Access::Public, None).is_ok());
        assert!(matches!(authorize(None, Access::Authenticated, None), Err(Error::Unauthorized(_))));
    }
}
