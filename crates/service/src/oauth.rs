//! OAuth2 for connections: client configuration (platform default, tenant
//! override), the authorization-code flow with PKCE (S256) and a signed,
//! single-use, expiring `state`, the client-credentials grant, and the token
//! endpoint calls that refresh uses.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::connections::secret_ref;
use super::keyring::{b64, random_token, PlatformKey};
use crate::connections::Connections;
use crate::repo::keys;
use ferry_core::error::{Error, Result};
use ferry_core::manifest::OAuthGrant;
use ferry_core::model::ids::PLATFORM;
use ferry_core::model::{AuthKind, Connection, ConnectionStatus};
use ferry_core::ports::{Condition, Item, SecretFields, SecretRef, StoreError, WriteOp};
use ferry_net::NetPolicy;

/// How long a customer has between "Connect" and coming back from the provider.
pub const STATE_TTL_MINUTES: i64 = 10;
const TOKEN_TIMEOUT_SECS: u64 = 15;

/// An OAuth client registration for a provider, as an operator sets it.
/// `client_secret` is write-only; URLs default to the provider catalogue's.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuthClientConfig {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// `authorization_code` (default) or `client_credentials`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub grant: Option<OAuthGrant>,
}

impl std::fmt::Debug for OAuthClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClientConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| ferry_core::model::MASK))
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .finish()
    }
}

/// What the API shows of a client registration: never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuthClientView {
    pub provider: String,
    /// `platform` or the tenant id.
    pub owner: String,
    pub client_id: String,
    pub has_client_secret: bool,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Vec<String>,
}

/// A resolved client for one connection.
pub struct OAuthClient {
    pub provider_name: String,
    pub grant: OAuthGrant,
    pub client_id: String,
    client_secret: Option<secrecy::SecretString>,
    pub authorize_url: Option<String>,
    pub token_url: String,
    pub scopes: Vec<String>,
    pub scope_separator: String,
    pub authorize_params: BTreeMap<String, String>,
}

pub fn client_ref(owner: &str, provider: &str) -> SecretRef {
    SecretRef::new(owner, format!("oauth-clients/{provider}"))
}

/// Token URLs receive client secrets and refresh tokens: they follow the
/// outbound policy (https to public addresses; http and private networks
/// only on a hub started with `--allow-private-network`).
pub async fn check_endpoint(policy: NetPolicy, what: &str, url: &str) -> Result<()> {
    match policy.check_resolved(url).await {
        Ok(_) => Ok(()),
        Err(r) if r.code == "invalid_url" => {
            Err(Error::invalid("invalid_oauth_url", format!("{what} must be an absolute https URL: {r}")))
        }
        Err(r) => Err(Error::invalid(r.code, format!("{what} is refused: {r}"))),
    }
}

/// The largest token endpoint answer read: tokens are a few KiB at most.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// An RFC 6749 error code as the provider sent it, if it looks like one.
/// Anything else (and every `error_description`) may echo the request, with
/// the client secret in it, so it never reaches a message.
fn provider_code(raw: &str) -> String {
    let plain = !raw.is_empty() && raw.len() <= 64 && raw.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if plain {
        raw.to_owned()
    } else {
        "unrecognised_error".to_owned()
    }
}

/// Signed `state`: which connection, which browser flow (nonce), until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateClaims {
    t: String,
    c: String,
    n: String,
    e: i64,
}

/// A started authorization: the provider URL to send the browser to and the
/// nonce the browser must present again (in a cookie) on the callback.
pub struct Authorization {
    pub url: String,
    pub nonce: String,
}

/// Why a callback was refused. Each carries the sentence shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackRejection {
    /// Missing, malformed or tampered `state`.
    BadState,
    Expired,
    /// The state belongs to another browser flow (another connection, or CSRF).
    WrongBrowser,
    Replayed,
    /// The connection is gone or no longer uses OAuth2.
    Gone,
    /// The connection's tenant was archived (read-only) since the sign-in started.
    Archived,
    /// The provider refused (the customer declined, a bad or reused code...).
    Provider {
        code: String,
        message: String,
    },
}

impl CallbackRejection {
    pub fn message(&self) -> String {
        match self {
            CallbackRejection::BadState => {
                "This sign-in response could not be verified, so nothing was saved. Open your connect link and start again.".into()
            }
            CallbackRejection::Expired => {
                format!("This sign-in took longer than {STATE_TTL_MINUTES} minutes and has expired. Nothing was saved; please start again.")
            }
            CallbackRejection::WrongBrowser => {
                "This sign-in was started for a different connection or in a different browser, so nothing was saved. Open your connect link in this browser and start again.".into()
            }
            CallbackRejection::Replayed => {
                "This sign-in response was already used. Nothing more was saved; open your connect link to check the connection.".into()
            }
            CallbackRejection::Gone => "This connection no longer exists or no longer uses sign-in.".into(),
            CallbackRejection::Archived => crate::links::LinkProblem::Archived.message().into(),
            CallbackRejection::Provider { message, .. } => message.clone(),
        }
    }
}

/// Tokens from a token endpoint.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub token_type: Option<String>,
    pub scope: Option<String>,
}

impl Tokens {
    /// The secret fields stored for a connection. A refresh that returns no
    /// new refresh token keeps the previous one.
    pub fn into_fields(self, previous_refresh: Option<&str>) -> SecretFields {
        let mut f = SecretFields::new();
        f.insert("access_token", self.access_token);
        if let Some(r) = self.refresh_token.or(previous_refresh.map(str::to_owned)) {
            f.insert("refresh_token", r);
        }
        if let Some(t) = self.expires_at {
            f.insert("expires_at", t.to_rfc3339());
        }
        if let Some(t) = self.token_type {
            f.insert("token_type", t);
        }
        if let Some(s) = self.scope {
            f.insert("scope", s);
        }
        f
    }
}

/// An error answer of a token endpoint, or a failure to reach it.
#[derive(Debug, Clone)]
pub struct TokenError {
    /// RFC 6749 code (`invalid_grant`...) or `unreachable` / `bad_response` / `refused`.
    pub code: String,
    /// Ferry's own words about the failure; never the provider's.
    pub description: Option<String>,
}

impl TokenError {
    /// The sentence for the customer and the connection's status message.
    pub fn message(&self, provider: &str) -> String {
        let detail = self
            .description
            .as_deref()
            .map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        match self.code.as_str() {
            "access_denied" => format!("Access was declined at {provider}, so nothing was connected. You can start again."),
            "invalid_grant" => format!(
                "{provider} did not accept the sign-in or refresh token: it may have expired, been used already, or been revoked{detail}. Please connect again."
            ),
            "invalid_client" | "unauthorized_client" => {
                format!("{provider} rejected Ferry's OAuth client registration{detail}. Contact the sender of your link.")
            }
            "unreachable" => format!("{provider} could not be reached{detail}. Please try again in a moment."),
            "refused" => format!("{provider}'s token endpoint is not allowed{detail}. Contact the sender of your link."),
            other => format!("{provider} reported an error: {other}{detail}."),
        }
    }
}

/// The token client under `policy` (one per policy, built once).
fn http(policy: NetPolicy) -> std::result::Result<&'static reqwest::Client, TokenError> {
    static STRICT: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    static PRIVATE: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if policy.allow_private_network { &PRIVATE } else { &STRICT };
    let timeout = std::time::Duration::from_secs(TOKEN_TIMEOUT_SECS);
    cell.get_or_init(|| policy.client(timeout, concat!("ferry/", env!("CARGO_PKG_VERSION"))))
        .as_ref()
        .map_err(|e| TokenError { code: "unreachable".into(), description: Some(e.clone()) })
}

fn pkce_verifier(key: &PlatformKey, nonce: &str) -> String {
    // 43 base64url characters: a valid RFC 7636 verifier, derived so it needs no storage.
    key.sign_b64("pkce", &[nonce])
}

fn pkce_challenge(verifier: &str) -> String {
    b64(&ferry_core::crypto::sha256(verifier))
}

fn field(f: &SecretFields, name: &str) -> Option<String> {
    f.get(name).map(|s| s.expose_secret().to_owned()).filter(|s| !s.is_empty())
}

impl Connections<'_> {
    /// Registers the OAuth client of a provider for the platform (`owner` =
    /// `platform`) or one tenant (overriding the platform's).
    #[tracing::instrument(skip_all, fields(owner = owner, provider = provider))]
    pub async fn set_oauth_client(
        &self,
        owner: &str,
        provider: &str,
        cfg: OAuthClientConfig,
    ) -> Result<OAuthClientView> {
        if !ferry_core::model::ids::is_valid_id(provider) {
            return Err(Error::invalid("invalid_provider", "provider must be lowercase letters, digits and '-'"));
        }
        if cfg.client_id.is_empty() || cfg.client_id.len() > 512 {
            return Err(Error::invalid("invalid_client_id", "client_id must be 1 to 512 characters"));
        }
        let catalogue = ferry_core::providers::get(provider).and_then(|p| p.oauth.as_ref());
        for (what, url) in [("authorize_url", &cfg.authorize_url), ("token_url", &cfg.token_url)] {
            if let Some(u) = url {
                check_endpoint(self.net, what, u).await?;
            }
        }
        if cfg.token_url.is_none() && catalogue.is_none() {
            return Err(Error::invalid(
                "missing_token_url",
                format!("provider `{provider}` is not in the catalogue: give token_url (and authorize_url)"),
            ));
        }
        if let Some(s) = &cfg.client_secret {
            crate::auth::credentials::validate_provider_secret("client_secret", s)?;
        }
        let mut f = SecretFields::new();
        f.insert("client_id", cfg.client_id.clone());
        if let Some(s) = &cfg.client_secret {
            f.insert("client_secret", s.clone());
        }
        if let Some(u) = &cfg.authorize_url {
            f.insert("authorize_url", u.clone());
        }
        if let Some(u) = &cfg.token_url {
            f.insert("token_url", u.clone());
        }
        if let Some(s) = &cfg.scopes {
            f.insert("scopes", s.join(" "));
        }
        if let Some(g) = cfg.grant {
            f.insert("grant", grant_name(g));
        }
        self.secrets.put(&client_ref(owner, provider), &f).await?;
        Ok(OAuthClientView {
            provider: provider.to_owned(),
            owner: owner.to_owned(),
            client_id: cfg.client_id,
            has_client_secret: cfg.client_secret.is_some(),
            authorize_url: cfg.authorize_url,
            token_url: cfg.token_url,
            scopes: cfg.scopes.unwrap_or_default(),
        })
    }

    /// The client a connection authorises with: the tenant's registration,
    /// else the platform's; URLs from it or from the provider catalogue.
    pub async fn oauth_client(&self, conn: &Connection) -> Result<OAuthClient> {
        let provider = ferry_core::providers::get(&conn.connector);
        let display = provider.map_or(conn.connector.clone(), |p| p.display_name.clone());
        let cfg = match self.secrets.get(&client_ref(&conn.tenant, &conn.connector)).await? {
            Some(c) => c,
            None => self.secrets.get(&client_ref(PLATFORM, &conn.connector)).await?.ok_or_else(|| {
                Error::invalid(
                    "oauth_client_missing",
                    format!(
                        "no OAuth client is registered for `{}`; an administrator sets one with PUT /v1/oauth-clients/{}",
                        conn.connector, conn.connector
                    ),
                )
            })?,
        };
        let cat = provider.and_then(|p| p.oauth.as_ref());
        let fill = |u: String| {
            ferry_core::providers::fill(&u, &conn.settings).map_err(|m| Error::invalid("missing_setting", m))
        };
        let token_url = field(&cfg, "token_url")
            .or_else(|| cat.map(|c| c.token_url.clone()))
            .ok_or_else(|| Error::invalid("missing_token_url", "the OAuth client has no token_url"))?;
        let authorize_url = field(&cfg, "authorize_url").or_else(|| cat.and_then(|c| c.authorize_url.clone()));
        let grant = match field(&cfg, "grant").as_deref() {
            Some("client_credentials") => OAuthGrant::ClientCredentials,
            Some(_) => OAuthGrant::AuthorizationCode,
            None => cat.map_or(OAuthGrant::AuthorizationCode, |c| c.grant),
        };
        Ok(OAuthClient {
            provider_name: display,
            grant,
            client_id: field(&cfg, "client_id")
                .ok_or_else(|| Error::invalid("oauth_client_missing", "the OAuth client has no client_id"))?,
            client_secret: cfg.get("client_secret").cloned(),
            authorize_url: authorize_url.map(fill).transpose()?,
            token_url: fill(token_url)?,
            scopes: field(&cfg, "scopes")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .or_else(|| cat.map(|c| c.scopes.clone()))
                .unwrap_or_default(),
            scope_separator: cat.map_or(" ".to_owned(), |c| c.scope_separator.clone()),
            authorize_params: cat.map(|c| c.authorize_params.clone()).unwrap_or_default(),
        })
    }

    fn redirect_uri(&self) -> Result<String> {
        Ok(crate::config::public_base(self.public_url)?.join("/oauth/callback"))
    }

    /// Starts the authorization-code flow for a connection.
    pub async fn begin_authorization(&self, conn: &Connection) -> Result<Authorization> {
        if conn.auth_kind != AuthKind::Oauth2 {
            return Err(Error::invalid("not_oauth", "this connection does not use OAuth2"));
        }
        let redirect_uri = self.redirect_uri()?;
        let client = self.oauth_client(conn).await?;
        let authorize = client.authorize_url.clone().ok_or_else(|| {
            Error::invalid(
                "missing_authorize_url",
                "the OAuth client has no authorize_url for the authorization-code flow",
            )
        })?;
        let key = self.keyring.platform_key().await?;
        let nonce = random_token(18);
        let claims = StateClaims {
            t: conn.tenant.clone(),
            c: conn.id.clone(),
            n: nonce.clone(),
            e: (self.clock.now() + Duration::minutes(STATE_TTL_MINUTES)).timestamp(),
        };
        let payload = b64(&serde_json::to_vec(&claims).map_err(|e| Error::Internal(e.to_string()))?);
        let state = format!("{payload}.{}", key.sign_b64("oauth-state", &[&payload]));
        let mut url = reqwest::Url::parse(&authorize)
            .map_err(|_| Error::invalid("invalid_oauth_url", "the authorize_url is not a URL"))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &client.client_id)
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("state", &state)
                .append_pair("code_challenge", &pkce_challenge(&pkce_verifier(&key, &nonce)))
                .append_pair("code_challenge_method", "S256");
            if !client.scopes.is_empty() {
                q.append_pair("scope", &client.scopes.join(&client.scope_separator));
            }
            for (k, v) in &client.authorize_params {
                q.append_pair(k, v);
            }
        }
        Ok(Authorization { url: url.into(), nonce })
    }

    /// Handles `/oauth/callback`. Every check that can refuse runs before
    /// anything is stored; the state is consumed (single use) before the code
    /// is exchanged, so a replayed callback never reaches the provider.
    #[tracing::instrument(skip_all)]
    pub async fn complete_authorization(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<(&str, Option<&str>)>,
        browser_nonce: Option<&str>,
    ) -> Result<std::result::Result<Connection, CallbackRejection>> {
        let key = self.keyring.platform_key().await?;
        let Some(claims) = state.and_then(|s| verify_state(&key, s)) else {
            return Ok(Err(CallbackRejection::BadState));
        };
        if claims.e <= self.clock.now().timestamp() {
            return Ok(Err(CallbackRejection::Expired));
        }
        let same_browser = browser_nonce.is_some_and(|n| ferry_core::crypto::ct_eq(n, &claims.n));
        if !same_browser {
            return Ok(Err(CallbackRejection::WrongBrowser));
        }
        let conn = match self.get_connection(&claims.t, &claims.c).await {
            Ok(c) if c.auth_kind == AuthKind::Oauth2 => c,
            Ok(_) | Err(Error::NotFound { .. }) => return Ok(Err(CallbackRejection::Gone)),
            Err(e) => return Err(e),
        };
        match self.customer_side(&conn).await? {
            Ok(()) => {}
            Err(crate::links::LinkProblem::Archived) => return Ok(Err(CallbackRejection::Archived)),
            Err(_) => return Ok(Err(CallbackRejection::Gone)),
        }
        let used =
            Item::new(keys::oauth_state(&claims.n), serde_json::json!({"tenant": claims.t, "connection": claims.c}))
                .with_expiry(claims.e + 60);
        match self.store.write(vec![WriteOp::Put { item: used, condition: Condition::NotExists }]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed) => return Ok(Err(CallbackRejection::Replayed)),
            Err(e) => return Err(e.into()),
        }
        let client = self.oauth_client(&conn).await?;
        let failed = |code: &str, description: Option<&str>| {
            let e = TokenError { code: code.to_owned(), description: description.map(str::to_owned) };
            CallbackRejection::Provider { code: e.code.clone(), message: e.message(&client.provider_name) }
        };
        let rejection = match (provider_error, code) {
            // The description is the provider's text about our request: not repeated.
            (Some((code, _)), _) => Some(failed(&provider_code(code), None)),
            (None, None) => Some(failed("invalid_request", Some("the provider sent no code"))),
            (None, Some(code)) => {
                let form = vec![
                    ("grant_type", "authorization_code".to_owned()),
                    ("code", code.to_owned()),
                    ("redirect_uri", self.redirect_uri()?),
                    ("code_verifier", pkce_verifier(&key, &claims.n)),
                ];
                match self.token_request(&client, form).await {
                    Ok(tokens) => {
                        let names = self.store_tokens(&conn, tokens, None).await?;
                        let conn = self
                            .modify_connection(&conn.tenant, &conn.id, |c| {
                                c.status = ConnectionStatus::Connected;
                                c.status_message = None;
                                c.refresh_failures = 0;
                                c.secret_fields = names.clone();
                            })
                            .await?;
                        tracing::info!(tenant = %conn.tenant, connection = %conn.id, "connection authorised");
                        return Ok(Ok(conn));
                    }
                    Err(e) => Some(failed(&e.code, e.description.as_deref())),
                }
            }
        };
        let rejection = rejection.unwrap_or(CallbackRejection::BadState);
        if let CallbackRejection::Provider { code, message } = &rejection {
            tracing::warn!(tenant = %conn.tenant, connection = %conn.id, error = %code, "authorization refused by the provider");
            // Recorded for the operator; a working connection keeps working.
            if conn.status != ConnectionStatus::Connected {
                let message = message.clone();
                self.modify_connection(&conn.tenant, &conn.id, |c| c.status_message = Some(message.clone())).await?;
            }
        }
        Ok(Err(rejection))
    }

    /// Connects with the client-credentials grant (no customer sign-in).
    pub async fn connect_client_credentials(
        &self,
        conn: &Connection,
    ) -> Result<std::result::Result<Connection, String>> {
        let client = self.oauth_client(conn).await?;
        match self.client_credentials(&client).await {
            Ok(tokens) => {
                let names = self.store_tokens(conn, tokens, None).await?;
                Ok(Ok(self
                    .modify_connection(&conn.tenant, &conn.id, |c| {
                        c.status = ConnectionStatus::Connected;
                        c.status_message = None;
                        c.refresh_failures = 0;
                        c.secret_fields = names.clone();
                    })
                    .await?))
            }
            Err(e) => {
                let message = e.message(&client.provider_name);
                let m = message.clone();
                self.modify_connection(&conn.tenant, &conn.id, |c| {
                    if c.status != ConnectionStatus::Connected {
                        c.status_message = Some(m.clone());
                    }
                })
                .await?;
                Ok(Err(message))
            }
        }
    }

    pub(crate) async fn client_credentials(&self, client: &OAuthClient) -> std::result::Result<Tokens, TokenError> {
        let mut form = vec![("grant_type", "client_credentials".to_owned())];
        if !client.scopes.is_empty() {
            form.push(("scope", client.scopes.join(&client.scope_separator)));
        }
        self.token_request(client, form).await
    }

    /// Stores the tokens; returns the names of the stored fields.
    pub(crate) async fn store_tokens(
        &self,
        conn: &Connection,
        tokens: Tokens,
        previous_refresh: Option<&str>,
    ) -> Result<Vec<String>> {
        let fields = tokens.into_fields(previous_refresh);
        self.secrets.put(&secret_ref(conn), &fields).await?;
        Ok(fields.names().map(str::to_owned).collect())
    }

    /// One call of the token endpoint (client authentication in the body, the
    /// method every catalogue provider accepts).
    pub(crate) async fn token_request(
        &self,
        client: &OAuthClient,
        mut form: Vec<(&'static str, String)>,
    ) -> std::result::Result<Tokens, TokenError> {
        form.push(("client_id", client.client_id.clone()));
        if let Some(s) = &client.client_secret {
            form.push(("client_secret", s.expose_secret().to_owned()));
        }
        let policy = self.net;
        let refused = |r: ferry_net::Refusal| TokenError { code: "refused".into(), description: Some(r.message) };
        policy.check(&client.token_url).map_err(refused)?;
        let response = http(policy)?
            .post(&client.token_url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| match ferry_net::refusal_in(&e) {
                Some(r) => refused(r),
                None => TokenError {
                    code: "unreachable".into(),
                    description: Some(if e.is_timeout() { "timed out".into() } else { "connection failed".into() }),
                },
            })?;
        let status = response.status();
        let bytes = ferry_net::read_capped(response, MAX_TOKEN_RESPONSE_BYTES).await.map_err(|e| TokenError {
            code: "bad_response".into(),
            description: Some(format!("the token endpoint's answer was refused: {e}")),
        })?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| TokenError {
            code: "bad_response".into(),
            description: Some(format!("the token endpoint answered {status} without JSON")),
        })?;
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(code) = text("error") {
            return Err(TokenError { code: provider_code(&code), description: None });
        }
        let access_token = text("access_token").filter(|_| status.is_success()).ok_or_else(|| TokenError {
            code: "bad_response".into(),
            description: Some(format!("the token endpoint answered {status} without an access_token")),
        })?;
        let expires_in = body.get("expires_in").and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
        Ok(Tokens {
            access_token,
            refresh_token: text("refresh_token"),
            expires_at: expires_in.map(|s| self.clock.now() + Duration::seconds(s.clamp(0, 10 * 365 * 86_400))),
            token_type: text("token_type"),
            scope: text("scope"),
        })
    }
}

fn grant_name(g: OAuthGrant) -> &'static str {
    match g {
        OAuthGrant::AuthorizationCode => "authorization_code",
        OAuthGrant::ClientCredentials => "client_credentials",
    }
}

fn verify_state(key: &PlatformKey, state: &str) -> Option<StateClaims> {
    let (payload, signature) = state.split_once('.')?;
    if state.len() > 1024 || !key.verify_b64("oauth-state", &[payload], signature) {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.as_bytes()).ok()?;
    serde_json::from_slice(&bytes).ok()
}
