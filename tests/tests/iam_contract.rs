//! The deploy role's IAM contract, proven from authoritative sources for every `aws` environment:
//!
//! - it grants every permission CloudFormation's resource provider schemas list for every resource type of
//!   the stack template (`handlers.{create,read,update,delete}.permissions`, and `tagging.permissions` of
//!   every taggable type: the stack's tags always reach them), except the [`EXCLUDED`] list, each line with
//!   its reason. The schemas are the ones bundled with the pinned cfn-lint (`tests::tools::CFN_LINT_VERSION`);
//!   each permission is checked on the ARNs of the stack's own resources of that type, or on `*` where IAM's
//!   reference (also bundled with cfn-lint) lists no resource type for the action;
//! - its statements generated from `deployer::permissions::CALLS` (`Tool*`) grant every AWS operation the
//!   tool itself makes on the resource the call targets, and nothing else; the template's own statements grant
//!   only handler permissions; a tidy scan proves the table lists every SDK call in `xtask/deployer/src`;
//! - it grants nothing else, and no wildcard action;
//! - no role in any rendered template can create or widen a role without the permissions boundary, pass a
//!   role to anything but Lambda, remove the boundary, or attach a managed policy; the deploy role touches
//!   only roles under the stack's function role path; every function role carries the boundary, lives under
//!   that path, and the boundary allows exactly what the function roles grant;
//! - the artifact bucket grants hold only while the bucket is the account's (`s3:ResourceAccount`), and
//!   `lambda:AddPermission` only for API Gateway (`lambda:Principal`).
//!
//! Each checker is also run, for every environment, on seeded mistakes (one action dropped, one granted on the
//! wrong resource, one unused action added, a condition removed, a managed policy attached) and must then fail,
//! so a pass means something. Moto enforces no IAM, which is why this is read from the policies (and AWS's
//! published schemas) rather than observed.

use std::collections::{BTreeMap, BTreeSet};

use deployer::permissions::{CALLS, REPLAY_STORE_ACTIONS, Target};
use serde_json::{Value, json};
use stack::Plan;
use tests::iam::{self, Role, glob};

/// Handler permissions the deploy role does not get, as (resource type, action pattern, why the stack never
/// needs it). A template that starts using the feature fails on AWS with the action named; add it then.
const EXCLUDED: &[(&str, &str, &str)] = &[
    (
        "*",
        "kms:*",
        "no KMS key at all: the tables use the AWS-owned key (`SSEEnabled: false`; `true` would be the AWS-managed aws/dynamodb KMS key, and stack::validate refuses it), the queue SQS-managed SSE, the log groups no KmsKeyId",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:AssociateKmsKey",
        "no KmsKeyId on the log groups",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:DisassociateKmsKey",
        "no KmsKeyId on the log groups",
    ),
    (
        "AWS::Lambda::Function",
        "ec2:*",
        "the functions run outside a VPC (no VpcConfig)",
    ),
    (
        "AWS::Lambda::Function",
        "elasticfilesystem:*",
        "no EFS file system (no FileSystemConfigs)",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:GetLayerVersion",
        "no layers",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:GetCodeSigningConfig",
        "no code signing config",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:PutFunctionCodeSigningConfig",
        "no code signing config",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:DeleteFunctionCodeSigningConfig",
        "no code signing config",
    ),
    (
        "AWS::DynamoDB::Table",
        "kinesis:*",
        "no Kinesis streaming destination",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:EnableKinesisStreamingDestination",
        "no Kinesis streaming destination",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:DisableKinesisStreamingDestination",
        "no Kinesis streaming destination",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:UpdateKinesisStreamingDestination",
        "no Kinesis streaming destination",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:ImportTable",
        "tables are never created from an S3 import (no ImportSourceSpecification)",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:DescribeImport",
        "tables are never created from an S3 import",
    ),
    (
        "AWS::DynamoDB::Table",
        "s3:*",
        "only an S3 import reads S3 for a table",
    ),
    (
        "AWS::DynamoDB::Table",
        "logs:*",
        "only an S3 import writes CloudWatch Logs for a table",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:PutResourcePolicy",
        "no table resource policy: one could open the event log to other principals",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:DeleteResourcePolicy",
        "no table resource policy",
    ),
    (
        "AWS::DynamoDB::Table",
        "iam:CreateServiceLinkedRole",
        "no replicas (AWS::DynamoDB::Table, not GlobalTable); service-linked roles are an administrator's",
    ),
    (
        "AWS::Logs::LogGroup",
        "s3:REST.PUT.OBJECT",
        "not an IAM action (an S3 REST operation name in the schema)",
    ),
    (
        "AWS::Logs::LogGroup",
        "firehose:*",
        "log groups deliver to no Firehose stream",
    ),
    (
        "AWS::IAM::Role",
        "iam:DeleteRolePermissionsBoundary",
        "never granted: removing the boundary would let a role escape it",
    ),
    (
        "AWS::ApiGatewayV2::Stage",
        "apigateway:TagResource",
        "not an IAM action (IAM's reference, bundled with cfn-lint, has none; cfn-lint warns W3037): API Gateway authorizes tagging as apigateway:PUT on /tags/<arn>, granted in HttpApi and asserted below",
    ),
    (
        "AWS::ApiGatewayV2::Stage",
        "apigateway:UntagResource",
        "not an IAM action: untagging is apigateway:DELETE on /tags/<arn>, granted in HttpApi",
    ),
    // Listed by the schemas of cfn-lint 1.58.0 (newer than May 2025) for features the templates do not use.
    (
        "AWS::Lambda::Function",
        "s3files:*",
        "no S3 Files mount (no FileSystemConfigs)",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:PutFunctionScalingConfig",
        "no capacity provider (Lambda managed instances): the functions run on the default compute",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:GetFunctionScalingConfig",
        "no capacity provider (Lambda managed instances)",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:PassCapacityProvider",
        "no capacity provider (Lambda managed instances)",
    ),
    (
        "AWS::Lambda::Function",
        "lambda:AssociateRuntimeAlias",
        "no runtime alias: the functions use the OS-only runtime provided.al2023",
    ),
    (
        "AWS::Lambda::Version",
        "lambda:PutFunctionScalingConfig",
        "no capacity provider (Lambda managed instances): versions carry no FunctionScalingConfig",
    ),
    (
        "AWS::Lambda::Version",
        "lambda:GetFunctionScalingConfig",
        "no capacity provider (Lambda managed instances)",
    ),
    (
        "AWS::Lambda::*",
        "lambda:*ProvisionedConcurrencyConfig",
        "no ProvisionedConcurrencyConfig on the versions or the live alias: the functions scale on demand",
    ),
    (
        "AWS::CodeDeploy::DeploymentGroup",
        "codedeploy:RegisterOnPremisesInstance",
        "ComputePlatform Lambda: the deployment groups have no on-premises (or EC2) instances",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:CreateTableReplica",
        "no replicas (AWS::DynamoDB::Table with no replica settings, not GlobalTable)",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:AssociateTableReplica",
        "no replicas",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:UpdateItem",
        "item writes the handler lists for table imports and replica seeding, neither used; the event log is append-only, so CI must not be able to rewrite an event",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:DeleteItem",
        "as dynamodb:UpdateItem: CI must not be able to delete an event",
    ),
    (
        "AWS::DynamoDB::Table",
        "dynamodb:BatchWriteItem",
        "as dynamodb:UpdateItem: BatchWriteItem can delete events too",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:PutBearerTokenAuthentication",
        "no bearer-token ingestion on the log groups",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:PutLogGroupDeletionProtection",
        "no DeletionProtectionEnabled on the log groups (prod retains them with DeletionPolicy instead)",
    ),
    (
        "AWS::Logs::LogGroup",
        "logs:DeleteResourcePolicy",
        "no ResourcePolicyDocument on the log groups; the access-log delivery policy is API Gateway's to manage",
    ),
];

/// Resource types whose schema declares no handlers (legacy providers), and what covers them instead. Empty
/// since cfn-lint 1.58.0's schemas: the `AWS::ApiGatewayV2::Stage` schema now lists its handlers.
const NO_HANDLERS: &[(&str, &str)] = &[];

/// What API Gateway needs from the caller to send a stage's access logs to CloudWatch Logs (AWS API Gateway
/// developer guide, "Configuring logging for an HTTP API": permissions of the user who configures logging).
const ACCESS_LOG_DELIVERY: &[&str] = &[
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
];

/// The permission blocks of a schema the deploy role must cover: the four handlers CloudFormation calls for a
/// stack's resources, and `tagging` (the schemas' `tagging.permissions`, for every taggable type).
const HANDLERS: [&str; 5] = ["create", "read", "update", "delete", "tagging"];

fn resource_types(template: &Value) -> BTreeSet<String> {
    template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|r| r["Type"].as_str().map(str::to_string))
        .collect()
}

type Schemas = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn schemas(types: &BTreeSet<String>, region: &str) -> Schemas {
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    tests::tools::cfn_schema_permissions(&types, region)
}

/// IAM's resource types of each action (`None`: not in IAM's reference; empty: `*` only).
type ActionResources = BTreeMap<String, Option<Vec<String>>>;

fn action_resources(schemas: &Schemas) -> ActionResources {
    let actions: BTreeSet<&str> = schemas
        .values()
        .flat_map(|h| h.values().flatten())
        .map(String::as_str)
        .filter(|a| a.contains(':'))
        .collect();
    let actions: Vec<&str> = actions.into_iter().collect();
    tests::tools::iam_action_resource_types(&actions)
        .into_iter()
        .map(|(a, r)| (a.to_ascii_lowercase(), r))
        .collect()
}

/// The ARNs of the stack's own resources of `resource_type` that a handler's `action` touches, when the schema
/// and the template say which: `*` for an action IAM scopes to no resource type, the stack's resources of the
/// type (or the role, bucket or functions a cross-service permission acts on) otherwise. `None` where the
/// resource is not the stack's to name (an action IAM does not know, a service no resource of ours is of).
fn handler_arns(
    plan: &Plan,
    resource_type: &str,
    action: &str,
    resources: &ActionResources,
) -> Option<Vec<String>> {
    use deployer::permissions::Target::*;
    let known = resources.get(&action.to_ascii_lowercase())?.as_ref()?;
    if known.is_empty() {
        return Some(vec!["*".into()]);
    }
    let (account, bucket) = (iam::account(plan), iam::bucket(plan));
    let (region, stack) = (&plan.region, &plan.stack_name);
    let target = |t: deployer::permissions::Target| Some(t.arns(plan, &account, &bucket));
    let service = action.split(':').next().unwrap_or_default();
    match (resource_type, service) {
        ("AWS::DynamoDB::Table", "dynamodb") => target(Tables),
        ("AWS::Lambda::Function" | "AWS::Lambda::Permission", "lambda") => target(Functions),
        // A version's and an alias's ARN is the function's, qualified (`...:function:<name>:live`).
        ("AWS::Lambda::Version" | "AWS::Lambda::Alias", "lambda") => Some(
            Functions
                .arns(plan, &account, &bucket)
                .into_iter()
                .flat_map(|f| [format!("{f}:7"), format!("{f}:live"), f])
                .collect(),
        ),
        ("AWS::Lambda::Function", "s3") => target(ArtifactObjects),
        (_, "iam") => Some(
            stack::FunctionName::ALL
                .iter()
                .map(|f| function_role_arn(plan, *f))
                .collect(),
        ),
        ("AWS::Lambda::EventSourceMapping", "lambda") => Some(vec![format!(
            "arn:aws:lambda:{region}:{account}:event-source-mapping:0f6b2c1e-8d9a-4e52-9b7c-3a1d2e4f5a6b"
        )]),
        // The stack's application, its deployment groups and the predefined Lambda configurations.
        (
            "AWS::CodeDeploy::Application"
            | "AWS::CodeDeploy::DeploymentGroup"
            | "AWS::Lambda::Alias",
            "codedeploy",
        ) => {
            let app = stack::codedeploy_application_name(stack);
            let all = [
                format!("arn:aws:codedeploy:{region}:{account}:application:{app}"),
                format!(
                    "arn:aws:codedeploy:{region}:{account}:deploymentgroup:{app}/{stack}-command"
                ),
                format!(
                    "arn:aws:codedeploy:{region}:{account}:deploymentconfig:CodeDeployDefault.LambdaCanary10Percent5Minutes"
                ),
            ];
            // Only the resource types IAM's reference names for the action.
            Some(
                all.into_iter()
                    .filter(|arn| {
                        known
                            .iter()
                            .any(|t| arn.contains(&format!(":{}:", t.to_ascii_lowercase())))
                    })
                    .collect(),
            )
        }
        ("AWS::SQS::Queue", "sqs") => target(Queue),
        ("AWS::Logs::LogGroup", "logs") => target(LogGroups),
        ("AWS::CloudWatch::Alarm", "cloudwatch") => Some(vec![format!(
            "arn:aws:cloudwatch:{region}:{account}:alarm:{stack}-ProjectorIteratorAgeAlarm-1A2B3C4D5E6F"
        )]),
        (t, "apigateway") if t.starts_with("AWS::ApiGatewayV2::") => Some(vec![format!(
            "arn:aws:apigateway:{region}::/apis/a1b2c3d4e5"
        )]),
        _ => None,
    }
}

/// The ARN of one function role of `plan`: its explicit name under the stack's function role path.
fn function_role_arn(plan: &Plan, f: stack::FunctionName) -> String {
    format!(
        "arn:aws:iam::{}:role{}{}",
        iam::account(plan),
        stack::function_role_path(&plan.stack_name),
        stack::function_role_name(&plan.stack_name, f)
    )
}

fn excluded(resource_type: &str, action: &str) -> bool {
    EXCLUDED
        .iter()
        .any(|(t, a, _)| glob(t, resource_type, false) && glob(a, action, true))
}

/// The schema permissions of `types`, minus the exclusions: action (lowercase) -> the (type, handler) needing it.
fn required(
    types: &BTreeSet<String>,
    schemas: &Schemas,
) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for t in types {
        let handlers = &schemas[t];
        if handlers.is_empty() {
            assert!(
                NO_HANDLERS.iter().any(|(n, _)| n == t),
                "the resource provider schemas declare no handlers for {t}: add it to NO_HANDLERS with what covers it, or check the schema"
            );
            continue;
        }
        for h in HANDLERS {
            for action in handlers.get(h).into_iter().flatten() {
                if !excluded(t, action) {
                    out.entry(action.to_ascii_lowercase())
                        .or_default()
                        .insert((t.clone(), h.to_string()));
                }
            }
        }
    }
    out
}

/// Everything wrong with one environment's deploy role: a handler permission or a tool call it does not
/// grant, an action nobody needs, a wildcard action.
fn deploy_role_problems(
    plan: &Plan,
    role: &Role,
    types: &BTreeSet<String>,
    schemas: &Schemas,
    resources: &ActionResources,
) -> Vec<String> {
    let mut problems = scope_problems(plan, role);
    let required = required(types, schemas);
    for (action, needed_by) in &required {
        if !role.allows_action(action) {
            problems.push(format!(
                "{}: missing {action}, needed by the {} permissions",
                plan.env,
                needed_by
                    .iter()
                    .map(|(t, h)| format!("{t} {h}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        for (t, h) in needed_by {
            for arn in handler_arns(plan, t, action, resources)
                .into_iter()
                .flatten()
            {
                if !role.allows(action, &arn) {
                    problems.push(format!(
                        "{}: grants {action}, but not on {arn}, which the {t} {h} permissions need it on",
                        plan.env
                    ));
                }
            }
        }
    }
    let (account, bucket) = (iam::account(plan), iam::bucket(plan));
    let mut tool: Vec<(&str, Target, String)> = CALLS
        .iter()
        .map(|c| {
            (
                c.action,
                c.target,
                format!("deployer::permissions `{}` ({})", c.sdk, c.used_by),
            )
        })
        .collect();
    tool.extend(REPLAY_STORE_ACTIONS.iter().map(|a| {
        (
            *a,
            Target::Tables,
            "replay's store (REPLAY_STORE_ACTIONS)".to_string(),
        )
    }));
    // The tool's calls are granted by the statements generated from CALLS (`Tool*`), and only by them.
    let generated = Role {
        statements: role
            .statements
            .iter()
            .filter(|s| is_generated(s))
            .cloned()
            .collect(),
        ..role.clone()
    };
    for (action, target, why) in &tool {
        for arn in target.arns(plan, &account, &bucket) {
            if !generated.allows(action, &arn) {
                problems.push(format!(
                    "{}: missing {action} on {arn}, needed by {why}",
                    plan.env
                ));
            }
        }
    }
    let mut handlers: BTreeSet<String> = required.keys().cloned().collect();
    if types.contains("AWS::ApiGatewayV2::Stage") {
        for a in ACCESS_LOG_DELIVERY {
            handlers.insert(a.to_ascii_lowercase());
            if !role.allows(a, "*") {
                problems.push(format!(
                    "{}: missing {a} on *, needed by stage access logs (ACCESS_LOG_DELIVERY)",
                    plan.env
                ));
            }
        }
    }
    let calls: BTreeSet<String> = tool
        .iter()
        .map(|(a, _, _)| a.to_ascii_lowercase())
        .collect();
    for s in role.statements.iter().filter(|s| s.allow) {
        let sid = s.sid.as_deref().unwrap_or("(no sid)");
        for action in &s.actions {
            let lower = action.to_ascii_lowercase();
            if action.contains('*') || action.contains('?') {
                problems.push(format!(
                    "{}: grants the wildcard action {action}; list the actions the handlers and the tool need",
                    plan.env
                ));
            } else if is_generated(s) && !calls.contains(&lower) {
                problems.push(format!(
                    "{}: grants {action}, which no call of the tool needs (generated statement {sid})",
                    plan.env
                ));
            } else if !is_generated(s) && !handlers.contains(&lower) {
                let hint = if calls.contains(&lower) {
                    "; the tool's calls are granted by the Tool* statements generated from deployer::permissions"
                } else {
                    ""
                };
                problems.push(format!(
                    "{}: grants {action}, which no resource handler of the stack needs (statement {sid}){hint}",
                    plan.env
                ));
            }
        }
    }
    problems
}

/// A statement generated from `deployer::permissions` (`Sid: Tool<Target>`), not written in the template.
fn is_generated(s: &iam::Statement) -> bool {
    s.sid.as_deref().is_some_and(|sid| sid.starts_with("Tool"))
}

/// Where the deploy role's grants reach: IAM actions only on the stack's function role path, bucket and
/// object actions only while the bucket is the account's, invoke permissions only for API Gateway.
fn scope_problems(plan: &Plan, role: &Role) -> Vec<String> {
    let account = iam::account(plan);
    let roles = format!(
        "arn:aws:iam::{account}:role{}",
        stack::function_role_path(&plan.stack_name)
    );
    let mut problems = Vec::new();
    for s in role.statements.iter().filter(|s| s.allow) {
        let sid = s.sid.as_deref().unwrap_or("(no sid)");
        let grants = |p: &str| s.actions.iter().any(|a| glob(p, a, true));
        if grants("iam:*") {
            for r in s.resources.iter().filter(|r| !r.starts_with(&roles)) {
                problems.push(format!(
                    "{}: statement {sid} grants IAM actions on {r}, outside the function role path ({roles}*): any role matching it could be rewritten",
                    plan.env
                ));
            }
        }
        if grants("s3:*")
            && s.actions
                .iter()
                .any(|a| !a.eq_ignore_ascii_case("s3:CreateBucket"))
        {
            let owner = condition_values(&s.condition, "StringEquals", "s3:ResourceAccount");
            if owner != [account.clone()] {
                problems.push(format!(
                    "{}: statement {sid} grants S3 actions without StringEquals s3:ResourceAccount = {account}: a bucket of that name in another account would be used (got {:?})",
                    plan.env, s.condition
                ));
            }
        }
        // An action IAM cannot scope to a resource is granted on "*": a condition narrows it to this stack's
        // region (`aws:RequestedRegion`) or, for event source mappings, to the stack's functions. Only the account
        // check (`sts:GetCallerIdentity`, which reads nothing) goes without.
        if s.resources == ["*"] && s.actions.iter().any(|a| a != "sts:GetCallerIdentity") {
            let region = condition_values(&s.condition, "StringEquals", "aws:RequestedRegion");
            let function = condition_values(&s.condition, "ArnLike", "lambda:FunctionArn");
            if region != [plan.region.clone()] && function.is_empty() {
                problems.push(format!(
                    "{}: statement {sid} grants {:?} on every resource without a condition narrowing it to the stack's region (StringEquals aws:RequestedRegion = {}) or functions (got {:?})",
                    plan.env, s.actions, plan.region, s.condition
                ));
            }
        }
        if grants("lambda:AddPermission") {
            let to = condition_values(&s.condition, "StringEquals", "lambda:Principal");
            if to != ["apigateway.amazonaws.com"] {
                problems.push(format!(
                    "{}: statement {sid} grants lambda:AddPermission without StringEquals lambda:Principal = apigateway.amazonaws.com: it could open a function to anyone (got {:?})",
                    plan.env, s.condition
                ));
            }
        }
    }
    problems
}

struct Env {
    plan: Plan,
    role: Role,
    oidc: Value,
    template: Value,
}

fn environments() -> Vec<Env> {
    let plans = iam::aws_plans();
    assert!(
        plans.len() >= 3,
        "dev, staging and prod are aws environments"
    );
    plans
        .iter()
        .map(|plan| {
            let oidc = iam::oidc_template(plan, &plans);
            Env {
                role: iam::deploy_role(plan, &oidc),
                template: iam::stack_template(plan),
                plan: plan.clone(),
                oidc,
            }
        })
        .collect()
}

/// Every resource type any environment's stack uses: the deploy roles are rendered alike, so each must
/// cover them all (dev turning on alarms must not need a new bootstrap).
fn all_types(envs: &[Env]) -> BTreeSet<String> {
    let mut types: BTreeSet<String> = envs
        .iter()
        .flat_map(|e| resource_types(&e.template))
        .collect();
    for plan in iam::all_plans() {
        types.extend(resource_types(&iam::stack_template(&plan)));
    }
    types
}

/// The schemas and IAM reference of the environments' region (all `aws` environments share it; a second
/// region would need its own index, so the test says so).
fn schemas_of(envs: &[Env], types: &BTreeSet<String>) -> (Schemas, ActionResources) {
    let region = &envs[0].plan.region;
    assert!(
        envs.iter().all(|e| &e.plan.region == region),
        "the aws environments span regions: read the schemas per region"
    );
    let schemas = schemas(types, region);
    let resources = action_resources(&schemas);
    (schemas, resources)
}

#[test]
fn every_deploy_role_grants_exactly_the_handler_permissions_and_the_tools_calls() {
    let envs = environments();
    let types = all_types(&envs);
    let (schemas, resources) = schemas_of(&envs, &types);
    let problems: Vec<String> = envs
        .iter()
        .flat_map(|e| deploy_role_problems(&e.plan, &e.role, &types, &schemas, &resources))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The findings that shipped before this contract, named so a regression reads clearly.
    for e in &envs {
        for action in [
            "cloudformation:DescribeStackResource",
            "cloudwatch:TagResource",
            "cloudwatch:ListTagsForResource",
            "iam:ListRolePolicies",
            "iam:ListAttachedRolePolicies",
            "iam:UpdateAssumeRolePolicy",
            "s3:DeleteObjectVersion",
            "s3:ListBucketVersions",
            // Tagging permissions (the schemas' `tagging` blocks), missing until cfn-lint 1.58.0's schemas:
            // since July 2024 GetFunction returns a function's tags only to a caller allowed ListTags.
            "iam:ListRoleTags",
        ] {
            assert!(e.role.allows_action(action), "{}: {action}", e.plan.env);
        }
        // API Gateway's tagging, which the Stage schema names apigateway:TagResource/UntagResource.
        for verb in ["apigateway:PUT", "apigateway:DELETE"] {
            assert!(
                e.role.allows(
                    verb,
                    &format!(
                        "arn:aws:apigateway:{}::/tags/arn%3Aaws%3Aapigateway%3A{}%3A%3A%2Fapis%2Fa1b2c3d4e5%2Fstages%2F%24default",
                        e.plan.region, e.plan.region
                    )
                ),
                "{}: {verb} on /tags",
                e.plan.env
            );
        }
        assert!(e.role.allows(
            "lambda:ListTags",
            &format!(
                "arn:aws:lambda:{}:{}:function:{}-command",
                e.plan.region,
                iam::account(&e.plan),
                e.plan.stack_name
            )
        ));
        assert!(e.role.allows(
            "logs:DescribeLogGroups",
            &format!(
                "arn:aws:logs:{}:{}:log-group:*",
                e.plan.region,
                iam::account(&e.plan)
            )
        ));
    }
}

/// Removes `action` from every statement of the role.
fn without(role: &Role, action: &str) -> Role {
    let mut r = role.clone();
    for s in &mut r.statements {
        s.actions.retain(|a| !a.eq_ignore_ascii_case(action));
    }
    r
}

/// Adds `action` to the role's first resource-scoped statement.
fn with(role: &Role, action: &str) -> Role {
    let mut r = role.clone();
    r.statements
        .iter_mut()
        .find(|s| s.allow && s.resources.iter().all(|x| x != "*"))
        .unwrap()
        .actions
        .push(action.into());
    r
}

/// Replaces the resources of the statement `sid`.
fn moved(role: &Role, sid: &str, resources: Vec<String>) -> Role {
    let mut r = role.clone();
    for s in r
        .statements
        .iter_mut()
        .filter(|s| s.sid.as_deref() == Some(sid))
    {
        s.resources = resources.clone();
    }
    r
}

/// Removes the condition of the statement `sid`.
fn unconditioned(role: &Role, sid: &str) -> Role {
    let mut r = role.clone();
    for s in r
        .statements
        .iter_mut()
        .filter(|s| s.sid.as_deref() == Some(sid))
    {
        s.condition = Value::Null;
    }
    r
}

#[test]
fn the_deploy_role_contract_fails_on_a_dropped_a_misplaced_and_an_unused_action() {
    let envs = environments();
    let types = all_types(&envs);
    let (schemas, resources) = schemas_of(&envs, &types);
    for e in &envs {
        let env = &e.plan.env;
        let check = |role: &Role| deploy_role_problems(&e.plan, role, &types, &schemas, &resources);
        assert!(check(&e.role).is_empty(), "{env}");
        let account = iam::account(&e.plan);

        // A handler permission dropped (what broke prod's first rollback).
        let p = check(&without(&e.role, "iam:ListRolePolicies"));
        assert!(
            p.iter().any(|p| p.contains("missing iam:listrolepolicies")
                && p.contains("AWS::IAM::Role")),
            "{env}: {p:?}"
        );
        // A tagging permission dropped (what would have broken the first update with stack tags).
        let p = check(&without(&e.role, "iam:ListRoleTags"));
        assert!(
            p.iter()
                .any(|p| p.contains("missing iam:listroletags")
                    && p.contains("AWS::IAM::Role tagging")),
            "{env}: {p:?}"
        );
        // A handler permission granted, but not on the stack's resource of that type: ListTags only on event
        // source mappings, as before, not on the functions.
        let mut misplaced = without(&e.role, "lambda:ListTags");
        misplaced
            .statements
            .iter_mut()
            .find(|s| s.sid.as_deref() == Some("EventSourceMappingReads"))
            .unwrap()
            .actions
            .push("lambda:ListTags".into());
        let p = check(&misplaced);
        assert!(
            p.iter().any(
                |p| p.contains("grants lambda:listtags, but not on arn:aws:lambda:")
                    && p.contains(":function:")
            ),
            "{env}: {p:?}"
        );
        // A handler permission IAM scopes to no resource, granted on one (a denied deploy on AWS).
        let p = check(&moved(
            &e.role,
            "LogAccountLevel",
            vec![format!(
                "arn:aws:logs:{}:{account}:log-group:/aws/lambda/{}-*",
                e.plan.region, e.plan.stack_name
            )],
        ));
        assert!(
            p.iter()
                .any(|p| p.contains("grants logs:createlogdelivery, but not on *")),
            "{env}: {p:?}"
        );
        // A tool call dropped (what broke the first deploy).
        let p = check(&without(&e.role, "cloudformation:DescribeStackResource"));
        assert!(
            p.iter()
                .any(|p| p
                    .contains("cloudformation:DescribeStackResource on arn:aws:cloudformation:")),
            "{env}: {p:?}"
        );
        // A tool call granted on the wrong resource: only the bucket, not its objects.
        let p = check(&moved(
            &e.role,
            "ToolArtifactObjects",
            vec![format!("arn:aws:s3:::{}", iam::bucket(&e.plan))],
        ));
        assert!(
            p.iter()
                .any(|p| p.contains("missing s3:PutObject on arn:aws:s3:::")),
            "{env}: {p:?}"
        );
        // IAM grants back on the stack-name prefix (any `role/<stack>-*` could be rewritten).
        let p = check(&moved(
            &e.role,
            "FunctionRolesRead",
            vec![format!(
                "arn:aws:iam::{account}:role/{}-*",
                e.plan.stack_name
            )],
        ));
        assert!(
            p.iter()
                .any(|p| p.contains("FunctionRolesRead grants IAM actions on arn:aws:iam::")),
            "{env}: {p:?}"
        );
        // The bucket grants without the owner condition; AddPermission for any principal.
        for sid in [
            "ToolArtifactBucket",
            "ToolArtifactObjects",
            "ArtifactObjects",
        ] {
            let p = check(&unconditioned(&e.role, sid));
            assert!(
                p.iter().any(|p| p.contains(&format!(
                    "{sid} grants S3 actions without StringEquals s3:ResourceAccount"
                ))),
                "{env}: {p:?}"
            );
        }
        // The log-delivery and resource-policy grants IAM cannot scope, without their region condition.
        let p = check(&unconditioned(&e.role, "LogAccountLevel"));
        assert!(
            p.iter().any(|p| p.contains("LogAccountLevel grants")
                && p.contains("without a condition narrowing it to the stack's region")),
            "{env}: {p:?}"
        );
        let p = check(&unconditioned(&e.role, "FunctionInvokePermissions"));
        assert!(
            p.iter()
                .any(|p| p.contains("lambda:AddPermission without StringEquals lambda:Principal")),
            "{env}: {p:?}"
        );
        // An action nobody needs, and a wildcard.
        let p = check(&with(&e.role, "dynamodb:DeleteItem"));
        assert!(
            p.iter()
                .any(|p| p.contains("grants dynamodb:DeleteItem, which no")),
            "{env}: {p:?}"
        );
        let p = check(&with(&e.role, "lambda:*"));
        assert!(
            p.iter().any(|p| p.contains("wildcard action lambda:*")),
            "{env}: {p:?}"
        );
        // A tool call written by hand into a handler statement (the generated statements grant the calls),
        // and an action no call makes added to a generated statement.
        let added = |sid: &str, action: &str| {
            let mut r = e.role.clone();
            r.statements
                .iter_mut()
                .find(|s| s.sid.as_deref() == Some(sid))
                .unwrap_or_else(|| panic!("{env}: no statement {sid}"))
                .actions
                .push(action.into());
            check(&r)
        };
        let p = added("Tables", "cloudformation:DescribeStacks");
        assert!(
            p.iter().any(|p| p.contains(
                "grants cloudformation:DescribeStacks, which no resource handler of the stack needs (statement Tables); the tool's calls"
            )),
            "{env}: {p:?}"
        );
        let p = added("ToolTables", "dynamodb:CreateTable");
        assert!(
            p.iter().any(|p| p.contains(
                "grants dynamodb:CreateTable, which no call of the tool needs (generated statement ToolTables)"
            )),
            "{env}: {p:?}"
        );
    }
}

#[test]
fn every_resource_type_of_the_stack_has_handler_permissions_or_a_reason() {
    let envs = environments();
    let types = all_types(&envs);
    let (schemas, _) = schemas_of(&envs, &types);
    for t in &types {
        let has = HANDLERS.iter().any(|h| schemas[t].contains_key(*h));
        let listed = NO_HANDLERS.iter().any(|(n, _)| n == t);
        assert!(
            has != listed,
            "{t}: handlers {has}, listed in NO_HANDLERS {listed}"
        );
    }
    // The exclusions only name permissions some handler of the stack actually lists (no dead lines).
    for (t, a, why) in EXCLUDED {
        let used = types
            .iter()
            .filter(|x| glob(t, x, false))
            .any(|x| schemas[x].values().flatten().any(|p| glob(a, p, true)));
        assert!(
            used,
            "EXCLUDED ({t}, {a}: {why}) matches no handler permission of the stack"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The tool's own calls: the table is complete.

/// The operation names (snake_case, as the SDK's fluent methods) of every AWS SDK crate in `Cargo.lock`, read
/// from each crate's `src/operation/<name>/` in cargo's registry (where the build unpacked them).
fn sdk_operations() -> BTreeSet<String> {
    let lock = std::fs::read_to_string(tests::repo_root().join("Cargo.lock")).unwrap();
    let mut crates = Vec::new();
    let mut name: Option<&str> = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && n.starts_with("aws-sdk-")
        {
            crates.push(format!("{n}-{}", v.trim_matches('"')));
        }
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let mut ops = BTreeSet::new();
    for registry in std::fs::read_dir(cargo_home.join("registry/src"))
        .unwrap()
        .flatten()
    {
        for c in &crates {
            let dir = registry.path().join(c).join("src/operation");
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    ops.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    assert!(
        ops.contains("describe_stack_resource") && ops.contains("put_object"),
        "the AWS SDK crates of Cargo.lock ({crates:?}) are not unpacked under {}/registry/src; build the workspace first",
        cargo_home.display()
    );
    ops
}

/// Every SDK call (`.op(`), waiter (`.wait_until_x(`) and credential provider in the non-test code of
/// `sources`, as (name, file).
fn sdk_calls(sources: &[(String, String)], ops: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for (file, text) in sources {
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or_default();
            if line.contains("AssumeRoleProvider::") {
                found.insert("AssumeRoleProvider".to_string(), file.clone());
            }
            for (i, _) in line.match_indices('.') {
                let rest = &line[i + 1..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if rest[name.len()..].starts_with('(')
                    && (ops.contains(&name) || name.starts_with("wait_until_"))
                {
                    found.insert(name, file.clone());
                }
            }
        }
    }
    found
}

fn undeclared_calls(
    sources: &[(String, String)],
    declared: &BTreeSet<&str>,
    ops: &BTreeSet<String>,
) -> Vec<String> {
    let found = sdk_calls(sources, ops);
    let mut problems: Vec<String> = found
        .iter()
        .filter(|(name, _)| !declared.contains(name.as_str()))
        .map(|(name, file)| {
            format!("{file} calls `{name}`, which deployer::permissions::CALLS does not declare (add its IAM action and target)")
        })
        .collect();
    problems.extend(
        declared
            .iter()
            .filter(|d| !found.contains_key(**d))
            .map(|d| {
                format!(
                    "deployer::permissions::CALLS declares `{d}`, which no code calls (remove it)"
                )
            }),
    );
    problems
}

fn deployer_sources() -> Vec<(String, String)> {
    let dir = tests::repo_root().join("xtask/deployer/src");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "permissions.rs" {
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn every_sdk_call_of_the_deployer_is_declared_with_its_permission() {
    let ops = sdk_operations();
    let declared: BTreeSet<&str> = CALLS.iter().map(|c| c.sdk).collect();
    let problems = undeclared_calls(&deployer_sources(), &declared, &ops);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Seeded: a new call without a row, and a row whose call was removed.
    let mut sources = deployer_sources();
    sources.push((
        "seeded.rs".into(),
        "async fn f(c: &Client) { c.continue_update_rollback().send().await; }".into(),
    ));
    let p = undeclared_calls(&sources, &declared, &ops);
    assert!(
        p.iter()
            .any(|p| p.contains("seeded.rs calls `continue_update_rollback`")),
        "{p:?}"
    );
    let mut fewer = declared.clone();
    fewer.remove("describe_stack_resource");
    let p = undeclared_calls(&deployer_sources(), &fewer, &ops);
    assert!(
        p.iter()
            .any(|p| p.contains("api.rs calls `describe_stack_resource`")),
        "{p:?}"
    );
    let mut more = declared.clone();
    more.insert("delete_stack_set");
    let p = undeclared_calls(&deployer_sources(), &more, &ops);
    assert!(
        p.iter().any(|p| p.contains("declares `delete_stack_set`")),
        "{p:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// No escalation.

/// Actions that create a role or change what it may do: allowed only with the boundary condition.
const WIDENING: &[&str] = &[
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
];

/// Actions no role of the templates may have: each escapes or rewrites a boundary, or creates another
/// identity with its own credentials.
const FORBIDDEN: &[&str] = &[
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeletePolicy",
    "iam:CreateUser",
    "iam:PutUserPolicy",
    "iam:AttachUserPolicy",
    "iam:PutUserPermissionsBoundary",
    "iam:DeleteUserPermissionsBoundary",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AddUserToGroup",
    "iam:PutGroupPolicy",
    "iam:AttachGroupPolicy",
    "iam:CreateServiceLinkedRole",
    "sts:AssumeRoleWithWebIdentity",
];

/// The services a role of the templates may pass roles to: Lambda (the function roles) and CodeDeploy (only
/// the CodeDeploy role, see `escalation_problems`).
const PASS_TO: &[&str] = &["lambda.amazonaws.com", "codedeploy.amazonaws.com"];

fn condition_values(condition: &Value, operator: &str, key: &str) -> Vec<String> {
    match &condition[operator][key] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every way `role` could create or widen a role without `boundary`, or act outside the rules.
fn escalation_problems(role: &Role, boundary: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let id = &role.logical_id;
    // A managed policy is attached as it is: nothing in the template shows what it allows, so no check here
    // could bound it (AdministratorAccess would pass every inline-statement rule).
    for m in &role.managed_policies {
        problems.push(format!(
            "{id}: attaches the managed policy {m} (ManagedPolicyArns); grant inline statements instead, which these checks read"
        ));
    }
    for s in role.statements.iter().filter(|s| s.allow) {
        let grants = |action: &str| s.actions.iter().any(|a| glob(a, action, true));
        for a in &s.actions {
            if a.contains('*') {
                problems.push(format!(
                    "{id}: wildcard action {a} (could run code with, or create, any role)"
                ));
            }
        }
        for w in WIDENING.iter().filter(|w| grants(w)) {
            let b = condition_values(&s.condition, "StringEquals", "iam:PermissionsBoundary");
            if b != [boundary] {
                problems.push(format!(
                    "{id}: {w} without the condition StringEquals iam:PermissionsBoundary = {boundary} (got {:?})",
                    s.condition
                ));
            }
        }
        for f in FORBIDDEN.iter().filter(|f| grants(f)) {
            problems.push(format!("{id}: grants {f}"));
        }
        if grants("iam:PassRole") {
            let to = condition_values(&s.condition, "StringEquals", "iam:PassedToService");
            if to.is_empty() || to.iter().any(|t| !PASS_TO.contains(&t.as_str())) {
                problems.push(format!(
                    "{id}: iam:PassRole not limited by StringEquals iam:PassedToService to {PASS_TO:?} (got {:?})",
                    s.condition
                ));
            }
            // CodeDeploy may be handed exactly one role, the one whose trust and policy the stack defines for it.
            if to.iter().any(|t| t == "codedeploy.amazonaws.com")
                && (to.len() != 1 || s.resources.iter().any(|r| !r.ends_with("-codedeploy")))
            {
                problems.push(format!(
                    "{id}: iam:PassRole to CodeDeploy must name only the stack's CodeDeploy role (got {:?} for {:?})",
                    s.resources, to
                ));
            }
        }
    }
    problems
}

fn boundary_arn(plan: &Plan) -> String {
    format!(
        "arn:aws:iam::{}:policy/{}",
        iam::account(plan),
        stack::permissions_boundary_name(&plan.stack_name)
    )
}

#[test]
fn no_role_of_any_template_can_create_or_widen_a_role_without_the_boundary() {
    for e in environments() {
        let boundary = boundary_arn(&e.plan);
        let account = iam::account(&e.plan);
        // The deploy roles of the bootstrap and the function roles of the stack.
        let mut roles: Vec<Role> = iam::roles(&e.oidc, &account)
            .into_values()
            .filter(|r| r.role_name.as_deref() == e.role.role_name.as_deref())
            .collect();
        roles.extend(iam::roles(&e.template, &account).into_values());
        let problems: Vec<String> = roles
            .iter()
            .flat_map(|r| escalation_problems(r, &boundary))
            .collect();
        assert!(
            problems.is_empty(),
            "{}: {}",
            e.plan.env,
            problems.join("\n")
        );
        // The deploy role does create roles, so the check above is not vacuous.
        assert!(e.role.allows_action("iam:CreateRole") && e.role.allows_action("iam:PassRole"));
    }
}

#[test]
fn the_escalation_check_fails_on_a_removed_condition_a_wildcard_a_boundary_removal_and_a_managed_policy()
 {
    for e in environments() {
        let env = &e.plan.env;
        let boundary = boundary_arn(&e.plan);
        let p = escalation_problems(
            &unconditioned(&e.role, "FunctionRolesOnlyWithBoundary"),
            &boundary,
        );
        assert!(
            p.iter()
                .any(|p| p.contains("iam:CreateRole without the condition")),
            "{env}: {p:?}"
        );
        let mut other_boundary = e.role.clone();
        for s in &mut other_boundary.statements {
            if s.sid.as_deref() == Some("FunctionRolesOnlyWithBoundary") {
                s.condition = json!({"StringEquals": {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}});
            }
        }
        assert!(
            !escalation_problems(&other_boundary, &boundary).is_empty(),
            "{env}"
        );
        let p = escalation_problems(
            &unconditioned(&e.role, "PassFunctionRolesToLambdaOnly"),
            &boundary,
        );
        assert!(
            p.iter().any(|p| p.contains("iam:PassRole not limited")),
            "{env}: {p:?}"
        );
        let p = escalation_problems(&with(&e.role, "lambda:*"), &boundary);
        assert!(
            p.iter().any(|p| p.contains("wildcard action lambda:*")),
            "{env}: {p:?}"
        );
        let p = escalation_problems(
            &with(&e.role, "iam:DeleteRolePermissionsBoundary"),
            &boundary,
        );
        assert!(
            p.iter()
                .any(|p| p.contains("grants iam:DeleteRolePermissionsBoundary")),
            "{env}: {p:?}"
        );
        // A managed policy added to a function role of the stack template, as a template edit would.
        let mut template = e.template.clone();
        template["Resources"]["CommandRole"]["Properties"]["ManagedPolicyArns"] =
            json!(["arn:aws:iam::aws:policy/AdministratorAccess"]);
        let command = iam::roles(&template, &iam::account(&e.plan))
            .remove("CommandRole")
            .unwrap();
        let p = escalation_problems(&command, &boundary);
        assert!(
            p.iter().any(|p| p.contains(
                "CommandRole: attaches the managed policy arn:aws:iam::aws:policy/AdministratorAccess"
            )),
            "{env}: {p:?}"
        );
    }
}

/// The ARN of a symbolic resource of the stack template (`EventsTable`, `EventsTable.StreamArn`,
/// `EventsTable/index/I`, `ViewsTable`, `ProjectorDeadLetterQueue`, `CommandLogGroup`) in one environment.
fn concrete(plan: &Plan, symbolic: &str) -> String {
    let (region, account) = (&plan.region, iam::account(plan));
    let table = |logical: &str| match logical {
        "EventsTable" => plan.events_table.table_name.clone(),
        "ProjectionsTable" => plan.projections_table.table_name.clone(),
        "ViewsTable" => plan
            .views_table
            .as_ref()
            .map(|t| t.table_name.clone())
            .unwrap_or_else(|| panic!("a grant names ViewsTable but the plan has no views table")),
        other => panic!("unknown table {other}"),
    };
    if let Some((t, rest)) = symbolic.split_once('/') {
        return format!(
            "arn:aws:dynamodb:{region}:{account}:table/{}/{rest}",
            table(t)
        );
    }
    if let Some(t) = symbolic.strip_suffix(".StreamArn") {
        return format!(
            "arn:aws:dynamodb:{region}:{account}:table/{}/stream/2026-01-01T00:00:00.000",
            table(t)
        );
    }
    if symbolic.ends_with("Table") {
        return format!(
            "arn:aws:dynamodb:{region}:{account}:table/{}",
            table(symbolic)
        );
    }
    if symbolic == "ProjectorDeadLetterQueue" {
        return format!(
            "arn:aws:sqs:{region}:{account}:{}-projector-dlq",
            plan.stack_name
        );
    }
    if let Some(prefix) = symbolic.strip_suffix("LogGroup") {
        let f = plan
            .functions
            .iter()
            .find(|f| f.name.logical_prefix() == prefix)
            .unwrap_or_else(|| panic!("no function for {symbolic}"));
        return format!(
            "arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{}:*",
            f.function_name
        );
    }
    // `${CommandFunction.Arn}:live` (resolved as `CommandFunction:live`): the function's alias.
    if let Some((logical, qualifier)) = symbolic.split_once(':')
        && let Some(prefix) = logical.strip_suffix("Function")
    {
        let f = plan
            .functions
            .iter()
            .find(|f| f.name.logical_prefix() == prefix)
            .unwrap_or_else(|| panic!("no function for {symbolic}"));
        return format!(
            "arn:aws:lambda:{region}:{account}:function:{}:{qualifier}",
            f.function_name
        );
    }
    // The deployment alarms get generated names: `<stack>-<logical id>-<suffix>`.
    if let Some(logical) = symbolic
        .strip_suffix(".Arn")
        .or(Some(symbolic))
        .filter(|l| l.ends_with("Alarm"))
    {
        return format!(
            "arn:aws:cloudwatch:{region}:{account}:alarm:{}-{logical}-1A2B3C4D5E6F",
            plan.stack_name
        );
    }
    panic!("no ARN for {symbolic}")
}

#[test]
fn every_function_role_carries_the_boundary_and_stays_inside_it() {
    for e in environments() {
        let boundary = boundary_arn(&e.plan);
        let account = iam::account(&e.plan);
        let policy = e.oidc["Resources"]
            .as_object()
            .unwrap()
            .values()
            .find(|r| {
                r["Type"] == "AWS::IAM::ManagedPolicy"
                    && r["Properties"]["ManagedPolicyName"]
                        == stack::permissions_boundary_name(&e.plan.stack_name)
            })
            .unwrap_or_else(|| panic!("{}: the bootstrap has no boundary policy", e.plan.env));
        let cap = Role {
            logical_id: "boundary".into(),
            role_name: None,
            path: None,
            statements: iam::statements(&policy["Properties"]["PolicyDocument"], &account),
            boundary: None,
            managed_policies: Vec::new(),
        };
        assert!(
            cap.statements
                .iter()
                .all(|s| s.actions.iter().all(|a| !a.contains('*'))
                    && s.actions
                        .iter()
                        .all(|a| !a.starts_with("iam:") && !a.starts_with("sts:"))),
            "{}: the boundary must name data actions only",
            e.plan.env
        );
        // The function roles and CodeDeploy's (rendered as a canary would: the boundary is bootstrapped once).
        let functions = iam::roles(&iam::stack_template_with_every_role(&e.plan), &account);
        assert_eq!(functions.len(), 4, "{}", e.plan.env);
        // Every boundary grant is one some function role makes (the boundary is no wider than the code).
        let mut used: BTreeSet<String> = BTreeSet::new();
        for role in functions.values() {
            assert_eq!(
                role.boundary.as_deref(),
                Some(boundary.as_str()),
                "{}: {}",
                e.plan.env,
                role.logical_id
            );
            // Named and pathed explicitly, under the path the deploy role's IAM grants are scoped to.
            assert_eq!(
                role.path.as_deref(),
                Some(stack::function_role_path(&e.plan.stack_name).as_str()),
                "{}: {}",
                e.plan.env,
                role.logical_id
            );
            assert!(
                role.role_name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(&format!("{}-", e.plan.stack_name))),
                "{}: {} has no explicit RoleName",
                e.plan.env,
                role.logical_id
            );
            used.extend(role.actions().iter().map(|a| a.to_ascii_lowercase()));
            for s in role.statements.iter().filter(|s| s.allow) {
                for a in &s.actions {
                    for r in &s.resources {
                        let arn = concrete(&e.plan, r);
                        assert!(
                            cap.allows(a, &arn),
                            "{}: {} grants {a} on {arn}, which its boundary does not allow: widen the boundary in templates/oidc-roles.yaml.hbs (and re-run the bootstrap) or drop the grant",
                            e.plan.env,
                            role.logical_id
                        );
                    }
                }
            }
        }
        for a in cap.actions() {
            assert!(
                used.contains(&a.to_ascii_lowercase()),
                "{}: the boundary allows {a}, which no function role grants: trim it in templates/oidc-roles.yaml.hbs (and re-run the bootstrap)",
                e.plan.env
            );
        }
    }
}
