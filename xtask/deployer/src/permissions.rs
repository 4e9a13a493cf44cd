//! Every AWS operation the tool itself makes, in one table: the SDK call, the IAM action it needs and the
//! resource it targets.
//!
//! Why it exists: moto enforces no IAM, so a call added without its permission passes every local test and
//! fails on the first real deploy (that is how `DescribeStackResource` shipped with only
//! `DescribeStackResources` granted). The table is the single declaration the deploy role in
//! `templates/oidc-roles.yaml.hbs` is checked against (`tests/tests/iam_contract.rs`), and a tidy test scans
//! this crate's sources for SDK calls and fails on any call the table does not list. The deploy role's
//! statements for these calls are generated from it ([`deploy_role_statements`], rendered by `stack::oidc`),
//! one statement per target: a call added here is granted by the next bootstrap, and nothing else is.
//!
//! Every call is made by the environment's deploy role (`role_arn`, assumed by CI; or a person's own
//! credentials, which need the same grants). Promotion reads the source's bucket as the source's deploy role,
//! which the table covers as that role's own [`Target::ArtifactObjects`].

use stack::Plan;
use stack::oidc::{Condition, Statement};

/// What a call targets; [`Target::arns`] renders it for one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No resource-level permission exists for the action, nor a region to scope it to (`*`).
    Any,
    /// No resource-level permission exists for the action: `*`, in the stack's region only
    /// (`aws:RequestedRegion`).
    Regional,
    /// The environment's stack (and its change sets, which IAM scopes by stack).
    Stack,
    /// The artifact bucket, created: the account's grant holds only while the bucket is the account's
    /// (`s3:ResourceAccount`), since its name is predictable and anyone could take it after a teardown.
    ArtifactBucket,
    /// The artifact bucket before it exists (`s3:CreateBucket`): no owner condition can hold yet.
    NewArtifactBucket,
    /// The objects in the artifact bucket (while the bucket is the account's, as [`Target::ArtifactBucket`]).
    ArtifactObjects,
    /// The stack's DynamoDB tables.
    Tables,
    /// The stack's Lambda functions.
    Functions,
    /// The HTTP APIs of the region (API Gateway ids are random, so IAM cannot scope them by stack name).
    HttpApis,
    /// The stack's Lambda log groups.
    FunctionLogGroups,
    /// Every log group of the stack: the functions' and the API's access log.
    LogGroups,
    /// The stack's dead-letter queue.
    Queue,
    /// The deploy role itself (the tool assumes `role_arn`).
    DeployRole,
    /// The deploy role of the environment this one promotes from (`deploy.promote_from`): promotion reads the
    /// source release as that role. Its ARN is the source plan's, so [`Target::arns`] of one plan has none.
    PromoteSourceRole,
}

/// One AWS operation of the tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The SDK fluent method (`describe_stack_resource`), waiter (`wait_until_table_not_exists`) or credential
    /// provider (`AssumeRoleProvider`) the code calls; one call may need several actions (one row each).
    pub sdk: &'static str,
    /// The IAM action (`cloudformation:DescribeStackResource`).
    pub action: &'static str,
    pub target: Target,
    /// Which command makes the call, for people reading a denied permission.
    pub used_by: &'static str,
}

const fn call(
    sdk: &'static str,
    action: &'static str,
    target: Target,
    used_by: &'static str,
) -> Call {
    Call {
        sdk,
        action,
        target,
        used_by,
    }
}

use Target::*;

/// Every operation of the tool. Keep it sorted by service; the tidy test in `tests/tests/iam_contract.rs`
/// fails when a call in `xtask/deployer/src` is missing here.
#[rustfmt::skip]
pub const CALLS: &[Call] = &[
    // Credentials.
    call("get_caller_identity", "sts:GetCallerIdentity", Any, "every command (account check)"),
    call("AssumeRoleProvider", "sts:AssumeRole", DeployRole, "every command (assumes role_arn)"),
    call("AssumeRoleProvider", "sts:AssumeRole", PromoteSourceRole, "promote (reads the source release as its role)"),
    // CloudFormation.
    call("describe_stacks", "cloudformation:DescribeStacks", Stack, "deploy, status, teardown, hotswap"),
    call("get_template", "cloudformation:GetTemplate", Stack, "deploy (no-op detection), hotswap"),
    call("create_change_set", "cloudformation:CreateChangeSet", Stack, "deploy, promote"),
    call("describe_change_set", "cloudformation:DescribeChangeSet", Stack, "deploy, promote"),
    call("execute_change_set", "cloudformation:ExecuteChangeSet", Stack, "deploy, promote"),
    call("delete_change_set", "cloudformation:DeleteChangeSet", Stack, "deploy (no changes, refused)"),
    call("describe_stack_events", "cloudformation:DescribeStackEvents", Stack, "deploy, teardown (progress)"),
    call("describe_stack_resource", "cloudformation:DescribeStackResource", Stack, "deploy, status (reads the API back)"),
    call("create_stack", "cloudformation:CreateStack", Stack, "deploy (first create)"),
    call("update_stack", "cloudformation:UpdateStack", Stack, "deploy"),
    call("delete_stack", "cloudformation:DeleteStack", Stack, "teardown, deploy (failed first create)"),
    call("update_termination_protection", "cloudformation:UpdateTerminationProtection", Stack, "deploy (a protected environment's stack)"),
    // Drift detection checks each resource with the caller's own read permissions (the handlers' read
    // permissions the role holds), and needs DetectStackResourceDrift and BatchDescribeTypeConfigurations too.
    call("detect_stack_drift", "cloudformation:DetectStackDrift", Stack, "drift"),
    call("detect_stack_drift", "cloudformation:DetectStackResourceDrift", Stack, "drift"),
    call("detect_stack_drift", "cloudformation:BatchDescribeTypeConfigurations", Regional, "drift"),
    call("describe_stack_drift_detection_status", "cloudformation:DescribeStackDriftDetectionStatus", Regional, "drift"),
    call("describe_stack_resource_drifts", "cloudformation:DescribeStackResourceDrifts", Stack, "drift"),
    // S3: the artifact bucket.
    call("head_bucket", "s3:ListBucket", ArtifactBucket, "deploy, teardown"),
    call("create_bucket", "s3:CreateBucket", NewArtifactBucket, "deploy (first)"),
    call("put_bucket_tagging", "s3:PutBucketTagging", ArtifactBucket, "deploy (first)"),
    call("put_bucket_versioning", "s3:PutBucketVersioning", ArtifactBucket, "deploy"),
    call("put_bucket_encryption", "s3:PutEncryptionConfiguration", ArtifactBucket, "deploy"),
    call("put_public_access_block", "s3:PutBucketPublicAccessBlock", ArtifactBucket, "deploy"),
    call("put_bucket_lifecycle_configuration", "s3:PutLifecycleConfiguration", ArtifactBucket, "deploy"),
    call("get_bucket_tagging", "s3:GetBucketTagging", ArtifactBucket, "teardown (is the bucket ours)"),
    call("list_object_versions", "s3:ListBucketVersions", ArtifactBucket, "teardown"),
    call("delete_bucket", "s3:DeleteBucket", ArtifactBucket, "teardown"),
    call("head_object", "s3:GetObject", ArtifactObjects, "deploy, promote"),
    call("get_object", "s3:GetObject", ArtifactObjects, "promote, hotswap, status"),
    call("put_object", "s3:PutObject", ArtifactObjects, "deploy, promote, smoke, hotswap"),
    call("delete_object", "s3:DeleteObject", ArtifactObjects, "deploy (clears hotswap drift)"),
    call("delete_objects", "s3:DeleteObject", ArtifactObjects, "teardown"),
    call("delete_objects", "s3:DeleteObjectVersion", ArtifactObjects, "teardown"),
    // DynamoDB: retained tables, replay.
    call("describe_table", "dynamodb:DescribeTable", Tables, "deploy (retained tables), teardown"),
    call("delete_table", "dynamodb:DeleteTable", Tables, "teardown --delete-data"),
    call("wait_until_table_not_exists", "dynamodb:DescribeTable", Tables, "teardown --delete-data"),
    call("scan", "dynamodb:Scan", Tables, "replay (lists aggregates)"),
    // Lambda.
    call("get_function_configuration", "lambda:GetFunctionConfiguration", Functions, "promote, deploy (CodeSha256)"),
    call("update_function_code", "lambda:UpdateFunctionCode", Functions, "hotswap"),
    call("wait_until_function_updated_v2", "lambda:GetFunction", Functions, "hotswap"),
    call("publish_version", "lambda:PublishVersion", Functions, "hotswap (the live alias follows the new code)"),
    call("update_alias", "lambda:UpdateAlias", Functions, "hotswap, rollback"),
    call("get_alias", "lambda:GetAlias", Functions, "deploy, promote, hotswap, rollback, status (the live versions)"),
    // API Gateway v2 (read back after deploy). IAM names API Gateway actions by HTTP verb.
    call("get_api", "apigateway:GET", HttpApis, "deploy, status"),
    call("get_stages", "apigateway:GET", HttpApis, "deploy, status"),
    call("get_routes", "apigateway:GET", HttpApis, "deploy, status"),
    // CloudWatch Logs.
    call("filter_log_events", "logs:FilterLogEvents", FunctionLogGroups, "logs"),
    call("describe_log_groups", "logs:DescribeLogGroups", Regional, "deploy (retained log groups)"),
    call("delete_log_group", "logs:DeleteLogGroup", LogGroups, "teardown --delete-data (retained log groups)"),
    // SQS.
    call("get_queue_url", "sqs:GetQueueUrl", Queue, "deploy, teardown --delete-data (retained dead-letter queue)"),
    call("delete_queue", "sqs:DeleteQueue", Queue, "teardown --delete-data (retained dead-letter queue)"),
];

/// What replay does through `service::DynamoStore` (the projector's own store code, so no SDK call of this crate
/// shows it): read an aggregate's events, read and conditionally write its read model. The function-role
/// contract test records the store's real operations and checks the deploy role covers them.
pub const REPLAY_STORE_ACTIONS: &[&str] =
    &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"];

impl Target {
    /// The ARNs this target covers in one environment (`bucket` is the artifact bucket's name), from the plan's
    /// [`stack::Arns`]: every name is the template's, every partition the region's.
    pub fn arns(self, plan: &Plan, account: &str, bucket: &str) -> Vec<String> {
        let arns = plan.arns(account);
        match self {
            Any | Regional => vec!["*".into()],
            Stack => vec![arns.stack()],
            ArtifactBucket | NewArtifactBucket => vec![arns.bucket(bucket)],
            ArtifactObjects => vec![arns.bucket_objects(bucket)],
            Tables => arns.tables(),
            Functions => arns.functions(),
            HttpApis => vec![arns.http_apis()],
            FunctionLogGroups => arns.function_log_groups(),
            LogGroups => {
                let mut all = arns.function_log_groups();
                all.push(arns.access_log_group());
                all
            }
            Queue => vec![arns.dlq()],
            DeployRole => plan.role_arn.iter().cloned().collect(),
            PromoteSourceRole => Vec::new(),
        }
    }

    /// The resources the deploy role's statement for this target names: the ARNs of [`Target::arns`] or the
    /// patterns of the stack's naming rules that cover them (a table's indexes, a function's versions and
    /// aliases, every log stream of a log group), with the region's partition. `source_role` is the promotion
    /// source's `role_arn`.
    pub fn policy_resources(
        self,
        plan: &Plan,
        account: &str,
        bucket: &str,
        source_role: Option<&str>,
    ) -> Vec<String> {
        let arns = plan.arns(account);
        match self {
            Tables => vec![arns.tables_pattern()],
            Functions => vec![arns.functions_pattern()],
            FunctionLogGroups => vec![arns.function_log_groups_pattern()],
            LogGroups => vec![
                arns.function_log_groups_pattern(),
                arns.access_log_group_pattern(),
            ],
            PromoteSourceRole => source_role.iter().map(|r| r.to_string()).collect(),
            other => other.arns(plan, account, bucket),
        }
    }

    /// The condition the deploy role's statement for this target carries, if any.
    pub fn condition(self, plan: &Plan, account: &str) -> Option<Condition> {
        let condition = |key: &str, value: &str| Condition {
            operator: "StringEquals".into(),
            key: key.into(),
            value: value.into(),
        };
        match self {
            ArtifactBucket | ArtifactObjects => Some(condition("s3:ResourceAccount", account)),
            Regional => Some(condition("aws:RequestedRegion", &plan.region)),
            _ => None,
        }
    }
}

/// The deploy role's statements for the tool's own calls: for each [`Target`] of [`CALLS`] (in the table's
/// order), one statement `Tool<Target>` with exactly the actions of its calls (replay's store actions
/// [`REPLAY_STORE_ACTIONS`] on the tables), sorted, on [`Target::policy_resources`] under
/// [`Target::condition`]. A target without resources (no promotion source) gets no statement.
pub fn deploy_role_statements(
    plan: &Plan,
    account: &str,
    bucket: &str,
    source_role: Option<&str>,
) -> Vec<Statement> {
    let mut grouped: Vec<(Target, Vec<&str>)> = Vec::new();
    let rows = CALLS
        .iter()
        .map(|c| (c.target, c.action))
        .chain(REPLAY_STORE_ACTIONS.iter().map(|a| (Tables, *a)));
    for (target, action) in rows {
        match grouped.iter_mut().find(|(t, _)| *t == target) {
            Some((_, actions)) => actions.push(action),
            None => grouped.push((target, vec![action])),
        }
    }
    grouped
        .into_iter()
        .filter_map(|(target, mut actions)| {
            let resources = target.policy_resources(plan, account, bucket, source_role);
            if resources.is_empty() {
                return None;
            }
            actions.sort_unstable();
            actions.dedup();
            Some(Statement {
                sid: format!("Tool{target:?}"),
                actions: actions.into_iter().map(str::to_string).collect(),
                resources,
                condition: target.condition(plan, account),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(region: &str) -> Plan {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut plan = stack::config::load(&dir, "dev").expect("config/dev.yaml loads");
        plan.region = region.into();
        plan
    }

    /// Whether the generated statement of `target` grants `action` (CALLS or replay's store actions).
    fn declared(target: Target, action: &str) -> bool {
        CALLS
            .iter()
            .any(|c| c.target == target && c.action == action)
            || (target == Tables && REPLAY_STORE_ACTIONS.contains(&action))
    }

    #[test]
    fn the_generated_statements_grant_every_call_on_its_target_and_nothing_else() {
        let plan = plan("eu-west-1");
        let (account, bucket) = ("111111111111", "cqrs-dev-artifacts-111111111111");
        let source = "arn:aws:iam::111111111111:role/cqrs-source-deploy";
        let statements = deploy_role_statements(&plan, account, bucket, Some(source));
        let of = |t: Target| {
            statements
                .iter()
                .find(|s| s.sid == format!("Tool{t:?}"))
                .unwrap_or_else(|| panic!("no statement for {t:?}"))
        };
        for c in CALLS {
            let s = of(c.target);
            assert!(s.actions.iter().any(|a| a == c.action), "{c:?}");
            assert_eq!(
                s.resources,
                c.target
                    .policy_resources(&plan, account, bucket, Some(source))
            );
            assert_eq!(s.condition, c.target.condition(&plan, account));
        }
        for a in REPLAY_STORE_ACTIONS {
            assert!(of(Tables).actions.iter().any(|x| x == a), "{a}");
        }
        let targets: Vec<String> = statements.iter().map(|s| s.sid.clone()).collect();
        for s in &statements {
            let target = CALLS
                .iter()
                .map(|c| c.target)
                .find(|t| format!("Tool{t:?}") == s.sid)
                .unwrap_or_else(|| panic!("{} belongs to no target of CALLS", s.sid));
            for a in &s.actions {
                assert!(
                    declared(target, a),
                    "{} grants {a}, which no call declares",
                    s.sid
                );
            }
            let mut sorted = s.actions.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(s.actions, sorted, "{}: sorted, once each", s.sid);
        }
        let mut unique = targets.clone();
        unique.dedup();
        assert_eq!(unique, targets, "one statement per target");
        // The tightness that held when the role was written by hand.
        assert_eq!(of(PromoteSourceRole).resources, [source]);
        assert_eq!(
            of(DeployRole).resources,
            plan.role_arn.iter().cloned().collect::<Vec<_>>()
        );
        assert_eq!(
            of(Stack).resources,
            [format!(
                "arn:aws:cloudformation:eu-west-1:{account}:stack/{}/*",
                plan.stack_name
            )]
        );
        for t in [ArtifactBucket, ArtifactObjects] {
            let c = of(t).condition.clone().expect("owner condition");
            assert_eq!(
                (c.key.as_str(), c.value.as_str()),
                ("s3:ResourceAccount", account)
            );
        }
        assert_eq!(of(NewArtifactBucket).actions, ["s3:CreateBucket"]);
        let regional = of(Regional).condition.clone().expect("region condition");
        assert_eq!(
            (regional.key.as_str(), regional.value.as_str()),
            ("aws:RequestedRegion", "eu-west-1")
        );
        assert_eq!(of(Any).actions, ["sts:GetCallerIdentity"]);
        // Without a promotion source, no source role is granted.
        assert!(
            deploy_role_statements(&plan, account, bucket, None)
                .iter()
                .all(|s| s.sid != "ToolPromoteSourceRole")
        );
    }

    #[test]
    fn every_generated_arn_is_in_the_regions_partition() {
        for (region, partition) in [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
        ] {
            let plan = plan(region);
            for s in deploy_role_statements(&plan, "111111111111", "b", None) {
                for r in s.resources.iter().filter(|r| *r != "*") {
                    // The deploy role's own ARN is the config's, as given.
                    if s.sid == "ToolDeployRole" {
                        continue;
                    }
                    assert!(r.starts_with(&format!("arn:{partition}:")), "{region}: {r}");
                }
            }
        }
    }
}
