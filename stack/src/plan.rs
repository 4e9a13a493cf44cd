//! The validated plan: the single, pure-data description of one environment's stack.
//!
//! Everything downstream reads this and only this: the template renderer, the AWS deployer, and the
//! local engine (which takes its routes and stream-mapping settings from here because the local AWS
//! endpoint cannot create API Gateway v2 resources or a working event source mapping).
//! **Architecture Invariant:** a `Plan` is plain data, built from config without any I/O beyond
//! reading the config file; it holds no clients, handles or paths that are opened later.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The managed policy every function role of `stack_name` carries as its permissions boundary. The CI
/// bootstrap (`templates/oidc-roles.yaml.hbs`) creates it; the deploy role may create or change a role
/// only with it attached.
pub fn permissions_boundary_name(stack_name: &str) -> String {
    format!("{stack_name}-function-boundary")
}

/// The root of the IAM paths of every stack's function roles. The deploy roles never live under it.
pub const FUNCTION_ROLE_PATH_ROOT: &str = "/cqrs/";

/// The IAM path of the function roles of `stack_name`: `/cqrs/<stack>/`. The deploy role may create, change,
/// delete and pass only roles under this path (`role/cqrs/<stack>/*`), so a role named like the stack but
/// created by anyone else (`role/<stack>-admin`) is out of its reach, and one stack's grants never cover
/// another's (`/cqrs/cqrs-dev/` is not a prefix of `/cqrs/cqrs-dev2/`).
pub fn function_role_path(stack_name: &str) -> String {
    format!("{FUNCTION_ROLE_PATH_ROOT}{stack_name}/")
}

/// The role name of one function: `<stack>-<function>` (at most 40 + 10 characters, so CloudFormation never
/// truncates it as it does the names it generates).
pub fn function_role_name(stack_name: &str, function: FunctionName) -> String {
    format!("{stack_name}-{}", function.as_str())
}

/// The alias every route and the stream mapping invoke on AWS (`<function>:live`): each deploy publishes a
/// version and moves the alias to it; `rollback` moves it back. The local engine models the same alias.
pub const LIVE_ALIAS: &str = "live";

/// The log group of the HTTP API stage's access logs.
pub fn access_log_group_name(stack_name: &str) -> String {
    format!("/aws/apigateway/{stack_name}-access")
}

/// The log group Lambda writes a function's logs to: `/aws/lambda/<physical function name>`.
pub fn function_log_group_name(function_name: &str) -> String {
    format!("/aws/lambda/{function_name}")
}

/// The views table: `<stack>-views`. The deploy role may manage it in every environment, so a domain's
/// first view deploys without a new role.
pub fn views_table_name(stack_name: &str) -> String {
    format!("{stack_name}-views")
}

/// The projector's dead-letter queue (SQS): `<stack>-projector-dlq`.
pub fn dlq_name(stack_name: &str) -> String {
    format!("{stack_name}-projector-dlq")
}

/// The AWS partition of `region` (`aws`, `aws-cn`, `aws-us-gov`): the second field of every ARN there. Templates
/// write `${AWS::Partition}`; code that builds an ARN itself takes it from here, never a literal `arn:aws:`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// One environment's validated plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Environment name, e.g. `local`, `dev`, `prod` (the config file stem).
    pub env: String,
    /// The config file this plan came from (for error messages).
    pub config_path: PathBuf,
    /// Application name, e.g. `cqrs`.
    pub app: String,
    /// CloudFormation stack name; also the prefix of every physical name.
    pub stack_name: String,
    pub kind: EnvKind,
    /// An `aws` environment named `prod` or with `protected: true`: its data is kept and protected, it takes no
    /// hotswap, it has an AWS account of its own, and its stack has termination protection.
    #[serde(default)]
    pub protected: bool,
    pub region: String,
    /// Required for `aws` environments, optional for `local`.
    pub account_id: Option<String>,
    /// Role to assume before deploying (CI).
    pub role_arn: Option<String>,
    /// command, query, projector, in that order.
    pub functions: Vec<FunctionPlan>,
    pub events_table: TablePlan,
    pub projections_table: TablePlan,
    /// The domain's views (`domain::registry().views()`), each served by `GET /views/<name>/{key}`.
    pub views: Vec<ViewPlan>,
    /// The views table (`<stack_name>-views`, the projections table's settings): present exactly when the
    /// domain declares views.
    pub views_table: Option<TablePlan>,
    pub stream_mapping: StreamMapping,
    pub api: ApiPlan,
    pub tags: BTreeMap<String, String>,
    pub alarms: bool,
    /// The SNS topic every alarm notifies (alarm and OK); set exactly when `alarms` is on.
    pub alarm_topic_arn: Option<String>,
    pub deploy: DeployPolicy,
    /// How a deploy moves the `live` alias to the new versions (`deployment` in the config).
    #[serde(default)]
    pub deployment: TrafficShift,
    /// Present only for `local` environments.
    pub local: Option<LocalSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvKind {
    Local,
    Aws,
}

/// The three functions of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionName {
    Command,
    Query,
    Projector,
}

impl FunctionName {
    pub const ALL: [FunctionName; 3] = [
        FunctionName::Command,
        FunctionName::Query,
        FunctionName::Projector,
    ];

    /// The cargo package / binary name, and the config key: `command`, `query`, `projector`.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionName::Command => "command",
            FunctionName::Query => "query",
            FunctionName::Projector => "projector",
        }
    }

    /// The CloudFormation logical id prefix: `Command`, `Query`, `Projector`
    /// (resources are `CommandFunction`, `CommandRole`, `CommandLogGroup`, parameter `CommandCodeKey`).
    pub fn logical_prefix(self) -> &'static str {
        match self {
            FunctionName::Command => "Command",
            FunctionName::Query => "Query",
            FunctionName::Projector => "Projector",
        }
    }
}

impl std::fmt::Display for FunctionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FunctionName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FunctionName::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown function `{s}`; expected one of: command, query, projector")
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    X86_64,
    Arm64,
}

impl Architecture {
    /// The Lambda API spelling: `x86_64` or `arm64`.
    pub fn as_lambda(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionPlan {
    pub name: FunctionName,
    /// Physical function name: `<stack_name>-<name>`.
    pub function_name: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    pub architecture: Architecture,
    pub reserved_concurrency: Option<u32>,
    /// `error`, `warn`, `info`, `debug` or `trace`; becomes `RUST_LOG`.
    pub log_level: String,
    pub log_retention_days: u32,
    /// Environment variables the function receives (table names, log level), in addition to what the
    /// platform sets. Keys: `EVENTS_TABLE`, `PROJECTIONS_TABLE`, `RUST_LOG` (only those it needs).
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BillingMode {
    PayPerRequest,
    Provisioned,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TablePlan {
    /// Physical table name: `<stack_name>-events` / `<stack_name>-projections`.
    pub table_name: String,
    pub billing_mode: BillingMode,
    pub point_in_time_recovery: bool,
    pub deletion_protection: bool,
    /// `DeletionPolicy`/`UpdateReplacePolicy: Retain`.
    pub retain_on_delete: bool,
}

/// A view the domain declares, as the plan knows it: a route, rows in the views table, grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewPlan {
    pub name: String,
    pub aggregate_type: String,
    /// Every version declared (ascending); the last is the one reads switch to once it has caught up.
    pub versions: Vec<u32>,
}

/// The domain's views as the plan carries them.
pub fn domain_views() -> Vec<ViewPlan> {
    domain::registry()
        .views()
        .into_iter()
        .map(|v| ViewPlan {
            name: v.name,
            aggregate_type: v.aggregate_type,
            versions: v.versions,
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

/// The stream mapping's event filter: only inserted items that have an `event_type`, i.e. events. The
/// append's head and command records (no `event_type`), head updates (MODIFY) and TTL deletions of command
/// records (REMOVE) never reach the projector. The AWS mapping renders it as `FilterCriteria`; the local
/// poller applies the same pattern.
pub const EVENTS_ONLY_FILTER: &str =
    r#"{"eventName":["INSERT"],"dynamodb":{"NewImage":{"event_type":{"S":[{"exists":true}]}}}}"#;

/// Settings of the events-stream -> projector mapping (validated: safe values only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMapping {
    /// Lambda event filter patterns (JSON); a record is delivered when it matches any. Always
    /// [`EVENTS_ONLY_FILTER`] from the config.
    #[serde(default)]
    pub filter_patterns: Vec<String>,
    pub batch_size: u32,
    pub maximum_batching_window_seconds: u32,
    /// Bounded: 0..=10000 (never -1).
    pub maximum_retry_attempts: u32,
    /// Bounded: 60..=604800 (never -1).
    pub maximum_record_age_seconds: u32,
    pub bisect_batch_on_function_error: bool,
    /// Always 1 (above 1 breaks per-aggregate order).
    pub parallelization_factor: u32,
    pub starting_position: StartingPosition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// One HTTP API route, as API Gateway v2 spells it: `GET /aggregates/{aggregateId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub method: HttpMethod,
    /// Path with `{param}` segments, e.g. `/aggregates/{aggregateId}/events`.
    pub path: String,
    pub function: FunctionName,
}

impl Route {
    /// The API Gateway v2 route key: `POST /events`.
    pub fn route_key(&self) -> String {
        format!("{} {}", self.method.as_str(), self.path)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiPlan {
    /// The six routes of the service (see `default_routes`).
    pub routes: Vec<Route>,
    /// The API's CORS configuration; `None` when `api.cors_origins` is empty (no CORS: API Gateway answers
    /// no preflight and adds no CORS header).
    pub cors: Option<CorsPlan>,
    pub throttling_burst_limit: u32,
    pub throttling_rate_limit: f64,
    pub jwt: Option<JwtAuthorizer>,
    /// Stage name (`$default` unless configured).
    pub stage_name: String,
}

/// The HTTP API's `CorsConfiguration`, exactly what the template declares and the local gateway enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsPlan {
    /// `api.cors_origins`: exact origins (`https://app.example.com`) or `*`.
    pub allow_origins: Vec<String>,
    /// The methods of the API's routes (`GET`, `POST`), sorted.
    pub allow_methods: Vec<String>,
    /// [`CORS_ALLOW_HEADERS`].
    pub allow_headers: Vec<String>,
    /// `api.cors_max_age_seconds`: how long a browser may cache a preflight answer; `None` sends no
    /// `Access-Control-Max-Age`.
    pub max_age_seconds: Option<u32>,
}

/// The request headers a browser may send cross-origin: what the service reads (`content-type`,
/// `idempotency-key`) and what the JWT authorizer reads (`authorization`).
pub const CORS_ALLOW_HEADERS: [&str; 3] = ["authorization", "content-type", "idempotency-key"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtAuthorizer {
    pub issuer: String,
    pub audience: Vec<String>,
}

/// What the deploy pipeline is allowed to do in this environment (promotion, hotswap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployPolicy {
    /// The environment whose release may be promoted into this one (`dev` for staging, `staging` for prod).
    pub promote_from: Option<String>,
    /// Whether `deploy --hotswap` is allowed (false for prod by default).
    pub hotswap: bool,
    /// Whether a passing smoke test of the source is required before promotion into this environment.
    pub require_smoke: bool,
}

/// How a deploy moves each function's `live` alias to its new version. `AllAtOnce` lets CloudFormation point
/// the alias at the new version directly; `Canary` and `Linear` hand the shift to CodeDeploy (AWS's own engine,
/// as SAM's `DeploymentPreference` does), which stops and rolls back when an alarm on the new version fires.
/// In a local environment the local engine shifts the invocations itself (`local_engine::canary`), in seconds if
/// the config says so: the interval is kept in seconds for that reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "strategy")]
pub enum TrafficShift {
    #[default]
    AllAtOnce,
    /// `percent` of the traffic for `interval_seconds`, then the rest.
    Canary { percent: u32, interval_seconds: u32 },
    /// `percent` more every `interval_seconds` until all of it.
    Linear { percent: u32, interval_seconds: u32 },
}

/// The shifts CodeDeploy predefines for Lambda (`CodeDeployDefault.Lambda*`): (strategy, percent, minutes).
/// Other values would need a custom `AWS::CodeDeploy::DeploymentConfig`, which the templates do not render.
pub const PREDEFINED_SHIFTS: [(&str, u32, u32); 8] = [
    ("canary", 10, 5),
    ("canary", 10, 10),
    ("canary", 10, 15),
    ("canary", 10, 30),
    ("linear", 10, 1),
    ("linear", 10, 2),
    ("linear", 10, 3),
    ("linear", 10, 10),
];

/// One step of a shift: the share of invocations the new version gets (percent) and for how long (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftStep {
    pub percent: u32,
    pub seconds: u32,
}

impl TrafficShift {
    /// Whether CodeDeploy shifts the traffic (and the stack renders its application, groups and alarms).
    pub fn uses_codedeploy(self) -> bool {
        self != TrafficShift::AllAtOnce
    }

    /// The steps before the new version takes all the traffic: one for a canary, `100 / percent` (rounded up,
    /// the last capped below 100) for a linear shift, none all at once.
    pub fn steps(self) -> Vec<ShiftStep> {
        match self {
            TrafficShift::AllAtOnce => Vec::new(),
            TrafficShift::Canary {
                percent,
                interval_seconds,
            } => vec![ShiftStep {
                percent,
                seconds: interval_seconds,
            }],
            TrafficShift::Linear {
                percent,
                interval_seconds,
            } => (1..)
                .map(|i| percent * i)
                .take_while(|p| *p < 100)
                .map(|p| ShiftStep {
                    percent: p,
                    seconds: interval_seconds,
                })
                .collect(),
        }
    }

    /// The CodeDeploy deployment configuration, e.g. `CodeDeployDefault.LambdaCanary10Percent5Minutes`.
    pub fn codedeploy_config(self) -> String {
        match self {
            TrafficShift::AllAtOnce => "CodeDeployDefault.LambdaAllAtOnce".into(),
            TrafficShift::Canary {
                percent,
                interval_seconds,
            } => format!(
                "CodeDeployDefault.LambdaCanary{percent}Percent{}Minutes",
                interval_seconds / 60
            ),
            TrafficShift::Linear {
                percent,
                interval_seconds: 60,
            } => format!("CodeDeployDefault.LambdaLinear{percent}PercentEvery1Minute"),
            TrafficShift::Linear {
                percent,
                interval_seconds,
            } => format!(
                "CodeDeployDefault.LambdaLinear{percent}PercentEvery{}Minutes",
                interval_seconds / 60
            ),
        }
    }
}

/// The CodeDeploy application of a stack's functions (one deployment group per function, named like it).
pub fn codedeploy_application_name(stack_name: &str) -> String {
    format!("{stack_name}-functions")
}

/// The role CodeDeploy assumes to shift the aliases and read the alarms, under the function role path.
pub fn codedeploy_role_name(stack_name: &str) -> String {
    format!("{stack_name}-codedeploy")
}

/// Settings that only the local engine uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalSettings {
    /// Port of the local HTTP gateway on 127.0.0.1.
    pub gateway_port: u16,
    /// Port of the local AWS endpoint (moto) on 127.0.0.1.
    pub endpoint_port: u16,
    /// Port of the local inspector (the read-only page over the local data) on 127.0.0.1; `None` picks a
    /// free one. Only a local environment has one: no AWS environment renders or exposes the inspector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspector_port: Option<u16>,
}

/// The routes every environment serves: the fixed ones and one `GET /views/<view>/{key}` per view of the
/// domain. The plan, the template, the local gateway and the OpenAPI document all derive from this list.
pub fn default_routes() -> Vec<Route> {
    let mut routes = fixed_routes();
    for view in domain_views() {
        routes.push(Route {
            method: HttpMethod::Get,
            path: format!("/views/{}/{{key}}", view.name),
            function: FunctionName::Query,
        });
    }
    routes
}

/// The routes that do not depend on the domain.
fn fixed_routes() -> Vec<Route> {
    use FunctionName::*;
    use HttpMethod::*;
    let r = |method, path: &str, function| Route {
        method,
        path: path.to_string(),
        function,
    };
    vec![
        r(Post, "/events", Command),
        r(Post, "/aggregates/{aggregateId}/events", Command),
        r(Get, "/aggregates/{aggregateId}/events", Query),
        r(Get, "/aggregates/{aggregateId}", Query),
        r(Get, "/events", Query),
        r(Get, "/health", Query),
    ]
}

impl Plan {
    /// Whether the dead-letter queue and the log groups are retained with the tables: on AWS, when the event
    /// log is (what the projector gave up on and what the functions logged are the evidence after a teardown).
    pub fn retains_operational_resources(&self) -> bool {
        self.kind == EnvKind::Aws && self.events_table.retain_on_delete
    }

    /// Every table of the plan with its logical id: the event log, the read models and, when the domain
    /// declares views, the views table.
    pub fn tables(&self) -> Vec<(&'static str, &TablePlan)> {
        let mut tables = vec![
            ("EventsTable", &self.events_table),
            ("ProjectionsTable", &self.projections_table),
        ];
        if let Some(views) = &self.views_table {
            tables.push(("ViewsTable", views));
        }
        tables
    }

    pub fn function(&self, name: FunctionName) -> &FunctionPlan {
        self.functions
            .iter()
            .find(|f| f.name == name)
            .expect("a validated plan has all three functions")
    }
}

/// Names of the CloudFormation template parameters the deployer fills in.
pub mod parameters {
    /// S3 bucket holding the function zips.
    pub const ARTIFACT_BUCKET: &str = "ArtifactBucket";
    /// `<Prefix>CodeKey`, e.g. `CommandCodeKey` = `functions/command/<sha256>.zip`.
    pub fn code_key(function: super::FunctionName) -> String {
        format!("{}CodeKey", function.logical_prefix())
    }
    /// SHA-256 (hex) of the release manifest; recorded so a no-op deploy can be detected and promotion can
    /// find the manifest (`releases/<sha256>.json` in the artifact bucket).
    pub const RELEASE_DIGEST: &str = "ReleaseDigest";
}

/// Names of the CloudFormation stack outputs.
pub mod outputs {
    pub const API_URL: &str = "ApiUrl";
    pub const EVENTS_TABLE: &str = "EventsTableName";
    pub const PROJECTIONS_TABLE: &str = "ProjectionsTableName";
    /// Present when the domain declares views.
    pub const VIEWS_TABLE: &str = "ViewsTableName";
    pub const EVENTS_STREAM_ARN: &str = "EventsStreamArn";
    pub const DEAD_LETTER_QUEUE_URL: &str = "DeadLetterQueueUrl";
    pub const DEAD_LETTER_QUEUE_ARN: &str = "DeadLetterQueueArn";
    pub const RELEASE_DIGEST: &str = "ReleaseDigest";
    /// `<Prefix>FunctionName`, e.g. `CommandFunctionName`.
    pub fn function_name(function: super::FunctionName) -> String {
        format!("{}FunctionName", function.logical_prefix())
    }
}
