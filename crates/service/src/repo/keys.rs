//! Where each record lives in the single table. The access patterns are
//! documented in `docs/storage.md`; keep the two in step.

use ferry_core::ports::Key;

pub const TENANTS: &str = "TENANTS";
pub const USERS: &str = "USERS";
pub const PLATFORM_PK: &str = "PLATFORM";
pub const INTEGRATIONS: &str = "INTEGRATIONS";

pub fn tenant_partition(tenant: &str) -> String {
    format!("T#{tenant}")
}

pub fn tenant(id: &str) -> Key {
    Key::new(TENANTS, id)
}

pub fn user(id: &str) -> Key {
    Key::new(USERS, id)
}

/// Uniqueness claim on an email; body `{ "user_id": ... }`.
pub fn email_claim(email_lower: &str) -> Key {
    Key::new(format!("EMAIL#{email_lower}"), "EMAIL")
}

/// API keys of a tenant (or of the platform for admin keys) partition under the owner.
pub fn api_key(owner_tenant: &str, key_id: &str) -> Key {
    Key::new(key_owner_partition(owner_tenant), format!("KEY#{key_id}"))
}

pub fn key_owner_partition(owner_tenant: &str) -> String {
    if owner_tenant == ferry_core::model::ids::PLATFORM {
        PLATFORM_PK.to_owned()
    } else {
        tenant_partition(owner_tenant)
    }
}

/// Lookup of a key record by the SHA-256 of the presented key; body `{ "tenant", "key_id" }`.
pub fn key_hash(hash_hex: &str) -> Key {
    Key::new(format!("KEYHASH#{hash_hex}"), "KEYHASH")
}

/// The API keys a user created, so deleting the user revokes them; body `{ "tenant", "key_id" }`.
pub fn user_keys_partition(user_id: &str) -> String {
    format!("USERKEYS#{user_id}")
}

pub fn user_key(user_id: &str, owner_tenant: &str, key_id: &str) -> Key {
    Key::new(user_keys_partition(user_id), format!("KEY#{owner_tenant}#{key_id}"))
}

/// Failed sign-ins of one account or address (`auth::throttle`); expires once forgotten.
pub fn login_throttle(subject: &str) -> Key {
    Key::new(format!("THROTTLE#{subject}"), "THROTTLE")
}

/// A login session by the SHA-256 of its token.
pub fn session(hash_hex: &str) -> Key {
    Key::new(format!("SESSION#{hash_hex}"), "SESSION")
}

pub fn connection(tenant: &str, id: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("CONN#{id}"))
}

/// Uniqueness claim on a connection name within a tenant; body `{ "id" }`.
pub fn connection_name_claim(tenant: &str, name_lower: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("NAME#CONN#{name_lower}"))
}

/// Written once, when the first platform admin key is created.
pub fn bootstrap() -> Key {
    Key::new(PLATFORM_PK, "BOOTSTRAP")
}

/// Marks that the first platform admin user was made (`bootstrap.rs`).
pub fn admin_user_bootstrap() -> Key {
    Key::new(PLATFORM_PK, "BOOTSTRAP#ADMIN_USER")
}

pub fn integration(name: &str) -> Key {
    Key::new(INTEGRATIONS, name)
}

pub fn integration_partition(integration: &str) -> String {
    format!("INTEGRATION#{integration}")
}

/// A release's parsed manifest and metadata. Zero-padded so sort-key order is number order.
pub fn release(integration: &str, number: u32) -> Key {
    Key::new(integration_partition(integration), format!("REL#{number:010}"))
}

/// A release's manifest text, apart from the parsed manifest so each item stays
/// under DynamoDB's item size limit and job validation reads only the parsed one.
pub fn release_source(integration: &str, number: u32) -> Key {
    Key::new(integration_partition(integration), format!("SRC#{number:010}"))
}

pub fn job(tenant: &str, id: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("JOB#{id}"))
}

/// Uniqueness claim on a job name within a tenant; body `{ "id" }`.
pub fn job_name_claim(tenant: &str, name_lower: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("NAME#JOB#{name_lower}"))
}

/// Rewritten (version +1) by every job write that adds references to
/// connections or mappings. Deleting a connection or mapping checks its version
/// atomically with the delete, so a job cannot start referencing a record
/// between the "is it in use?" scan and the delete.
pub fn job_refs_marker(tenant: &str) -> Key {
    Key::new(tenant_partition(tenant), "REFS#JOBS")
}

pub fn mapping(tenant: &str, id: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("MAP#{id}"))
}

/// The earlier versions of a mapping configuration, one item per version
/// (the current one is the mapping's own record).
pub fn mapping_versions_partition(tenant: &str, id: &str) -> String {
    format!("T#{tenant}#MAP#{id}")
}

/// A mapping configuration as it was at `version`, kept when an update replaced it.
pub fn mapping_version(tenant: &str, id: &str, version: u32) -> Key {
    Key::new(mapping_versions_partition(tenant, id), format!("V#{version:010}"))
}

/// Uniqueness claim on a mapping configuration name within a tenant; body `{ "id" }`.
pub fn mapping_name_claim(tenant: &str, name_lower: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("NAME#MAP#{name_lower}"))
}

pub fn run(tenant: &str, job: &str, run_id: &str) -> Key {
    Key::new(format!("T#{tenant}#JOB#{job}"), format!("RUN#{run_id}"))
}

/// At most one run per job: the lease names the running run and holds the
/// triggers that arrived meanwhile.
pub fn job_lease(tenant: &str, job: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("LEASE#JOB#{job}"))
}

/// The latest schedule tick that started or joined a run of the job, written
/// atomically with the lease, so a duplicate delivery of a tick is recognised.
pub fn job_last_tick(tenant: &str, job: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("TICK#JOB#{job}"))
}

/// A run's log lines, apart from the run so listing runs stays small.
pub fn run_logs(tenant: &str, job: &str, run_id: &str) -> Key {
    Key::new(format!("T#{tenant}#JOB#{job}"), format!("LOG#{run_id}"))
}

/// The configuration a run executed with (`RunConfig`), apart from the run
/// so listing runs stays small and a job's configs cannot push the run past
/// the item size limit.
pub fn run_config(tenant: &str, job: &str, run_id: &str) -> Key {
    Key::new(format!("T#{tenant}#JOB#{job}"), format!("CFG#{run_id}"))
}

/// The last JSON a process integration's run wrote to stdout (its state),
/// apart from the run so listing runs stays small.
pub fn run_output(tenant: &str, job: &str, run_id: &str) -> Key {
    Key::new(format!("T#{tenant}#JOB#{job}"), format!("OUT#{run_id}"))
}

pub fn runs_partition(tenant: &str, job: &str) -> String {
    format!("T#{tenant}#JOB#{job}")
}

/// A magic link by the SHA-256 of its token; body `{ tenant, connection, generation, revoked_at }`.
/// Superseded and revoked links stay (expiring) so their page can say so.
pub fn magic_link(hash_hex: &str) -> Key {
    Key::new(format!("LINK#{hash_hex}"), "LINK")
}

/// Marks an OAuth `state` as used (single use); expires with the state.
pub fn oauth_state(nonce: &str) -> Key {
    Key::new(format!("OAUTHSTATE#{nonce}"), "OAUTHSTATE")
}

/// Single-flight token refresh of one connection: whoever writes this lease
/// (conditionally) is the only one calling the token endpoint.
pub fn refresh_lease(tenant: &str, connection: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("LEASE#REFRESH#{connection}"))
}

/// An inbound webhook endpoint by its (unguessable) id; body: the hook record.
pub fn hook(hook_id: &str) -> Key {
    Key::new(format!("HOOK#{hook_id}"), "HOOK")
}

/// The hook of a job; body `{ "hook_id" }`.
pub fn job_hook(tenant: &str, job: &str) -> Key {
    Key::new(tenant_partition(tenant), format!("HOOK#JOB#{job}"))
}

/// Webhook deliveries of a job: `ID#<sha256 of delivery id>` claims (replay
/// protection, with expiry) and `Q#<seq>` pending deliveries.
pub fn deliveries_partition(tenant: &str, job: &str) -> String {
    format!("T#{tenant}#JOB#{job}#DLV")
}

pub fn delivery_claim(tenant: &str, job: &str, id_hash: &str) -> Key {
    Key::new(deliveries_partition(tenant, job), format!("ID#{id_hash}"))
}

pub fn delivery(tenant: &str, job: &str, seq: &str) -> Key {
    Key::new(deliveries_partition(tenant, job), format!("Q#{seq}"))
}

/// The deliveries a webhook run took (so only those are consumed after it).
pub fn run_deliveries(tenant: &str, job: &str, run_id: &str) -> Key {
    Key::new(runs_partition(tenant, job), format!("DLVS#{run_id}"))
}

/// A notification endpoint of a tenant (or of the platform).
pub fn notification_endpoint(owner: &str, id: &str) -> Key {
    Key::new(key_owner_partition(owner), format!("NEP#{id}"))
}

/// Messages and attempts of one notification endpoint: `MSG#<msg>` and `ATT#<msg>#<n>`.
pub fn notification_log_partition(owner: &str, endpoint: &str) -> String {
    format!("NOTIFY#{owner}#{endpoint}")
}

/// The persisted delivery schedule: one item per message, keyed by when it is due.
pub const OUTBOX: &str = "OUTBOX";

pub fn outbox(due_unix: i64, message: &str) -> Key {
    Key::new(OUTBOX, format!("DUE#{due_unix:012}#{message}"))
}

/// Run metrics of a tenant (`Some`), or of the platform (`None`): one
/// aggregate per UTC day and integration (`crate::metrics`).
pub fn metrics_partition(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("T#{t}#METRICS"),
        None => "METRICS#PLATFORM".to_owned(),
    }
}

/// `-` stands for runs whose job was gone when they ended: ids start
/// alphanumeric, so it names no integration.
pub fn metrics_aggregate(tenant: Option<&str>, day: chrono::NaiveDate, integration: Option<&str>) -> Key {
    Key::new(metrics_partition(tenant), format!("DAY#{day}#{}", integration.unwrap_or("-")))
}

/// A tenant's failed runs of one UTC hour (`crate::recent_failures`), beside
/// its metrics aggregates; `sort` is `HOUR#<yyyy-mm-ddThh>`.
pub fn metrics_hour(tenant: &str, sort: &str) -> Key {
    Key::new(metrics_partition(Some(tenant)), sort)
}

/// Ended runs not yet folded into the metrics aggregates, one per run,
/// written with the run's first final record.
pub const METRICS_PENDING: &str = "METRICS#PENDING";

pub fn metrics_pending(tenant: &str, run: &str) -> Key {
    Key::new(METRICS_PENDING, format!("{tenant}#{run}"))
}

/// A tenant's request budget of a provider (`kind` `BUDGET`) or in-flight
/// claims on a connection (`INFLIGHT`): `crate::request_gate`.
pub fn request_limit(tenant: &str, kind: &str, name: &str) -> Key {
    Key::new(format!("T#{tenant}#LIMITS"), format!("{kind}#{name}"))
}

/// A tenant's dead letters (`DL#<id>`) and their counts per job and flow
/// (`COUNT#<job>#<flow>`), in one partition: a dead letter is read by id
/// alone, and the counts of a tenant are one query.
pub fn dead_letters_partition(tenant: &str) -> String {
    format!("T#{tenant}#DL")
}

pub fn dead_letter(tenant: &str, id: &str) -> Key {
    Key::new(dead_letters_partition(tenant), format!("DL#{id}"))
}

/// Which dead letter holds a record of one job's flow, by the record's
/// fingerprint (`dead_letters::store::fingerprint`).
pub fn dead_letter_record(tenant: &str, job: &str, flow: &str, fingerprint: &str) -> Key {
    Key::new(dead_letters_partition(tenant), format!("REC#{job}#{flow}#{fingerprint}"))
}

/// The dead letters of one job's flow by status and category, kept with
/// every write of them.
pub fn dead_letter_counts(tenant: &str, job: &str, flow: &str) -> Key {
    Key::new(dead_letters_partition(tenant), format!("COUNT#{job}#{flow}"))
}

/// `gsi1` partition (sparse): the dead-letter counts of every tenant's flows
/// that have pending dead letters, by `<tenant>#<job>#<flow>`.
pub const PENDING_DEAD_LETTERS: &str = "DL#PENDING";

/// `gsi1` partition: a tenant's dead letters of one status, by id (age).
pub fn dead_letters_by_status(tenant: &str, status: &str) -> String {
    format!("T#{tenant}#DL#{status}")
}

/// `gsi2` partition: one job's dead letters, by `<status>#<flow>#<category>#<id>`.
pub fn dead_letters_of_job(tenant: &str, job: &str) -> String {
    format!("T#{tenant}#DL#JOB#{job}")
}
