//! One failing template per rule of `stack::validate`: each test renders a real environment, mutates the
//! rendered text the way a careless template edit would, and asserts the violation names the resource and
//! the config key that produced it.

use std::path::PathBuf;

use stack::{Plan, RenderedTemplate, Violation};

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

fn rendered(env: &str) -> (Plan, String) {
    let (plan, t) =
        stack::load_checked(&config_dir(), env).unwrap_or_else(|e| panic!("{env}: {e}"));
    (plan, t.body)
}

/// Replaces `from` (which must occur) with `to` in the template of `env` and validates it.
fn violations(env: &str, from: &str, to: &str) -> Vec<Violation> {
    let (plan, body) = rendered(env);
    assert!(body.contains(from), "the {env} template has no {from:?}");
    violations_of(&plan, body.replacen(from, to, 1))
}

fn violations_of(plan: &Plan, body: String) -> Vec<Violation> {
    match stack::validate::validate(plan, &RenderedTemplate::from_body(body)) {
        Ok(()) => panic!("the mutated template was accepted"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains(&plan.config_path.display().to_string()),
                "{text}"
            );
            e.violations
        }
    }
}

#[track_caller]
fn assert_violation(vs: &[Violation], resource: &str, config_key: &str, needle: &str) {
    let found = vs.iter().any(|v| {
        v.resource == resource && v.config_key == config_key && v.message.contains(needle)
    });
    assert!(
        found,
        "no violation on {resource} ({config_key}) containing {needle:?}; got:\n{vs:#?}"
    );
}

#[test]
fn every_rendered_environment_passes() {
    for env in stack::config::environments(&config_dir()).unwrap() {
        let (plan, body) = rendered(&env);
        stack::validate::validate(&plan, &RenderedTemplate::from_body(body)).unwrap();
    }
}

#[test]
fn a_dangling_ref_is_caught() {
    let vs = violations(
        "dev",
        "S3Bucket: !Ref ArtifactBucket",
        "S3Bucket: !Ref ArtifactBuckets",
    );
    assert_violation(
        &vs,
        "CommandFunction",
        "functions.command",
        "Ref `ArtifactBuckets` points at nothing",
    );
}

#[test]
fn a_dangling_getatt_is_caught() {
    let vs = violations(
        "dev",
        "Role: !GetAtt QueryRole.Arn",
        "Role: !GetAtt QueryRoles.Arn",
    );
    assert_violation(
        &vs,
        "QueryFunction",
        "functions.query",
        "GetAtt `QueryRoles` points at nothing",
    );
}

#[test]
fn a_dangling_sub_variable_is_caught() {
    let vs = violations("dev", "${HttpApi}.execute-api", "${HttpApis}.execute-api");
    assert_violation(
        &vs,
        "Outputs.ApiUrl",
        "api",
        "Sub `HttpApis` points at nothing",
    );
}

#[test]
fn a_dangling_depends_on_is_caught() {
    let vs = violations(
        "local",
        "DependsOn: CommandLogGroup",
        "DependsOn: CommandLogGroups",
    );
    assert_violation(
        &vs,
        "CommandFunction",
        "functions.command",
        "DependsOn `CommandLogGroups`",
    );
}

#[test]
fn a_wildcard_action_is_caught() {
    let vs = violations("dev", "- dynamodb:PutItem\n", "- dynamodb:*\n");
    assert_violation(
        &vs,
        "CommandRole",
        "functions.command",
        "wildcard action `dynamodb:*`",
    );
}

#[test]
fn a_wildcard_resource_is_caught() {
    let vs = violations("dev", "- !GetAtt CommandLogGroup.Arn", "- \"*\"");
    assert_violation(&vs, "CommandRole", "functions.command", "wildcard resource");
    let vs = violations(
        "dev",
        "- !GetAtt EventsTable.Arn",
        "- !Sub \"${EventsTable.Arn}/*\"",
    );
    assert_violation(&vs, "CommandRole", "functions.command", "wildcard resource");
}

#[test]
fn an_action_the_function_does_not_need_is_caught() {
    // The first GetItem of the template is the command role's (it reads the aggregate's head).
    let vs = violations("dev", "- dynamodb:GetItem", "- dynamodb:DeleteTable");
    assert_violation(
        &vs,
        "CommandRole",
        "functions.command",
        "action `dynamodb:DeleteTable` is not one the command function needs",
    );
}

#[test]
fn another_functions_resource_is_caught() {
    // The command function has no business with the read models.
    let vs = violations(
        "dev",
        "                Resource:\n                  - !GetAtt EventsTable.Arn",
        "                Resource:\n                  - !GetAtt ProjectionsTable.Arn",
    );
    assert_violation(
        &vs,
        "CommandRole",
        "functions.command",
        "not the ARN of one of the command function's own resources",
    );
}

#[test]
fn not_action_is_caught() {
    let vs = violations(
        "dev",
        "              - Effect: Allow\n                Action:\n                  - dynamodb:BatchGetItem",
        "              - Effect: Allow\n                NotAction:\n                  - dynamodb:BatchGetItem",
    );
    assert_violation(&vs, "CommandRole", "functions.command", "NotAction");
}

#[test]
fn a_function_role_without_the_permissions_boundary_is_caught() {
    let vs = violations(
        "dev",
        "      PermissionsBoundary:",
        "      Description: no boundary\n      X-PermissionsBoundary:",
    );
    assert_violation(
        &vs,
        "CommandRole",
        "functions.command",
        "permissions boundary",
    );
}

#[test]
fn an_alarm_that_notifies_nobody_is_caught() {
    let vs = violations(
        "prod",
        "      AlarmActions:\n",
        "      InsufficientDataActions:\n",
    );
    assert_violation(
        &vs,
        "ProjectorIteratorAgeAlarm",
        "alarm_topic_arn",
        "notify the configured topic",
    );
}

#[test]
fn a_stage_without_access_logs_is_caught() {
    let vs = violations(
        "dev",
        "      AccessLogSettings:\n",
        "      X-AccessLogSettings:\n",
    );
    assert_violation(&vs, "HttpApiStage", "api", "access logs");
}

#[test]
fn a_role_without_a_function_is_caught() {
    let (plan, body) = rendered("local");
    let extra = "  AdminRole:\n    Type: AWS::IAM::Role\n    Properties:\n      AssumeRolePolicyDocument:\n        Statement: []\n      ManagedPolicyArns:\n        - arn:aws:iam::aws:policy/AdministratorAccess\n";
    let vs = violations_of(
        &plan,
        body.replacen("Resources:\n", &format!("Resources:\n{extra}"), 1),
    );
    assert_violation(
        &vs,
        "AdminRole",
        "templates/",
        "belongs to no planned function",
    );
    assert_violation(&vs, "AdminRole", "templates/", "managed policies");
}

#[test]
fn missing_report_batch_item_failures_is_caught() {
    let vs = violations("dev", "- ReportBatchItemFailures", "- SomethingElse");
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "functions.projector",
        "ReportBatchItemFailures",
    );
}

#[test]
fn parallelization_in_the_template_is_caught() {
    let vs = violations(
        "dev",
        "ParallelizationFactor: 1",
        "ParallelizationFactor: 4",
    );
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "stream_mapping.parallelization_factor",
        "must be 1",
    );
}

#[test]
fn unbounded_retries_in_the_template_are_caught() {
    let vs = violations("dev", "MaximumRetryAttempts: 5", "MaximumRetryAttempts: -1");
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "stream_mapping",
        "unbounded",
    );
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "stream_mapping.maximum_retry_attempts",
        "must be 5",
    );
}

#[test]
fn a_mapping_without_its_dead_letter_queue_is_caught() {
    let vs = violations(
        "dev",
        "Destination: !GetAtt ProjectorDeadLetterQueue.Arn",
        "Destination: !GetAtt ProjectorFunction.Arn",
    );
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "stream_mapping",
        "on-failure destination",
    );
}

#[test]
fn a_missing_mapping_is_caught() {
    let vs = violations(
        "dev",
        "  ProjectorEventSourceMapping:\n    Type: AWS::Lambda::EventSourceMapping",
        "  ProjectorMapping:\n    Type: AWS::SQS::Queue",
    );
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "stream_mapping",
        "missing",
    );
}

#[test]
fn payload_format_1_is_caught() {
    let vs = violations(
        "dev",
        "PayloadFormatVersion: \"2.0\"",
        "PayloadFormatVersion: \"1.0\"",
    );
    assert_violation(
        &vs,
        "CommandIntegration",
        "api",
        "PayloadFormatVersion must be \"2.0\"",
    );
}

#[test]
fn a_changed_events_table_key_is_caught() {
    let vs = violations(
        "dev",
        "        - AttributeName: version\n          KeyType: RANGE",
        "        - AttributeName: event_id\n          KeyType: RANGE",
    );
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events",
        "aggregate_id (HASH) + version (RANGE)",
    );
}

#[test]
fn a_changed_key_type_is_caught() {
    let vs = violations(
        "dev",
        "        - AttributeName: version\n          AttributeType: N",
        "        - AttributeName: version\n          AttributeType: S",
    );
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events",
        "attribute `version` must be declared with type N",
    );
}

#[test]
fn a_changed_index_is_caught() {
    let vs = violations("dev", "ProjectionType: ALL", "ProjectionType: KEYS_ONLY");
    assert_violation(&vs, "EventsTable", "tables.events", "project ALL");
    let vs = violations(
        "dev",
        "IndexName: EventTypeTimestampIndex",
        "IndexName: ByType",
    );
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events",
        "EventTypeTimestampIndex GSI is missing",
    );
}

#[test]
fn a_changed_stream_view_is_caught() {
    let vs = violations(
        "dev",
        "StreamViewType: NEW_IMAGE",
        "StreamViewType: KEYS_ONLY",
    );
    assert_violation(&vs, "EventsTable", "tables.events", "NEW_IMAGE");
}

/// Every table is encrypted with the AWS-owned key (`SSEEnabled: false`): the AWS-managed KMS key that
/// `SSEEnabled: true` selects, or a customer key, is caught on each table.
#[test]
fn a_table_encrypted_with_a_kms_key_is_caught() {
    let vs = violations("dev", "SSEEnabled: false", "SSEEnabled: true");
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events",
        "SSESpecification must be `SSEEnabled: false` (encryption at rest with the AWS-owned key)",
    );
    let (plan, body) = rendered("prod");
    let tables = body.matches("SSEEnabled: false").count();
    assert!(tables >= 2, "{tables}");
    let vs = violations_of(
        &plan,
        body.replace(
            "SSEEnabled: false",
            "SSEEnabled: true\n        SSEType: KMS\n        KMSMasterKeyId: alias/mine",
        ),
    );
    for (table, key) in [
        ("EventsTable", "tables.events"),
        ("ProjectionsTable", "tables.projections"),
    ] {
        assert_violation(&vs, table, key, "a KMS key selects a KMS key");
    }
    assert_eq!(vs.len(), tables, "{vs:#?}");
}

#[test]
fn retention_that_disagrees_with_the_config_is_caught() {
    let vs = violations("prod", "DeletionPolicy: Retain", "DeletionPolicy: Delete");
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events.retain_on_delete",
        "DeletionPolicy must be Retain",
    );
    let vs = violations(
        "prod",
        "PointInTimeRecoveryEnabled: true",
        "PointInTimeRecoveryEnabled: false",
    );
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events.point_in_time_recovery",
        "must be true",
    );
    let vs = violations(
        "prod",
        "DeletionProtectionEnabled: true",
        "DeletionProtectionEnabled: false",
    );
    assert_violation(
        &vs,
        "EventsTable",
        "tables.events.deletion_protection",
        "must be true",
    );
}

#[test]
fn a_function_that_drifts_from_its_plan_is_caught() {
    let vs = violations("dev", "MemorySize: 256", "MemorySize: 128");
    assert_violation(
        &vs,
        "CommandFunction",
        "functions.command.memory",
        "MemorySize must be 256",
    );
    let vs = violations("dev", "Runtime: provided.al2023", "Runtime: nodejs20.x");
    assert_violation(&vs, "CommandFunction", "functions.command", "Runtime");
    let vs = violations(
        "dev",
        "S3Key: !Ref QueryCodeKey",
        "S3Key: !Ref CommandCodeKey",
    );
    assert_violation(&vs, "QueryFunction", "functions.query", "Code must be");
    let vs = violations(
        "dev",
        "          PROJECTIONS_TABLE: !Ref ProjectionsTable\n",
        "",
    );
    assert_violation(
        &vs,
        "QueryFunction",
        "functions.query",
        "environment variables must be exactly",
    );
    let vs = violations(
        "dev",
        "EVENTS_TABLE: !Ref EventsTable",
        "EVENTS_TABLE: \"cqrs-dev-events\"",
    );
    assert_violation(
        &vs,
        "CommandFunction",
        "functions.command",
        "EVENTS_TABLE must be !Ref EventsTable",
    );
}

#[test]
fn a_function_without_its_role_or_log_group_is_caught() {
    let vs = violations(
        "local",
        "  CommandLogGroup:\n    Type: AWS::Logs::LogGroup",
        "  CommandLogs:\n    Type: AWS::Logs::LogGroup",
    );
    assert_violation(
        &vs,
        "CommandLogGroup",
        "functions.command.log_retention_days",
        "missing",
    );
    let vs = violations("local", "  QueryRole:\n", "  ReadRole:\n");
    assert_violation(&vs, "QueryRole", "functions.query", "missing");
}

#[test]
fn a_function_the_plan_does_not_know_is_caught() {
    let vs = violations("local", "  CommandFunction:\n", "  CommandFunction2:\n");
    assert_violation(&vs, "CommandFunction2", "functions", "not in the plan");
}

#[test]
fn a_missing_route_is_caught() {
    let vs = violations(
        "dev",
        "RouteKey: \"GET /health\"",
        "RouteKey: \"GET /healthz\"",
    );
    assert_violation(
        &vs,
        "RouteGetHealth",
        "api",
        "route `GET /health` is missing",
    );
}

#[test]
fn a_route_to_the_wrong_function_is_caught() {
    let vs = violations(
        "dev",
        "      RouteKey: \"GET /events\"\n      Target: !Sub \"integrations/${QueryIntegration}\"",
        "      RouteKey: \"GET /events\"\n      Target: !Sub \"integrations/${CommandIntegration}\"",
    );
    assert_violation(&vs, "RouteGetEvents", "api", "must target QueryIntegration");
}

#[test]
fn routes_must_use_the_jwt_authorizer_when_configured() {
    let vs = violations(
        "prod",
        "      AuthorizationType: JWT\n      AuthorizerId: !Ref HttpApiJwtAuthorizer\n",
        "      AuthorizationType: NONE\n",
    );
    assert_violation(
        &vs,
        "RoutePostEvents",
        "api.jwt",
        "AuthorizationType must be JWT",
    );
}

#[test]
fn a_function_api_gateway_cannot_invoke_is_caught() {
    let vs = violations(
        "dev",
        "Principal: apigateway.amazonaws.com",
        "Principal: s3.amazonaws.com",
    );
    assert_violation(
        &vs,
        "CommandApiPermission",
        "api",
        "no permission to invoke CommandLiveAlias",
    );
}

#[test]
fn an_integration_or_a_stream_mapping_that_bypasses_the_live_alias_is_caught() {
    // $LATEST (the function itself) would serve new code before any traffic shift and ignore `rollback`.
    let vs = violations(
        "dev",
        "IntegrationUri: !Ref QueryLiveAlias",
        "IntegrationUri: !GetAtt QueryFunction.Arn",
    );
    assert_violation(
        &vs,
        "QueryIntegration",
        "api",
        "IntegrationUri must be {\"Ref\":\"QueryLiveAlias\"} (the live alias)",
    );
    let vs = violations(
        "dev",
        "FunctionName: !Ref ProjectorLiveAlias\n      Enabled",
        "FunctionName: !Ref ProjectorFunction\n      Enabled",
    );
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "functions.projector",
        "FunctionName must be {\"Ref\":\"ProjectorLiveAlias\"}",
    );
}

#[test]
fn getatt_on_api_gateway_in_outputs_is_caught() {
    let (plan, body) = rendered("dev");
    let start = body.find("  ApiUrl:\n").unwrap();
    let end = start + body[start..].find("  EventsTableName:").unwrap();
    let body = format!(
        "{}  ApiUrl:\n    Value: !GetAtt HttpApi.ApiEndpoint\n{}",
        &body[..start],
        &body[end..]
    );
    let vs = violations_of(&plan, body);
    assert_violation(
        &vs,
        "Outputs.ApiUrl",
        "api",
        "GetAtt on API Gateway v2 resource `HttpApi`",
    );
}

#[test]
fn missing_outputs_and_parameters_are_caught() {
    let vs = violations("local", "  DeadLetterQueueUrl:\n", "  DlqUrl:\n");
    assert_violation(&vs, "Outputs.DeadLetterQueueUrl", "templates/", "missing");
    let vs = violations(
        "local",
        "  ReleaseDigest:\n    Type: String",
        "  Digest:\n    Type: String",
    );
    assert_violation(
        &vs,
        "Parameters.ReleaseDigest",
        "templates/",
        "does not declare it",
    );
    let vs = violations("local", "    Default: none\n", "    Default: \"0\"\n");
    assert_violation(
        &vs,
        "Parameters.ReleaseDigest",
        "templates/",
        "default to \"none\"",
    );
}

#[test]
fn a_local_stack_with_what_the_local_endpoint_cannot_create_is_caught() {
    // The dev template validated against the local plan: mapping, API Gateway v2 and alarms must go.
    let (local, _) = rendered("local");
    let (_, dev_body) = rendered("dev");
    let dev_body = dev_body.replace("cqrs-dev", "cqrs-local");
    let vs = violations_of(&local, dev_body);
    assert_violation(
        &vs,
        "ProjectorEventSourceMapping",
        "kind",
        "empties the stream",
    );
    assert_violation(&vs, "HttpApi", "kind", "ignores them");
    assert_violation(&vs, "Outputs.ApiUrl", "local.gateway_port", "local gateway");
}

#[test]
fn alarms_that_the_config_turned_off_are_caught() {
    let (plan, body) = rendered("prod");
    let mut plan = plan;
    plan.alarms = false;
    let vs = violations_of(&plan, body);
    assert_violation(&vs, "ProjectorIteratorAgeAlarm", "alarms", "alarms are off");
}

#[test]
fn a_template_that_does_not_parse_is_caught() {
    let vs = violations(
        "local",
        "S3Bucket: !Ref ArtifactBucket",
        "S3Bucket: !Reference ArtifactBucket",
    );
    assert_violation(
        &vs,
        "template",
        "templates/",
        "unknown CloudFormation tag `!Reference`",
    );
}

#[test]
fn all_violations_are_reported_together() {
    let (plan, body) = rendered("dev");
    let body = body
        .replace(
            "PayloadFormatVersion: \"2.0\"",
            "PayloadFormatVersion: \"1.0\"",
        )
        .replace("- ReportBatchItemFailures", "- X");
    let vs = violations_of(&plan, body);
    assert!(vs.len() >= 3, "{vs:#?}");
}

#[test]
fn a_canary_that_would_not_roll_back_or_not_go_through_codedeploy_is_caught() {
    // prod shifts 10% for 5 minutes through CodeDeploy; each weakening is refused, naming `deployment`.
    let vs = violations(
        "prod",
        "          - DEPLOYMENT_FAILURE\n          - DEPLOYMENT_STOP_ON_ALARM\n",
        "          - DEPLOYMENT_FAILURE\n",
    );
    assert_violation(
        &vs,
        "CommandDeploymentGroup",
        "deployment.strategy",
        "AutoRollbackConfiguration enabled with DEPLOYMENT_STOP_ON_ALARM",
    );
    let vs = violations(
        "prod",
        "        DeploymentGroupName: !Ref QueryDeploymentGroup\n",
        "        DeploymentGroupName: !Ref CommandDeploymentGroup\n",
    );
    assert_violation(
        &vs,
        "QueryLiveAlias",
        "deployment.strategy",
        "the alias must be updated by CodeDeploy",
    );
    let vs = violations(
        "prod",
        "DeploymentConfigName: CodeDeployDefault.LambdaCanary10Percent5Minutes",
        "DeploymentConfigName: CodeDeployDefault.LambdaAllAtOnce",
    );
    assert_violation(
        &vs,
        "CommandDeploymentGroup",
        "deployment.strategy",
        "must be CodeDeployDefault.LambdaCanary10Percent5Minutes",
    );
    let vs = violations(
        "prod",
        "                  - lambda:UpdateAlias\n",
        "                  - lambda:UpdateAlias\n                  - lambda:UpdateFunctionCode\n",
    );
    assert_violation(
        &vs,
        "CodeDeployRole",
        "deployment",
        "action `lambda:UpdateFunctionCode` is not one CodeDeploy needs",
    );
}

#[test]
fn codedeploy_resources_in_an_all_at_once_environment_are_caught() {
    let (plan, body) = rendered("dev");
    assert!(!body.contains("AWS::CodeDeploy::"), "dev is all_at_once");
    let body = body.replacen(
        "  CommandLiveAlias:\n    Type: AWS::Lambda::Alias\n",
        "  CommandLiveAlias:\n    Type: AWS::Lambda::Alias\n    UpdatePolicy:\n      CodeDeployLambdaAliasUpdate:\n        ApplicationName: x\n        DeploymentGroupName: y\n",
        1,
    );
    let vs = violations_of(&plan, body);
    assert_violation(
        &vs,
        "CommandLiveAlias",
        "deployment.strategy",
        "no CodeDeploy resource or UpdatePolicy",
    );
}
