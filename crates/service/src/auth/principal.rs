//! Who is calling.

use serde::Serialize;
use utoipa::ToSchema;

use ferry_core::model::{KeyRole, UserRole};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    User { user_id: String, email: String, role: UserRole, memberships: Vec<String> },
    ApiKey { key_id: String, tenant: String, role: KeyRole },
}

impl Principal {
    pub fn is_platform_admin(&self) -> bool {
        matches!(
            self,
            Principal::User { role: UserRole::PlatformAdmin, .. } | Principal::ApiKey { role: KeyRole::Admin, .. }
        )
    }

    pub fn is_api_key(&self) -> bool {
        matches!(self, Principal::ApiKey { .. })
    }

    /// Whether this caller may act inside `tenant` at all.
    pub fn can_enter(&self, tenant: &str) -> bool {
        if self.is_platform_admin() {
            return true;
        }
        match self {
            Principal::User { memberships, .. } => memberships.iter().any(|m| m == tenant),
            Principal::ApiKey { tenant: own, role: KeyRole::ApiUser, .. } => own == tenant,
            Principal::ApiKey { .. } => false,
        }
    }

    /// The tenants this caller sees in lists; `None` means all of them.
    pub fn visible_tenants(&self) -> Option<Vec<String>> {
        if self.is_platform_admin() {
            return None;
        }
        match self {
            Principal::User { memberships, .. } => Some(memberships.clone()),
            Principal::ApiKey { tenant, .. } => Some(vec![tenant.clone()]),
        }
    }

    /// A short, secret-free description for logs.
    pub fn log_id(&self) -> String {
        match self {
            Principal::User { user_id, .. } => format!("user:{user_id}"),
            Principal::ApiKey { key_id, .. } => format!("key:{key_id}"),
        }
    }
}
