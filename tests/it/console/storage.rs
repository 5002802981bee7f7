//! What the console adds to the store, on SQLite and on DynamoDB: the first
//! admin user made once, and a session's tenant scope.

use std::sync::Arc;

use ferry_core::model::UserRole;
use ferry_core::ports::Store;
use ferry_embedded::FileSecretStore;
use ferry_service::bootstrap::{AdminUserBootstrap, DEFAULT_ADMIN_EMAIL};
use ferry_service::sessions::LoginRequest;
use ferry_service::tenants::NewTenant;
use ferry_service::users::NewUser;
use ferry_service::Hub;

fn hub(store: Arc<dyn Store>, dir: &tempfile::TempDir) -> Hub {
    Hub::new(store, Arc::new(FileSecretStore::open(dir.path()).expect("secrets")))
}

async fn the_first_admin_user_is_made_once(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(store, &dir);
    let made = hub.users().bootstrap_admin_user(None, None).await.expect("bootstrap");
    let AdminUserBootstrap::Created { email, generated_password: Some(password) } = made else {
        panic!("a fresh hub makes the admin user with a generated password, got {made:?}");
    };
    assert_eq!(email, DEFAULT_ADMIN_EMAIL);
    assert!(password.len() >= 20, "a generated password is long");
    assert!(!format!("{:?}", hub.users().bootstrap_admin_user(None, None).await.expect("again")).contains(&password));
    // The second start, with other credentials even, changes nothing.
    let again =
        hub.users().bootstrap_admin_user(Some("other@ferry.example"), Some("another passphrase")).await.expect("again");
    assert!(matches!(again, AdminUserBootstrap::AlreadyDone), "{again:?}");
    assert!(hub.users().find_user_by_email("other@ferry.example").await.expect("find").is_none());
    let user = hub.users().find_user_by_email(DEFAULT_ADMIN_EMAIL).await.expect("find").expect("the admin user");
    assert_eq!(user.role, UserRole::PlatformAdmin);
    // The printed password signs in.
    let session = hub.users().login(LoginRequest { email, password }, None).await.expect("sign in");
    assert!(hub.users().authenticate_session(&session.token).await.expect("session").is_platform_admin());
}

async fn supplied_admin_credentials_are_used_and_a_taken_email_is_left_alone(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(store, &dir);
    hub.users()
        .create_user(NewUser {
            email: "ops@ferry.example".into(),
            full_name: "Ops".into(),
            password: "an existing password".into(),
            role: UserRole::User,
            active: true,
            memberships: vec![],
        })
        .await
        .expect("user");
    // An email someone already has is not taken over, nor its password changed.
    let r =
        hub.users().bootstrap_admin_user(Some("ops@ferry.example"), Some("a new passphrase")).await.expect("bootstrap");
    assert!(matches!(r, AdminUserBootstrap::AlreadyDone), "{r:?}");
    let ops = hub.users().find_user_by_email("ops@ferry.example").await.expect("find").expect("ops");
    assert_eq!(ops.role, UserRole::User);
    let login = LoginRequest { email: "ops@ferry.example".into(), password: "an existing password".into() };
    hub.users().login(login, None).await.expect("the old password still works");
}

async fn a_session_scope_holds_only_tenants_the_user_may_enter(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(store, &dir);
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let (a, b) = (format!("a-{suffix}"), format!("b-{suffix}"));
    for t in [&a, &b] {
        hub.tenants()
            .create_tenant(NewTenant { id: Some(t.clone()), name: t.clone(), paused: false })
            .await
            .expect("tenant");
    }
    let email = format!("u-{suffix}@ferry.example");
    let user = hub
        .users()
        .create_user(NewUser {
            email: email.clone(),
            full_name: "U".into(),
            password: "correct horse battery".into(),
            role: UserRole::User,
            active: true,
            memberships: vec![a.clone()],
        })
        .await
        .expect("user");
    let s =
        hub.users().login(LoginRequest { email, password: "correct horse battery".into() }, None).await.expect("login");
    assert_eq!(
        hub.users().scoped_session(&s.token).await.expect("session").tenant,
        None,
        "a new session has no tenant"
    );
    let e = hub.users().scope_session(&s.token, &b).await.expect_err("not a member of b");
    assert!(matches!(e, ferry_core::Error::NotFound { .. }), "{e:?}");
    hub.users().scope_session(&s.token, &a).await.expect("scope a");
    let scoped = hub.users().scoped_session(&s.token).await.expect("session");
    assert_eq!(scoped.tenant.as_deref(), Some(a.as_str()));
    assert_eq!(scoped.expires_at, s.expires_at, "scoping does not extend the session");
    // A membership removed since ends the scope; signing out ends the session.
    hub.users().remove_membership(&user.id, &a).await.expect("remove");
    assert_eq!(hub.users().scoped_session(&s.token).await.expect("session").tenant, None);
    hub.users().logout(&s.token).await.expect("logout");
    assert!(hub.users().scoped_session(&s.token).await.is_err());
    assert!(hub.users().scope_session(&s.token, &a).await.is_err(), "a signed-out session cannot be scoped back");
}

both_stores! {
    the_first_admin_user_is_made_once =>
        the_first_admin_user_is_made_once_on_sqlite, the_first_admin_user_is_made_once_on_dynamodb;
    supplied_admin_credentials_are_used_and_a_taken_email_is_left_alone =>
        a_taken_admin_email_is_left_alone_on_sqlite, a_taken_admin_email_is_left_alone_on_dynamodb;
    a_session_scope_holds_only_tenants_the_user_may_enter =>
        a_session_scope_holds_only_tenants_the_user_may_enter_on_sqlite,
        a_session_scope_holds_only_tenants_the_user_may_enter_on_dynamodb;
}
