use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::execution::RunControl;
use crate::repo::{keys, lookups, records, Page, PageRequest};
use crate::{Jobs, Notifications};
use ferry_core::error::{Error, Result};
use ferry_core::model::ids::{is_valid_id, is_valid_name, PLATFORM};
use ferry_core::model::Tenant;
use ferry_core::ports::{Clock, Condition, IdGen, Index, Query, Store};

/// Tenants: create, read, list (the ones a principal may see), update (pause)
/// and archive. Pausing or archiving a tenant pauses its jobs' schedules
/// (`jobs`: `sync_tenant_schedules`); resuming one asks run execution to
/// serve the webhook deliveries its jobs held (`runs`); creating and
/// archiving emit events (`notifications`).
#[derive(Clone, Copy)]
pub struct Tenants<'h> {
    pub(crate) store: &'h dyn Store,
    pub(crate) clock: &'h dyn Clock,
    pub(crate) ids: &'h dyn IdGen,
    pub(crate) jobs: Jobs<'h>,
    pub(crate) notifications: Notifications<'h>,
    pub(crate) runs: &'h dyn RunControl,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Lowercase letters, digits and `-`; generated when omitted. Appears in API keys.
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub paused: Option<bool>,
}

/// The rule of archived tenants, in one place: an archived tenant is
/// read-only, and a change to it or its resources is refused with 409
/// `tenant_archived`. The API's guard applies it to every write route
/// (`auth::policy::check_tenant_state`); what changes state outside the API
/// applies it too: the connect pages and OAuth callbacks
/// ([`Connections::customer_side`]), the webhook intake ([`Hooks::store_delivery`]),
/// run triggers ([`crate::jobs::held_because`]: webhook runs, scheduled ticks) and
/// tenant updates (an archived tenant is never resumed).
pub fn ensure_writable(tenant: &Tenant) -> Result<()> {
    if tenant.archived {
        return Err(Error::conflict("tenant_archived", format!("tenant '{}' is archived and read-only", tenant.id)));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid("invalid_name", "name must be 1 to 200 characters without control characters"))
    }
}

impl Tenants<'_> {
    #[tracing::instrument(skip_all, fields(tenant))]
    pub async fn create_tenant(&self, input: NewTenant) -> Result<Tenant> {
        check_name(&input.name)?;
        let id = match input.id {
            Some(id) if id == PLATFORM => {
                return Err(Error::invalid("invalid_id", "'platform' is reserved; choose another tenant id"))
            }
            Some(id) if is_valid_id(&id) => id,
            Some(_) => {
                return Err(Error::invalid(
                    "invalid_id",
                    "tenant id must be 1 to 64 lowercase letters, digits or '-', starting with a letter or digit",
                ))
            }
            None => self.ids.next_id(),
        };
        tracing::Span::current().record("tenant", id.as_str());
        let now = self.clock.now();
        let tenant = Tenant {
            id: id.clone(),
            name: input.name,
            paused: input.paused,
            archived: false,
            created_at: now,
            updated_at: now,
        };
        let op = records::put(keys::tenant(&id), &tenant, Condition::NotExists)?;
        records::write_or_conflict(self.store, vec![op], || {
            Error::conflict("tenant_exists", format!("a tenant with id '{id}' already exists"))
        })
        .await?;
        self.notifications
            .emit(ferry_core::ports::EventKind::TenantCreated, Some(&id), serde_json::json!({"tenant": id}))
            .await;
        Ok(tenant)
    }

    pub async fn get_tenant(&self, id: &str) -> Result<Tenant> {
        lookups::tenant(self.store, id).await
    }

    /// Tenants visible to the caller: all for admins, memberships for others.
    pub async fn list_tenants(&self, principal: &Principal, page: &PageRequest) -> Result<Page<Tenant>> {
        match principal.visible_tenants() {
            None => records::list(self.store, Query::partition(Index::Primary, keys::TENANTS), page).await,
            Some(mut ids) => {
                // Memberships are few and live on the principal: page over them in
                // id order, with the same limit and cursor rules as the stored list.
                ids.sort();
                ids.dedup();
                let limit = page.limit()? as usize;
                let after = match &page.cursor {
                    Some(c) => Some(records::decode_cursor(c, Index::Primary, keys::TENANTS, None)?.key.sk),
                    None => None,
                };
                let mut items = Vec::new();
                let mut remaining = ids.into_iter().filter(|id| after.as_ref().is_none_or(|a| id > a)).peekable();
                while items.len() < limit {
                    let Some(id) = remaining.next() else { break };
                    if let Some(t) = lookups::find_tenant(self.store, &id).await? {
                        items.push(t);
                    }
                }
                let next_cursor = match (remaining.peek(), items.last()) {
                    (Some(_), Some(last)) => Some(records::encode_cursor(&ferry_core::ports::Position {
                        key: keys::tenant(&last.id),
                        index_key: None,
                    })),
                    _ => None,
                };
                Ok(Page { items, next_cursor })
            }
        }
    }

    #[tracing::instrument(skip_all, fields(tenant = id))]
    pub async fn update_tenant(&self, id: &str, patch: TenantPatch) -> Result<Tenant> {
        if let Some(name) = &patch.name {
            check_name(name)?;
        }
        let was_paused = std::sync::atomic::AtomicBool::new(false);
        let tenant = self
            .modify_tenant(id, |t| {
                // Archived is for good: not renamed, not resumed (its jobs would run again).
                ensure_writable(t)?;
                was_paused.store(t.paused, std::sync::atomic::Ordering::Relaxed);
                if let Some(name) = patch.name.clone() {
                    t.name = name;
                }
                if let Some(paused) = patch.paused {
                    t.paused = paused;
                }
                Ok(())
            })
            .await?;
        if patch.paused.is_some() {
            self.jobs.sync_tenant_schedules(id).await;
        }
        if was_paused.into_inner() && !tenant.paused {
            self.runs.serve_held_deliveries_of_tenant(id).await;
        }
        Ok(tenant)
    }

    #[tracing::instrument(skip_all, fields(tenant = id))]
    pub async fn archive_tenant(&self, id: &str) -> Result<Tenant> {
        let was_archived = lookups::find_tenant(self.store, id).await?.is_some_and(|t| t.archived);
        let tenant = self
            .modify_tenant(id, |t| {
                t.archived = true;
                t.paused = true;
                Ok(())
            })
            .await?;
        self.jobs.sync_tenant_schedules(id).await;
        if !was_archived {
            self.notifications
                .emit(ferry_core::ports::EventKind::TenantArchived, Some(id), serde_json::json!({"tenant": id}))
                .await;
        }
        Ok(tenant)
    }

    async fn modify_tenant(&self, id: &str, change: impl Fn(&mut Tenant) -> Result<()>) -> Result<Tenant> {
        let current = records::get::<Tenant>(self.store, &keys::tenant(id))
            .await?
            .ok_or_else(|| Error::not_found("tenant", id))?;
        let mut tenant = current.value;
        change(&mut tenant)?;
        tenant.updated_at = self.clock.now();
        let op = records::put(keys::tenant(id), &tenant, Condition::VersionIs(current.version))?;
        records::write_or_conflict(self.store, vec![op], || {
            Error::conflict("concurrent_update", "the tenant changed while updating it; retry")
        })
        .await?;
        Ok(tenant)
    }
}
