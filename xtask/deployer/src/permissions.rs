//! Every AWS operation the tool itself makes, in one table: the SDK call, the IAM action it needs and the
//! resource it targets.
//!
//! Why it exists: moto enforces no IAM, so a call added without its permission passes every local test and
//! fails on the first real deploy (that is how `DescribeStackResource` shipped with only
//! `DescribeStackResources` granted). The table is the single declaration the deploy role in
//! `templates/oidc-roles.yaml.hbs` is checked against (`tests/tests/iam_contract.rs`), and a tidy test scans
//! this crate's sources for SDK calls and fails on any call the table does not list.
//!
//! Every call is made by the environment's deploy role (`role_arn`, assumed by CI; or a person's own
//! credentials, which need the same grants). Promotion reads the source's bucket as the source's deploy role,
//! which the table covers as that role's own [`Target::ArtifactObjects`].

use stack::Plan;

/// What a call targets; [`Target::arns`] renders it for one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No resource-level permission exists for the action (`*`).
    Any,
    /// The environment's stack (and its change sets, which IAM scopes by stack).
    Stack,
    /// The artifact bucket itself.
    ArtifactBucket,
    /// The objects in the artifact bucket.
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
    // Drift detection checks each resource with the caller's own read permissions (the handlers' read
    // permissions the role holds), and needs DetectStackResourceDrift and BatchDescribeTypeConfigurations too.
    call("detect_stack_drift", "cloudformation:DetectStackDrift", Stack, "drift"),
    call("detect_stack_drift", "cloudformation:DetectStackResourceDrift", Stack, "drift"),
    call("detect_stack_drift", "cloudformation:BatchDescribeTypeConfigurations", Any, "drift"),
    call("describe_stack_drift_detection_status", "cloudformation:DescribeStackDriftDetectionStatus", Any, "drift"),
    call("describe_stack_resource_drifts", "cloudformation:DescribeStackResourceDrifts", Stack, "drift"),
    // S3: the artifact bucket.
    call("head_bucket", "s3:ListBucket", ArtifactBucket, "deploy, teardown"),
    call("create_bucket", "s3:CreateBucket", ArtifactBucket, "deploy (first)"),
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
    call("describe_log_groups", "logs:DescribeLogGroups", Any, "deploy (retained log groups)"),
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
    /// The ARNs this target covers in one environment (`bucket` is the artifact bucket's name).
    pub fn arns(self, plan: &Plan, account: &str, bucket: &str) -> Vec<String> {
        // Every name comes from the plan (the template's names), every ARN from the region's partition.
        let (region, stack) = (&plan.region, &plan.stack_name);
        let arn = |service: &str, resource: String| {
            format!(
                "arn:{}:{service}:{region}:{account}:{resource}",
                stack::partition(region)
            )
        };
        let s3 = |resource: String| format!("arn:{}:s3:::{resource}", stack::partition(region));
        let functions = || plan.functions.iter().map(|f| &f.function_name);
        match self {
            Any => vec!["*".into()],
            Stack => vec![arn("cloudformation", format!("stack/{stack}/*"))],
            ArtifactBucket => vec![s3(bucket.to_string())],
            ArtifactObjects => vec![s3(format!("{bucket}/*"))],
            // The views table whether or not the domain declares a view yet: adding the first one needs no
            // new deploy role.
            Tables => [
                plan.events_table.table_name.clone(),
                plan.projections_table.table_name.clone(),
                stack::views_table_name(stack),
            ]
            .iter()
            .map(|t| arn("dynamodb", format!("table/{t}")))
            .collect(),
            Functions => functions()
                .map(|f| arn("lambda", format!("function:{f}")))
                .collect(),
            HttpApis => vec![format!(
                "arn:{}:apigateway:{region}::/apis/*",
                stack::partition(region)
            )],
            FunctionLogGroups => functions()
                .map(|f| {
                    arn(
                        "logs",
                        format!("log-group:{}:*", stack::function_log_group_name(f)),
                    )
                })
                .collect(),
            LogGroups => {
                let mut arns = FunctionLogGroups.arns(plan, account, bucket);
                arns.push(arn(
                    "logs",
                    format!("log-group:{}:*", stack::access_log_group_name(stack)),
                ));
                arns
            }
            Queue => vec![arn("sqs", stack::dlq_name(stack))],
            DeployRole => plan.role_arn.iter().cloned().collect(),
        }
    }
}
