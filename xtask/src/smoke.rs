//! `cargo xtask smoke --env <name>`: a short, real conversation with a deployed API, recorded with the environment.
//!
//! It appends the first event of the first registered aggregate's example (`domain::Aggregate::example`, read
//! through the registry: the tool knows no aggregate type) to a fresh aggregate, reads it back, waits (bounded)
//! for the projector to build the read model and checks it equals the replay of the log, and checks that a stale
//! `expectedVersion` is refused with 409 `version_conflict`. Every
//! request and response body is a `domain::api` type, the very types the functions serve, so a change of the API
//! breaks this client at compile time rather than in production. Nothing is cleaned up: an event log is
//! append-only, and deleting what the smoke test wrote would hide exactly the problems it is there to find. Its
//! aggregates are easy to tell apart: `smoke-<env>-<UTC time>-<random>`, e.g. `smoke-dev-20261130T012233Z-1a2b3c4d`
//! (see [`aggregate_id`]).
//!
//! An environment whose routes are behind a JWT authorizer (`api.jwt`) needs a token: `smoke` reads it from the
//! `XTASK_SMOKE_TOKEN` environment variable (never from a flag, whose value would land in shell history and
//! process listings), sends it as `Authorization: Bearer <token>` on every request, and refuses to start without
//! it. In CI a stored token would expire after the deploy it was made for, so `smoke` can mint one instead: with
//! `XTASK_SMOKE_CLIENT_ID` and `XTASK_SMOKE_CLIENT_SECRET` (an OAuth 2.0 client of the environment's issuer allowed
//! the client-credentials grant) it asks the issuer's token endpoint (OpenID Connect discovery, or
//! `XTASK_SMOKE_TOKEN_URL`) for a token for the environment's audience, uses it for this run only and never prints
//! it ([`mint_token`]).
//!
//! The result is printed and stored in the environment's artifact bucket at `smoke/<env>.json`, together with
//! the release digest the stack runs, so `cargo xtask promote` can require a passing smoke test of exactly the
//! release it promotes.

use std::time::{Duration, Instant};

use chrono::Utc;
use deployer::promote::{SmokeCheck, SmokeRecord};
use domain::api::{
    AggregateView, AppendEventRequest, AppendEventResponse, AppendOneRequest, ErrorBody,
    EventsPage, HealthResponse,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use stack::{EnvKind, Plan};

use crate::cli::OutputFormat;
use crate::exit::ExitStatus;

/// The environment variable holding the bearer token for JWT-protected environments.
pub const TOKEN_VAR: &str = "XTASK_SMOKE_TOKEN";
/// The OAuth 2.0 client `smoke` mints a token with when [`TOKEN_VAR`] is not set: its id ...
pub const CLIENT_ID_VAR: &str = "XTASK_SMOKE_CLIENT_ID";
/// ... and its secret.
pub const CLIENT_SECRET_VAR: &str = "XTASK_SMOKE_CLIENT_SECRET";
/// Optional: the token endpoint, for an issuer that publishes no OpenID Connect discovery document.
pub const TOKEN_URL_VAR: &str = "XTASK_SMOKE_TOKEN_URL";
/// Optional: the `scope` to ask for, for identity providers that express an API's access as scopes.
pub const SCOPE_VAR: &str = "XTASK_SMOKE_SCOPE";

/// How long the smoke test waits for the read model to catch up by default.
pub const DEFAULT_PROJECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Each request's own limit (a cold start on AWS takes a second or two).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `cargo xtask smoke`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    /// Base URL of the API; by default the stack output ApiUrl (local: the local gateway of the environment).
    #[arg(long)]
    pub url: Option<String>,
    /// How long to wait for the projector to build the read model, in seconds.
    #[arg(long, default_value_t = DEFAULT_PROJECTION_TIMEOUT.as_secs())]
    pub projection_timeout: u64,
    /// Do not store the result in the environment's artifact bucket (only print it).
    #[arg(long)]
    pub no_record: bool,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

pub async fn run(args: Args) -> anyhow::Result<ExitStatus> {
    let options = SmokeOptions {
        url: args.url.clone(),
        projection_timeout: Duration::from_secs(args.projection_timeout),
        record: !args.no_record,
        token: std::env::var(TOKEN_VAR)
            .ok()
            .filter(|t| !t.trim().is_empty()),
        client: ClientCredentials::from_env(),
    };
    let result = async {
        let (plan, _) = crate::deploy::load(&args.env)?;
        smoke(&plan, &options).await
    }
    .await;
    let passed = result.as_ref().is_ok_and(|r| r.passed);
    let status = crate::promote::finish(result, args.output)?;
    // A failed check is a printed result, not an error: exit 1 so CI stops the train.
    Ok(if status == ExitStatus::Success && !passed {
        ExitStatus::Failed
    } else {
        status
    })
}

/// What `smoke` needs besides the plan.
#[derive(Debug, Clone)]
pub struct SmokeOptions {
    /// Overrides the URL found from the stack.
    pub url: Option<String>,
    pub projection_timeout: Duration,
    /// Store the record at `smoke/<env>.json` in the artifact bucket.
    pub record: bool,
    /// The bearer token sent on every request (from [`TOKEN_VAR`]); required where the plan has `api.jwt`.
    pub token: Option<String>,
    /// Where no token is given: the client to mint one with (from [`CLIENT_ID_VAR`] and [`CLIENT_SECRET_VAR`]).
    pub client: Option<ClientCredentials>,
}

impl Default for SmokeOptions {
    fn default() -> Self {
        SmokeOptions {
            url: None,
            projection_timeout: DEFAULT_PROJECTION_TIMEOUT,
            record: true,
            token: None,
            client: None,
        }
    }
}

/// Runs the smoke test against `plan`'s deployed API and (unless told otherwise) records the result. A failed
/// check is a result (`passed: false`), not an error; errors are for not reaching the stack or the bucket.
pub async fn smoke(plan: &Plan, options: &SmokeOptions) -> anyhow::Result<SmokeRecord> {
    let token = match (&options.token, &plan.api.jwt, &options.client, plan.kind) {
        (Some(token), ..) => Some(token.clone()),
        (None, Some(jwt), Some(client), EnvKind::Aws) => Some(mint_token(jwt, client).await?),
        _ => None,
    };
    require_token(plan, token.as_deref())?;
    let connected = crate::deploy::connect(plan, None).await?;
    let (clients, account) = (&connected.clients, connected.account.clone());
    let stack = deployer::stackops::describe(&clients.cfn, &plan.stack_name).await?;
    let Some(stack) = stack else {
        return Err(anyhow::Error::new(deployer::Error::Refused(format!(
            "stack `{}` does not exist; deploy it first with `cargo xtask deploy --env {}`",
            plan.stack_name, plan.env
        ))));
    };
    let release_digest = deployer::stackops::parameters_of(&stack)
        .get(stack::parameters::RELEASE_DIGEST)
        .cloned()
        .filter(|d| !d.is_empty());
    let url = match (&options.url, plan.kind, &plan.local) {
        (Some(url), _, _) => url.clone(),
        (None, EnvKind::Local, Some(local)) => format!("http://127.0.0.1:{}", local.gateway_port),
        _ => deployer::stackops::outputs_of(&stack)
            .get(stack::outputs::API_URL)
            .cloned()
            .ok_or_else(|| {
                deployer::Error::StackFailed(format!(
                    "stack `{}` has no {} output; redeploy it or pass --url",
                    plan.stack_name,
                    stack::outputs::API_URL
                ))
            })?,
    };
    let record = run_checks(
        &plan.env,
        &url,
        release_digest,
        options.projection_timeout,
        token.as_deref(),
    )
    .await;
    if options.record {
        let bucket = deployer::artifacts::bucket_name(plan, account.as_deref());
        deployer::promote::put_smoke_record(&clients.s3, &bucket, &record).await?;
    }
    Ok(record)
}

/// Refuses (exit 2) an `aws` environment behind a JWT authorizer when no token was given: every request but
/// `/health` would answer 401, after the environment was already deployed.
pub fn require_token(plan: &Plan, token: Option<&str>) -> anyhow::Result<()> {
    if let Some(t) = token
        && bearer(t).is_none()
    {
        return Err(anyhow::Error::new(crate::deploy::InvalidInput(format!(
            "{TOKEN_VAR} does not hold a usable token (it contains a line break or another control character); set it to the token alone"
        ))));
    }
    match (&plan.api.jwt, plan.kind, token) {
        (Some(jwt), EnvKind::Aws, None) => {
            Err(anyhow::Error::new(crate::deploy::InvalidInput(format!(
                "`{}` serves its API behind a JWT authorizer ({}: api.jwt), so the smoke test needs a token: set {TOKEN_VAR} to a token issued by {} for the audience {}, or set {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR} to a client of that issuer allowed the client-credentials grant and smoke mints one (environment variables, never flags: a flag's value lands in shell history), and run `cargo xtask smoke --env {}` again",
                plan.env,
                plan.config_path.display(),
                jwt.issuer,
                jwt.audience.join(" or "),
                plan.env
            ))))
        }
        _ => Ok(()),
    }
}

/// An OAuth 2.0 client (RFC 6749, section 4.4: the client-credentials grant) of the environment's issuer.
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
    /// The token endpoint; found by OpenID Connect discovery at the issuer when `None`.
    pub token_url: Option<String>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("token_url", &self.token_url)
            .field("scope", &self.scope)
            .finish()
    }
}

impl ClientCredentials {
    /// From [`CLIENT_ID_VAR`], [`CLIENT_SECRET_VAR`], [`TOKEN_URL_VAR`] and [`SCOPE_VAR`]; `None` unless both the
    /// id and the secret are set.
    pub fn from_env() -> Option<Self> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        Some(ClientCredentials {
            client_id: var(CLIENT_ID_VAR)?,
            client_secret: var(CLIENT_SECRET_VAR)?,
            token_url: var(TOKEN_URL_VAR),
            scope: var(SCOPE_VAR),
        })
    }
}

/// Mints an access token for `jwt`'s first audience with the client-credentials grant: the token endpoint from
/// the client, else from the issuer's discovery document (`<issuer>/.well-known/openid-configuration`); the
/// client authenticates with HTTP Basic (`client_secret_basic`, which every authorization server supports) and
/// asks for `audience` (and `scope` when set). The token lives only in this process: it is never printed or
/// stored. A refusal names the endpoint, the server's `error` and what to check.
pub async fn mint_token(
    jwt: &stack::JwtAuthorizer,
    client: &ClientCredentials,
) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let token_url = match &client.token_url {
        Some(url) => url.clone(),
        None => discover_token_endpoint(&http, &jwt.issuer).await?,
    };
    let audience = jwt.audience.first().map(String::as_str).unwrap_or_default();
    let mut form = vec![("grant_type", "client_credentials"), ("audience", audience)];
    if let Some(scope) = &client.scope {
        form.push(("scope", scope));
    }
    let resp = http
        .post(&token_url)
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "minting the smoke test's token: cannot reach the token endpoint {token_url}: {e}"
            )
        })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "minting the smoke test's token: the token endpoint {token_url} answered {status} ({} {}); check {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR}, and that the client may use the client-credentials grant for the audience {audience}",
            body["error"].as_str().unwrap_or("no error code"),
            body["error_description"].as_str().unwrap_or_default(),
        );
    }
    body["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "minting the smoke test's token: the token endpoint {token_url} answered {status} without an access_token"
            )
        })
}

/// The `token_endpoint` of the issuer's OpenID Connect discovery document.
async fn discover_token_endpoint(http: &reqwest::Client, issuer: &str) -> anyhow::Result<String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let found = async {
        let doc: Value = http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(doc["token_endpoint"].as_str().map(str::to_string))
    }
    .await;
    match found {
        Ok(Some(endpoint)) => Ok(endpoint),
        Ok(None) => anyhow::bail!(
            "minting the smoke test's token: {url} names no token_endpoint; set {TOKEN_URL_VAR} to the issuer's token endpoint"
        ),
        Err(e) => anyhow::bail!(
            "minting the smoke test's token: reading {url} failed ({e:#}); set {TOKEN_URL_VAR} to the issuer's token endpoint if it publishes no discovery document"
        ),
    }
}

/// The id of a smoke test's aggregate: `smoke-<env>-<UTC time>-<8 hex>`, recognisable in the event log and
/// in order of the runs; the random part keeps two runs in the same second apart.
pub fn aggregate_id(env: &str, at: chrono::DateTime<Utc>) -> String {
    // The last 8 hex digits of a UUIDv7 are random bits.
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "smoke-{env}-{}-{}",
        at.format("%Y%m%dT%H%M%SZ"),
        &random[random.len() - 8..]
    )
}

/// The checks themselves, against `base_url`, with `token` as the bearer token of every request. Stops at the
/// first failed check: later ones depend on it.
pub async fn run_checks(
    env: &str,
    base_url: &str,
    release_digest: Option<String>,
    projection_timeout: Duration,
    token: Option<&str>,
) -> SmokeRecord {
    let started_at = Utc::now();
    let started = Instant::now();
    let client = Client::new(base_url, token);
    let aggregate_id = aggregate_id(env, started_at);
    let mut checks = Vec::new();
    let append = format!("append {}", example().0);
    let steps: [(&str, Step); 5] = [
        ("health", Step::Health),
        (append.as_str(), Step::Append),
        ("read the event back", Step::ReadBack),
        ("projection caught up", Step::Projection(projection_timeout)),
        ("stale version refused (409)", Step::Conflict),
    ];
    let total = steps.len();
    for (name, step) in steps {
        let t = Instant::now();
        let outcome = step.run(&client, &aggregate_id).await;
        let passed = outcome.is_ok();
        checks.push(SmokeCheck {
            name: name.to_string(),
            passed,
            detail: outcome.unwrap_or_else(|e| e),
            duration_ms: t.elapsed().as_millis() as u64,
        });
        if !passed {
            break;
        }
    }
    let passed = checks.len() == total && checks.iter().all(|c| c.passed);
    SmokeRecord {
        schema: deployer::promote::SMOKE_SCHEMA,
        env: env.to_string(),
        passed,
        release_digest,
        api_url: base_url.to_string(),
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        checks,
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Health,
    Append,
    ReadBack,
    Projection(Duration),
    Conflict,
}

/// The smoke test's events: the first registered aggregate's example, first and last event.
fn example() -> (
    &'static str,
    Map<String, Value>,
    &'static str,
    Map<String, Value>,
) {
    let kind = domain::registry()
        .kinds()
        .next()
        .expect("the registry refuses a domain without aggregates");
    let example = kind.example();
    let (first, first_data) = example.first().cloned().expect("examples are not empty");
    let (last, last_data) = example.last().cloned().expect("examples are not empty");
    (first, first_data, last, last_data)
}

impl Step {
    /// `Ok(what was seen)` or `Err(what was wrong)`.
    async fn run(self, client: &Client, id: &str) -> Result<String, String> {
        match self {
            Step::Health => {
                let h: HealthResponse = client.get("/health").await?;
                if h.status == "ok" {
                    Ok("status ok".into())
                } else {
                    Err(format!("health status is `{}`", h.status))
                }
            }
            Step::Append => {
                let (event_type, event_data, _, _) = example();
                let req = AppendEventRequest {
                    aggregate_id: id.to_string(),
                    aggregate_type: None,
                    event_type: event_type.to_string(),
                    event_data,
                    expected_version: None,
                    command_id: None,
                };
                let resp: AppendEventResponse = client.post_ok("/events", &req).await?;
                if resp.aggregate_id != id || resp.version != 1 {
                    return Err(format!(
                        "expected {id} at version 1, got {} at version {}",
                        resp.aggregate_id, resp.version
                    ));
                }
                Ok(format!("{id} at version 1"))
            }
            Step::ReadBack => {
                let (event_type, event_data, _, _) = example();
                let page: EventsPage = client.get(&format!("/aggregates/{id}/events")).await?;
                match page.events.as_slice() {
                    [e] if e.version == 1
                        && e.event_type == event_type
                        && e.event_data == event_data =>
                    {
                        Ok(format!("1 event, {} at version 1", e.event_type))
                    }
                    events => Err(format!(
                        "expected exactly the {event_type} event at version 1, got {} event(s): {}",
                        events.len(),
                        serde_json::to_string(events).unwrap_or_default()
                    )),
                }
            }
            Step::Projection(limit) => {
                let deadline = Instant::now() + limit;
                let replayed: AggregateView = client
                    .get(&format!("/aggregates/{id}?consistent=true"))
                    .await?;
                let mut last: String;
                loop {
                    match client
                        .get::<AggregateView>(&format!("/aggregates/{id}"))
                        .await
                    {
                        Ok(view) if view.version >= 1 && view.state == replayed.state => {
                            return Ok(format!(
                                "read model at version {}, equal to the replay",
                                view.version
                            ));
                        }
                        Ok(view) => {
                            last = format!("read model at version {}: {}", view.version, view.state)
                        }
                        Err(e) => last = e,
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "the read model did not catch up within {} s (last: {last})",
                            limit.as_secs()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Step::Conflict => {
                let (_, _, event_type, event_data) = example();
                let req = AppendOneRequest {
                    aggregate_type: None,
                    event_type: event_type.to_string(),
                    event_data,
                    expected_version: Some(0),
                    command_id: None,
                };
                let (status, body) = client
                    .post_raw(&format!("/aggregates/{id}/events"), &req)
                    .await?;
                let err: Result<ErrorBody, _> = serde_json::from_slice(&body);
                match (status, err) {
                    (409, Ok(e)) if e.error.code == "version_conflict" => Ok(format!(
                        "409 version_conflict (current version {:?})",
                        e.error.current_version
                    )),
                    (status, _) => Err(format!(
                        "expected 409 version_conflict for expectedVersion 0 on a version-1 aggregate, got {status}: {}",
                        String::from_utf8_lossy(&body)
                    )),
                }
            }
        }
    }
}

/// A small typed client over reqwest: every body is a `domain::api` type; any other status than the expected
/// one becomes a message carrying the server's `{"error":{"code","message"}}`.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str, token: Option<&str>) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(value) = token.and_then(bearer) {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .default_headers(headers)
            .build()
            .expect("an HTTP client builds");
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        decode("GET", path, resp).await
    }

    async fn post_ok<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        decode("POST", path, resp).await
    }

    async fn post_raw<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(u16, Vec<u8>), String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("POST {path}: reading the body: {e}"))?;
        Ok((status, bytes.to_vec()))
    }
}

/// `Bearer <token>`, marked sensitive so it is never logged; `None` when the token cannot be a header value.
fn bearer(token: &str) -> Option<reqwest::header::HeaderValue> {
    let mut value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

async fn decode<T: DeserializeOwned>(
    method: &str,
    path: &str,
    resp: reqwest::Response,
) -> Result<T, String> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{method} {path}: reading the body: {e}"))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => format!(
                "{method} {path}: {} {}: {}",
                status.as_u16(),
                e.error.code,
                e.error.message
            ),
            Err(_) => format!(
                "{method} {path}: {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&bytes)
            ),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{method} {path}: {} with a body that does not match the API types ({e}): {}",
            status.as_u16(),
            String::from_utf8_lossy(&bytes)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn plan(env: &str) -> Plan {
        stack::config::load(&crate::cli::repo_root().join("config"), env).unwrap()
    }

    /// Serves one request on a free port: returns the request head it received, answers 503.
    async fn one_request_server() -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let body = r#"{"error":{"code":"unavailable","message":"test server"}}"#;
            let resp = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        (url, handle)
    }

    #[tokio::test]
    async fn the_token_is_sent_as_a_bearer_token() {
        let (url, server) = one_request_server().await;
        let record = run_checks(
            "prod",
            &url,
            None,
            Duration::from_secs(1),
            Some("tok.en-1\n"),
        )
        .await;
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /health ")
                && head.contains("\r\nauthorization: bearer tok.en-1\r\n"),
            "{head}"
        );
        // The server's answer is reported, and nothing after the failed check ran.
        assert!(!record.passed);
        assert_eq!(record.checks.len(), 1);
        assert!(
            record.checks[0].detail.contains("503 unavailable"),
            "{:?}",
            record.checks
        );
    }

    #[tokio::test]
    async fn no_token_sends_no_authorization_header() {
        let (url, server) = one_request_server().await;
        let _ = run_checks("dev", &url, None, Duration::from_secs(1), None).await;
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(!head.contains("authorization"), "{head}");
    }

    #[test]
    fn a_jwt_environment_without_a_token_is_refused_with_what_to_set() {
        let prod = plan("prod");
        let err = require_token(&prod, None).unwrap_err();
        assert_eq!(
            crate::deploy::exit_status_of(&err),
            ExitStatus::InvalidInput
        );
        let msg = err.to_string();
        assert!(msg.contains("config/prod.yaml: api.jwt"), "{msg}");
        assert!(msg.contains("set XTASK_SMOKE_TOKEN to a token issued by https://auth.example.com/ for the audience cqrs-api"), "{msg}");
        require_token(&prod, Some("t")).unwrap();
        // A token that cannot be a header value is refused before any request.
        let err = require_token(&prod, Some("a\u{7}b")).unwrap_err();
        assert!(
            err.to_string().contains("does not hold a usable token"),
            "{err}"
        );
        // No authorizer, no token needed.
        require_token(&plan("dev"), None).unwrap();
        require_token(&plan("local"), None).unwrap();
    }

    /// A stand-in authorization server on 127.0.0.1: a discovery document pointing at its token endpoint, and a
    /// token endpoint answering `token_answer` (status line, JSON body). Returns its issuer URL and, once both
    /// requests are served, what it received (head and body of each).
    async fn fake_issuer(
        token_answer: (&'static str, &'static str),
    ) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let discovery =
            format!(r#"{{"issuer":"{issuer}","token_endpoint":"{issuer}/oauth2/token"}}"#);
        let handle = tokio::spawn(async move {
            let mut seen = Vec::new();
            for answer in [("200 OK", discovery.as_str()), token_answer] {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut got = Vec::new();
                let mut buf = vec![0u8; 8192];
                loop {
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                    let n = sock.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                seen.push(String::from_utf8_lossy(&got).into_owned());
                let (status, body) = answer;
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
            }
            seen
        });
        (issuer, handle)
    }

    fn client() -> ClientCredentials {
        ClientCredentials {
            client_id: "smoke-ci".into(),
            client_secret: "s3cret".into(),
            token_url: None,
            scope: Some("cqrs-api/smoke".into()),
        }
    }

    #[tokio::test]
    async fn a_token_is_minted_with_the_client_credentials_grant_at_the_discovered_endpoint() {
        let (issuer, server) = fake_issuer((
            "200 OK",
            r#"{"access_token":"minted.jwt.token","token_type":"Bearer","expires_in":300}"#,
        ))
        .await;
        let jwt = stack::JwtAuthorizer {
            issuer: format!("{issuer}/"),
            audience: vec!["cqrs-api".into()],
        };
        let token = mint_token(&jwt, &client()).await.unwrap();
        assert_eq!(token, "minted.jwt.token");
        let seen = server.await.unwrap();
        assert!(
            seen[0].starts_with("GET /.well-known/openid-configuration "),
            "{}",
            seen[0]
        );
        let request = &seen[1];
        assert!(request.starts_with("POST /oauth2/token "), "{request}");
        let lower = request.to_ascii_lowercase();
        // `smoke-ci:s3cret`, as HTTP Basic.
        assert!(
            lower.contains("authorization: basic ") && request.contains("c21va2UtY2k6czNjcmV0"),
            "{request}"
        );
        assert!(
            lower.contains("content-type: application/x-www-form-urlencoded"),
            "{request}"
        );
        let body = request.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(
            body,
            "grant_type=client_credentials&audience=cqrs-api&scope=cqrs-api%2Fsmoke"
        );
        // The secret is never in a debug print.
        assert!(!format!("{:?}", client()).contains("s3cret"));
    }

    #[tokio::test]
    async fn a_refused_client_is_reported_with_the_servers_error_and_what_to_check() {
        let (issuer, server) = fake_issuer((
            "401 Unauthorized",
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
        ))
        .await;
        let jwt = stack::JwtAuthorizer {
            issuer,
            audience: vec!["cqrs-api".into()],
        };
        let err = mint_token(&jwt, &client()).await.unwrap_err().to_string();
        server.await.unwrap();
        assert!(
            err.contains("answered 401 Unauthorized (invalid_client client authentication failed)"),
            "{err}"
        );
        assert!(
            err.contains("check XTASK_SMOKE_CLIENT_ID and XTASK_SMOKE_CLIENT_SECRET"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn smoke_aggregates_are_recognisable() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T01:22:33Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = aggregate_id("staging", at);
        assert!(id.starts_with("smoke-staging-20261130T012233Z-"), "{id}");
        assert_eq!(
            id.len(),
            "smoke-staging-20261130T012233Z-".len() + 8,
            "{id}"
        );
        assert!(domain::validate::validate_id("aggregateId", &id).is_ok());
        assert_ne!(id, aggregate_id("staging", at));
    }
}
