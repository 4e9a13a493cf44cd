//! The deploy role's IAM contract, proven from authoritative sources for every `aws` environment:
//!
//! - it grants every permission CloudFormation's resource handlers list (`handlers.{create,read,update,
//!   delete}.permissions` of the resource provider schemas) for every resource type of the stack template,
//!   except the short [`EXCLUDED`] list, each line with its reason;
//! - it grants every AWS operation the tool itself makes (`deployer::permissions::CALLS`) on the resource
//!   the call targets, and a tidy scan proves that table lists every SDK call in `xtask/deployer/src`;
//! - it grants nothing else, and no wildcard action;
//! - no role in any rendered template can create or widen a role without the permissions boundary, pass a
//!   role to anything but Lambda, or remove the boundary; every function role carries the boundary, and the
//!   boundary covers what the function roles grant.
//!
//! Each checker is also run on a seeded mistake (one action dropped, one unused action added, a condition
//! removed) and must then fail, so a pass means something. Moto enforces no IAM, which is why this is read
//! from the policies rather than observed.

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
        "no customer-managed KMS key: tables use the AWS-owned key, the queue SQS-managed SSE, log groups no KmsKeyId",
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
];

/// Resource types whose schema declares no handlers (legacy providers), and what covers them instead.
const NO_HANDLERS: &[(&str, &str)] = &[(
    "AWS::ApiGatewayV2::Stage",
    "API Gateway authorizes it by HTTP verb on /apis/* (granted for the API's own types) plus ACCESS_LOG_DELIVERY",
)];

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

const HANDLERS: [&str; 4] = ["create", "read", "update", "delete"];

fn resource_types(template: &Value) -> BTreeSet<String> {
    template["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|r| r["Type"].as_str().map(str::to_string))
        .collect()
}

type Schemas = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn schemas(types: &BTreeSet<String>) -> Schemas {
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    tests::tools::cfn_handler_permissions(&types)
}

fn excluded(resource_type: &str, action: &str) -> bool {
    EXCLUDED
        .iter()
        .any(|(t, a, _)| glob(t, resource_type, false) && glob(a, action, true))
}

/// The handler permissions of `types`, minus the exclusions: action (lowercase) -> the types needing it.
fn required(types: &BTreeSet<String>, schemas: &Schemas) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
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
                        .insert(format!("{t} {h}"));
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
) -> Vec<String> {
    let mut problems = Vec::new();
    let required = required(types, schemas);
    for (action, needed_by) in &required {
        if !role.allows_action(action) {
            problems.push(format!(
                "{}: missing {action}, needed by the {} handler(s)",
                plan.env,
                needed_by.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
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
    if types.contains("AWS::ApiGatewayV2::Stage") {
        tool.extend(ACCESS_LOG_DELIVERY.iter().map(|a| {
            (
                *a,
                Target::Any,
                "stage access logs (ACCESS_LOG_DELIVERY)".to_string(),
            )
        }));
    }
    for (action, target, why) in &tool {
        for arn in target.arns(plan, &account, &bucket) {
            if !role.allows(action, &arn) {
                problems.push(format!(
                    "{}: missing {action} on {arn}, needed by {why}",
                    plan.env
                ));
            }
        }
    }
    let needed: BTreeSet<String> = required
        .keys()
        .cloned()
        .chain(tool.iter().map(|(a, _, _)| a.to_ascii_lowercase()))
        .collect();
    for action in role.actions() {
        if action.contains('*') || action.contains('?') {
            problems.push(format!(
                "{}: grants the wildcard action {action}; list the actions the handlers and the tool need",
                plan.env
            ));
        } else if !needed.contains(&action.to_ascii_lowercase()) {
            problems.push(format!(
                "{}: grants {action}, which no resource handler of the stack and no call of the tool needs",
                plan.env
            ));
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

#[test]
fn every_deploy_role_grants_exactly_the_handler_permissions_and_the_tools_calls() {
    let envs = environments();
    let types = all_types(&envs);
    let schemas = schemas(&types);
    let problems: Vec<String> = envs
        .iter()
        .flat_map(|e| deploy_role_problems(&e.plan, &e.role, &types, &schemas))
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
        ] {
            assert!(e.role.allows_action(action), "{}: {action}", e.plan.env);
        }
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

#[test]
fn the_deploy_role_contract_fails_on_a_dropped_a_misplaced_and_an_unused_action() {
    let envs = environments();
    let types = all_types(&envs);
    let schemas = schemas(&types);
    let e = &envs[0];
    let check = |role: &Role| deploy_role_problems(&e.plan, role, &types, &schemas);
    assert!(check(&e.role).is_empty());

    // A handler permission dropped (what broke prod's first rollback).
    let p = check(&without(&e.role, "iam:ListRolePolicies"));
    assert!(
        p.iter()
            .any(|p| p.contains("missing iam:listrolepolicies") && p.contains("AWS::IAM::Role")),
        "{p:?}"
    );
    // A tool call dropped (what broke the first deploy).
    let p = check(&without(&e.role, "cloudformation:DescribeStackResource"));
    assert!(
        p.iter()
            .any(|p| p.contains("cloudformation:DescribeStackResource on arn:aws:cloudformation:")),
        "{p:?}"
    );
    // A tool call granted on the wrong resource: only the bucket, not its objects.
    let mut misplaced = e.role.clone();
    for s in &mut misplaced.statements {
        if s.sid.as_deref() == Some("ArtifactObjects") {
            s.resources = vec![format!("arn:aws:s3:::{}", iam::bucket(&e.plan))];
        }
    }
    let p = check(&misplaced);
    assert!(
        p.iter()
            .any(|p| p.contains("missing s3:PutObject on arn:aws:s3:::")),
        "{p:?}"
    );
    // An action nobody needs, and a wildcard.
    let p = check(&with(&e.role, "dynamodb:DeleteItem"));
    assert!(
        p.iter()
            .any(|p| p.contains("grants dynamodb:DeleteItem, which no")),
        "{p:?}"
    );
    let p = check(&with(&e.role, "lambda:*"));
    assert!(
        p.iter().any(|p| p.contains("wildcard action lambda:*")),
        "{p:?}"
    );
}

#[test]
fn every_resource_type_of_the_stack_has_handler_permissions_or_a_reason() {
    let envs = environments();
    let types = all_types(&envs);
    let schemas = schemas(&types);
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

/// The services a role of the templates may pass roles to.
const PASS_TO: &[&str] = &["lambda.amazonaws.com"];

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
fn the_escalation_check_fails_on_a_removed_condition_a_wildcard_and_a_boundary_removal() {
    let e = environments().remove(0);
    let boundary = boundary_arn(&e.plan);
    let mut no_condition = e.role.clone();
    for s in &mut no_condition.statements {
        if s.sid.as_deref() == Some("FunctionRolesOnlyWithBoundary") {
            s.condition = Value::Null;
        }
    }
    let p = escalation_problems(&no_condition, &boundary);
    assert!(
        p.iter()
            .any(|p| p.contains("iam:CreateRole without the condition")),
        "{p:?}"
    );
    let mut other_boundary = e.role.clone();
    for s in &mut other_boundary.statements {
        if s.sid.as_deref() == Some("FunctionRolesOnlyWithBoundary") {
            s.condition = json!({"StringEquals": {"iam:PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}});
        }
    }
    assert!(!escalation_problems(&other_boundary, &boundary).is_empty());
    let mut pass_anywhere = e.role.clone();
    for s in &mut pass_anywhere.statements {
        if s.actions.iter().any(|a| a == "iam:PassRole") {
            s.condition = Value::Null;
        }
    }
    let p = escalation_problems(&pass_anywhere, &boundary);
    assert!(
        p.iter().any(|p| p.contains("iam:PassRole not limited")),
        "{p:?}"
    );
    let p = escalation_problems(&with(&e.role, "lambda:*"), &boundary);
    assert!(
        p.iter().any(|p| p.contains("wildcard action lambda:*")),
        "{p:?}"
    );
    let p = escalation_problems(
        &with(&e.role, "iam:DeleteRolePermissionsBoundary"),
        &boundary,
    );
    assert!(
        p.iter()
            .any(|p| p.contains("grants iam:DeleteRolePermissionsBoundary")),
        "{p:?}"
    );
}

/// The ARN of a symbolic resource of the stack template (`EventsTable`, `EventsTable.StreamArn`,
/// `EventsTable/index/I`, `ProjectorDeadLetterQueue`, `CommandLogGroup`) in one environment.
fn concrete(plan: &Plan, symbolic: &str) -> String {
    let (region, account) = (&plan.region, iam::account(plan));
    let table = |logical: &str| match logical {
        "EventsTable" => plan.events_table.table_name.clone(),
        "ProjectionsTable" => plan.projections_table.table_name.clone(),
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
            statements: iam::statements(&policy["Properties"]["PolicyDocument"], &account),
            boundary: None,
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
        let functions = iam::roles(&e.template, &account);
        assert_eq!(functions.len(), 3, "{}", e.plan.env);
        for role in functions.values() {
            assert_eq!(
                role.boundary.as_deref(),
                Some(boundary.as_str()),
                "{}: {}",
                e.plan.env,
                role.logical_id
            );
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
    }
}
