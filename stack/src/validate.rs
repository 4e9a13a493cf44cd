//! Checks a rendered template against its plan: the "typed" in typed pipeline.
//!
//! The template is parsed back (short-form tags included, see [`crate::template`]) and checked as data:
//! every reference resolves, every function has its role, log group and routes, IAM is least privilege
//! with no wildcard, the stream mapping keeps the safe settings, the events table keeps its keys and
//! index, and the handler contracts match the infrastructure (partial batch failures, payload format 2.0).
//! All violations are collected; each names the resource and the config key that produced it, so a
//! failure points at the line to fix in `config/` or in `templates/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value as Json, json};

use crate::plan::*;
use crate::render::{RenderedTemplate, route_logical_id};
use crate::template;

/// One rule violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Logical id of the offending resource (or `Outputs.X`, `Parameters.X`, `template`).
    pub resource: String,
    /// The config key whose value produced the resource (e.g. `stream_mapping.parallelization_factor`).
    pub config_key: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (config key `{}`): {}",
            self.resource, self.config_key, self.message
        )
    }
}

/// Every rule the rendered template breaks.
///
/// ### Handling
/// Nothing was deployed. A violation means the templates and the config disagree (or a template was edited
/// by hand): print them all and exit with "invalid input" (2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors {
    /// The config file of the plan (for the header line).
    pub config_path: String,
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.violations.len();
        write!(
            f,
            "the template rendered from {} breaks {n} rule{}:",
            self.config_path,
            if n == 1 { "" } else { "s" }
        )?;
        for v in &self.violations {
            write!(f, "\n  - {v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The template parameters every environment declares.
pub fn required_parameters() -> Vec<String> {
    let mut p = vec![parameters::ARTIFACT_BUCKET.to_string()];
    p.extend(FunctionName::ALL.into_iter().map(parameters::code_key));
    p.push(parameters::RELEASE_DIGEST.to_string());
    p
}

/// The outputs every environment declares.
pub fn required_outputs() -> Vec<String> {
    let mut o: Vec<String> = [
        outputs::API_URL,
        outputs::EVENTS_TABLE,
        outputs::PROJECTIONS_TABLE,
        outputs::EVENTS_STREAM_ARN,
        outputs::DEAD_LETTER_QUEUE_URL,
        outputs::DEAD_LETTER_QUEUE_ARN,
        outputs::RELEASE_DIGEST,
    ]
    .map(String::from)
    .to_vec();
    o.extend(FunctionName::ALL.into_iter().map(outputs::function_name));
    o
}

/// The IAM actions each function may have, and the logical ids whose ARNs they may apply to.
/// This is the least-privilege contract: widening a role means changing this list, in review.
/// `tests/tests/iam_function_roles.rs` proves the rendered roles grant exactly what the code does.
pub fn allowed_permissions(
    function: FunctionName,
) -> (&'static [&'static str], &'static [&'static str]) {
    match function {
        FunctionName::Command => (
            &[
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            &["EventsTable", "CommandLogGroup"],
        ),
        FunctionName::Query => (
            &[
                "dynamodb:GetItem",
                "dynamodb:Query",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            &[
                "EventsTable",
                "ProjectionsTable",
                "ViewsTable",
                "QueryLogGroup",
            ],
        ),
        FunctionName::Projector => (
            &[
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "sqs:SendMessage",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            &[
                "EventsTable",
                "ProjectionsTable",
                "ViewsTable",
                "ProjectorDeadLetterQueue",
                "ProjectorLogGroup",
            ],
        ),
    }
}

/// Checks the rendered template against the plan; returns every violation.
pub fn validate(plan: &Plan, t: &RenderedTemplate) -> Result<(), ValidationErrors> {
    let mut c = Checker {
        violations: Vec::new(),
    };
    match template::parse(&t.body) {
        Ok(doc) => c.check(plan, &doc),
        Err(e) => c.push(
            "template",
            "templates/",
            format!("the rendered template does not parse: {e}"),
        ),
    }
    if c.violations.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors {
            config_path: plan.config_path.display().to_string(),
            violations: c.violations,
        })
    }
}

struct Checker {
    violations: Vec<Violation>,
}

const PSEUDO_PARAMETERS: [&str; 8] = [
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

impl Checker {
    fn push(&mut self, resource: &str, key: &str, message: String) {
        self.violations.push(Violation {
            resource: resource.into(),
            config_key: key.into(),
            message,
        });
    }

    fn check(&mut self, plan: &Plan, doc: &Json) {
        let resources = template::resources(doc);
        let params = doc
            .get("Parameters")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        let outs = doc
            .get("Outputs")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        self.references(doc, &resources, &params);
        self.parameters(&params);
        self.outputs(plan, &outs, &resources);
        self.functions(plan, &resources);
        self.iam(plan, &resources);
        self.boundaries(plan, &resources);
        self.events_table(plan, &resources);
        self.projections_table(plan, &resources);
        self.views_table(plan, &resources);
        self.stream_mapping(plan, &resources);
        self.api(plan, &resources);
        self.alarms(plan, &resources);
        self.deployment(plan, &resources);
    }

    /// Every `Ref`, `GetAtt`, `Sub` variable and `DependsOn` names a parameter, resource or pseudo parameter.
    fn references(
        &mut self,
        doc: &Json,
        resources: &Map<String, Json>,
        params: &Map<String, Json>,
    ) {
        let exists_ref = |name: &str| {
            resources.contains_key(name)
                || params.contains_key(name)
                || PSEUDO_PARAMETERS.contains(&name)
        };
        let mut found: Vec<(String, String, &'static str)> = Vec::new(); // (owner, target, kind)
        for (section, owner_map) in [
            ("Resources", doc.get("Resources")),
            ("Outputs", doc.get("Outputs")),
        ] {
            let Some(Json::Object(m)) = owner_map else {
                continue;
            };
            for (id, body) in m {
                let owner = if section == "Outputs" {
                    format!("Outputs.{id}")
                } else {
                    id.clone()
                };
                collect_refs(body, &mut |target, kind| {
                    found.push((owner.clone(), target, kind))
                });
                if let Some(dep) = body.get("DependsOn") {
                    let deps: Vec<&str> = match dep {
                        Json::String(s) => vec![s.as_str()],
                        Json::Array(a) => a.iter().filter_map(Json::as_str).collect(),
                        _ => vec![],
                    };
                    for d in deps {
                        if !resources.contains_key(d) {
                            found.push((owner.clone(), d.to_string(), "DependsOn"));
                        }
                    }
                }
            }
        }
        for (owner, target, kind) in found {
            let ok = match kind {
                "Ref" => exists_ref(&target),
                "GetAtt" => resources.contains_key(&target),
                "Sub" => {
                    exists_ref(&target)
                        || resources.contains_key(target.split('.').next().unwrap_or(""))
                }
                _ => false,
            };
            if !ok {
                self.push(
                    &owner,
                    config_key_of(&owner),
                    format!("{kind} `{target}` points at nothing: no such resource or parameter"),
                );
            }
        }
    }

    fn parameters(&mut self, params: &Map<String, Json>) {
        for p in required_parameters() {
            if !params.contains_key(&p) {
                self.push(&format!("Parameters.{p}"), "templates/", format!("the deployer fills in parameter `{p}`, but the template does not declare it"));
            }
        }
        if let Some(d) = params.get(parameters::RELEASE_DIGEST)
            && d.get("Default") != Some(&json!("none"))
        {
            self.push(
                "Parameters.ReleaseDigest",
                "templates/",
                "must default to \"none\" so a first deploy without a release works".into(),
            );
        }
    }

    fn outputs(&mut self, plan: &Plan, outs: &Map<String, Json>, resources: &Map<String, Json>) {
        for o in required_outputs() {
            if !outs.contains_key(&o) {
                self.push(
                    &format!("Outputs.{o}"),
                    "templates/",
                    format!("output `{o}` is missing; the deployer and the local engine read it"),
                );
            }
        }
        // moto fails the whole stack on a GetAtt of an API Gateway v2 resource in Outputs, and on AWS the
        // URL is better built with Sub anyway.
        for (id, o) in outs {
            let mut bad = Vec::new();
            collect_refs(o, &mut |target, kind| {
                if kind == "GetAtt" || kind == "Sub" {
                    let res = target.split('.').next().unwrap_or("");
                    let is_apigw = resource_type(resources, res)
                        .is_some_and(|t| t.starts_with("AWS::ApiGatewayV2::"));
                    if is_apigw && (kind == "GetAtt" || target.contains('.')) {
                        bad.push(res.to_string());
                    }
                }
            });
            for res in bad {
                self.push(&format!("Outputs.{id}"), "api", format!("uses GetAtt on API Gateway v2 resource `{res}`; build the value with !Sub and !Ref instead"));
            }
        }
        if let Some(url) = outs.get(outputs::API_URL).and_then(|o| o.get("Value")) {
            match (plan.kind, url) {
                (EnvKind::Local, Json::String(s)) if Some(s.as_str()) == plan.local.as_ref().map(|l| format!("http://127.0.0.1:{}", l.gateway_port)).as_deref() => {}
                (EnvKind::Local, _) => self.push("Outputs.ApiUrl", "local.gateway_port", "a local stack's ApiUrl must be the local gateway, http://127.0.0.1:<gateway_port>".into()),
                (EnvKind::Aws, v) if v.get("Fn::Sub").is_some() => {}
                (EnvKind::Aws, _) => self.push("Outputs.ApiUrl", "api", "must be built with !Sub from the HttpApi id".into()),
            }
        }
    }

    /// Each planned function has its function, role and log group, wired to each other as planned.
    fn functions(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        for f in &plan.functions {
            let p = f.name.logical_prefix();
            let key = format!("functions.{}", f.name);
            let (fid, rid, lid) = (
                format!("{p}Function"),
                format!("{p}Role"),
                format!("{p}LogGroup"),
            );
            self.expect_type(resources, &rid, "AWS::IAM::Role", &key);
            self.function_log_group(f, resources, &lid, &key);
            if !self.expect_type(resources, &fid, "AWS::Lambda::Function", &key) {
                continue;
            }
            let props = &resources[&fid]["Properties"];
            let want = |prop: &str, value: Json, k: &str, this: &mut Self| {
                if props.get(prop).unwrap_or(&Json::Null) != &value {
                    this.push(
                        &fid,
                        k,
                        format!(
                            "{prop} must be {value}, found {}",
                            props.get(prop).unwrap_or(&Json::Null)
                        ),
                    );
                }
            };
            want("FunctionName", json!(f.function_name), "stack_name", self);
            want("Runtime", json!("provided.al2023"), &key, self);
            want("Handler", json!("bootstrap"), &key, self);
            want(
                "MemorySize",
                json!(f.memory_mb),
                &format!("{key}.memory"),
                self,
            );
            want(
                "Timeout",
                json!(f.timeout_seconds),
                &format!("{key}.timeout"),
                self,
            );
            want(
                "Architectures",
                json!([f.architecture.as_lambda()]),
                &format!("{key}.architecture"),
                self,
            );
            want("Role", json!({"Fn::GetAtt": [rid, "Arn"]}), &key, self);
            want(
                "Code",
                json!({"S3Bucket": {"Ref": parameters::ARTIFACT_BUCKET}, "S3Key": {"Ref": parameters::code_key(f.name)}}),
                &key,
                self,
            );
            want(
                "ReservedConcurrentExecutions",
                f.reserved_concurrency
                    .map(|r| json!(r))
                    .unwrap_or(Json::Null),
                &format!("{key}.reserved_concurrency"),
                self,
            );
            self.function_environment(f, props, &fid, &key);
        }
        // Nothing the plan does not know about may run code.
        for (id, r) in resources {
            if r.get("Type") == Some(&json!("AWS::Lambda::Function"))
                && !plan
                    .functions
                    .iter()
                    .any(|f| format!("{}Function", f.name.logical_prefix()) == *id)
            {
                self.push(id, "functions", "a function that is not in the plan".into());
            }
        }
    }

    /// The function's log group: the name Lambda writes to, with the planned retention.
    fn function_log_group(
        &mut self,
        f: &FunctionPlan,
        resources: &Map<String, Json>,
        lid: &str,
        key: &str,
    ) {
        if self.expect_type(
            resources,
            lid,
            "AWS::Logs::LogGroup",
            &format!("{key}.log_retention_days"),
        ) {
            let props = &resources[lid]["Properties"];
            if props.get("LogGroupName")
                != Some(&json!(crate::function_log_group_name(&f.function_name)))
            {
                self.push(lid, key, format!("LogGroupName must be /aws/lambda/{}, where Lambda writes the function's logs", f.function_name));
            }
            if props.get("RetentionInDays") != Some(&json!(f.log_retention_days)) {
                self.push(
                    lid,
                    &format!("{key}.log_retention_days"),
                    format!("RetentionInDays must be {}", f.log_retention_days),
                );
            }
        }
    }

    /// The function's environment: exactly the planned variables, table names as references, the log level.
    fn function_environment(&mut self, f: &FunctionPlan, props: &Json, fid: &str, key: &str) {
        let vars = props
            .pointer("/Environment/Variables")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        let have: BTreeSet<&String> = vars.keys().collect();
        let planned: BTreeSet<&String> = f.environment.keys().collect();
        if have != planned {
            self.push(
                fid,
                key,
                format!("environment variables must be exactly {planned:?}, found {have:?}"),
            );
        }
        for (var, table) in [
            ("EVENTS_TABLE", "EventsTable"),
            ("PROJECTIONS_TABLE", "ProjectionsTable"),
        ] {
            if let Some(v) = vars.get(var)
                && v != &json!({"Ref": table})
            {
                self.push(
                    fid,
                    key,
                    format!("{var} must be !Ref {table} so the name cannot drift from the table"),
                );
            }
        }
        if let Some(v) = vars.get("RUST_LOG")
            && v != &json!(f.log_level)
        {
            self.push(
                fid,
                &format!("{key}.log_level"),
                format!("RUST_LOG must be {:?}", f.log_level),
            );
        }
    }

    fn expect_type(
        &mut self,
        resources: &Map<String, Json>,
        id: &str,
        ty: &str,
        key: &str,
    ) -> bool {
        match resource_type(resources, id) {
            Some(t) if t == ty => true,
            Some(t) => {
                self.push(id, key, format!("must be a {ty}, found {t}"));
                false
            }
            None => {
                self.push(
                    id,
                    key,
                    format!("missing: every planned function needs its {ty}"),
                );
                false
            }
        }
    }

    /// No wildcard anywhere in IAM, and each role only the actions and resources its function needs.
    fn iam(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let codedeploy = plan.kind == EnvKind::Aws && plan.deployment.uses_codedeploy();
        for (id, r) in resources {
            let ty = r.get("Type").and_then(Json::as_str).unwrap_or("");
            if !ty.starts_with("AWS::IAM::") {
                continue;
            }
            if codedeploy && id == CODEDEPLOY_ROLE {
                self.codedeploy_role(r);
                continue;
            }
            let function = FunctionName::ALL
                .into_iter()
                .find(|f| *id == format!("{}Role", f.logical_prefix()));
            let key = function
                .map(|f| format!("functions.{f}"))
                .unwrap_or_else(|| "templates/".into());
            if function.is_none() {
                self.push(id, &key, format!("{ty} `{id}` belongs to no planned function; every IAM resource is one function's role"));
            }
            let mut statements = Vec::new();
            if let Some(Json::Array(policies)) = r.pointer("/Properties/Policies") {
                for p in policies {
                    statements.extend(statements_of(p.get("PolicyDocument")));
                }
            }
            statements.extend(statements_of(r.pointer("/Properties/PolicyDocument")));
            if r.pointer("/Properties/ManagedPolicyArns").is_some() {
                self.push(
                    id,
                    &key,
                    "managed policies are not allowed: their permissions are not reviewed here"
                        .into(),
                );
            }
            for s in statements {
                for forbidden in ["NotAction", "NotResource"] {
                    if s.get(forbidden).is_some() {
                        self.push(id, &key, format!("{forbidden} grants everything except a list; name the allowed items instead"));
                    }
                }
                let actions = strings_of(s.get("Action"));
                for a in &actions {
                    if a.contains('*') {
                        self.push(
                            id,
                            &key,
                            format!("wildcard action `{a}`; list the exact actions"),
                        );
                    } else if let Some(f) = function
                        && !allowed_permissions(f).0.contains(&a.as_str())
                    {
                        self.push(
                            id,
                            &key,
                            format!("action `{a}` is not one the {f} function needs"),
                        );
                    }
                }
                let res = s.get("Resource").cloned().unwrap_or(Json::Null);
                let list = match res {
                    Json::Array(a) => a,
                    Json::Null => {
                        self.push(id, &key, "a statement without Resource".into());
                        vec![]
                    }
                    other => vec![other],
                };
                for item in list {
                    let mut literal_wildcard = false;
                    visit_strings(&item, &mut |s| literal_wildcard |= s.contains('*'));
                    if literal_wildcard {
                        self.push(id, &key, format!("wildcard resource {item}; use the ARN of the function's own resource"));
                        continue;
                    }
                    let mut targets = Vec::new();
                    collect_refs(&item, &mut |t, _| {
                        targets.push(t.split('.').next().unwrap_or("").to_string())
                    });
                    if let Some(f) = function {
                        let allowed = allowed_permissions(f).1;
                        if targets.is_empty()
                            || targets.iter().any(|t| !allowed.contains(&t.as_str()))
                        {
                            self.push(id, &key, format!("resource {item} is not the ARN of one of the {f} function's own resources ({})", allowed.join(", ")));
                        }
                    }
                }
            }
        }
    }

    fn events_table(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let id = "EventsTable";
        let key = "tables.events";
        if !self.table_common(plan, resources, id, key, &plan.events_table) {
            return;
        }
        let props = &resources[id]["Properties"];
        if props.get("KeySchema")
            != Some(
                &json!([{"AttributeName": "aggregate_id", "KeyType": "HASH"}, {"AttributeName": "version", "KeyType": "RANGE"}]),
            )
        {
            self.push(id, key, "the key must be aggregate_id (HASH) + version (RANGE): optimistic concurrency and ordered reads depend on it, and changing it replaces the table".into());
        }
        let attrs = attribute_types(props);
        for (name, ty) in [
            ("aggregate_id", "S"),
            ("version", "N"),
            ("event_type", "S"),
            ("timestamp", "S"),
        ] {
            if attrs.get(name).map(String::as_str) != Some(ty) {
                self.push(
                    id,
                    key,
                    format!("attribute `{name}` must be declared with type {ty}"),
                );
            }
        }
        let gsi = props
            .get("GlobalSecondaryIndexes")
            .and_then(Json::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|g| g.get("IndexName") == Some(&json!("EventTypeTimestampIndex")))
            });
        match gsi {
            None => self.push(
                id,
                key,
                "the EventTypeTimestampIndex GSI is missing; queries by event type use it".into(),
            ),
            Some(g) => {
                if g.get("KeySchema")
                    != Some(
                        &json!([{"AttributeName": "event_type", "KeyType": "HASH"}, {"AttributeName": "timestamp", "KeyType": "RANGE"}]),
                    )
                {
                    self.push(
                        id,
                        key,
                        "EventTypeTimestampIndex must be event_type (HASH) + timestamp (RANGE)"
                            .into(),
                    );
                }
                if g.pointer("/Projection/ProjectionType") != Some(&json!("ALL")) {
                    self.push(id, key, "EventTypeTimestampIndex must project ALL attributes (the query returns whole events)".into());
                }
            }
        }
        if props.pointer("/StreamSpecification/StreamViewType") != Some(&json!("NEW_IMAGE")) {
            self.push(
                id,
                key,
                "the stream must be NEW_IMAGE: the projector reads each new event from it".into(),
            );
        }
    }

    fn projections_table(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let (id, key) = ("ProjectionsTable", "tables.projections");
        if !self.table_common(plan, resources, id, key, &plan.projections_table) {
            return;
        }
        let props = &resources[id]["Properties"];
        if props.get("KeySchema")
            != Some(&json!([{"AttributeName": "aggregate_id", "KeyType": "HASH"}]))
        {
            self.push(id, key, "the key must be aggregate_id (HASH)".into());
        }
    }

    /// The views table exists exactly when the domain declares views, keyed and indexed as the store reads it.
    fn views_table(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let (id, key) = ("ViewsTable", "tables.projections");
        let Some(table) = &plan.views_table else {
            if resources.contains_key(id) {
                self.push(
                    id,
                    key,
                    "the domain declares no views, so there is no views table".into(),
                );
            }
            return;
        };
        if !self.table_common(plan, resources, id, key, table) {
            return;
        }
        let props = &resources[id]["Properties"];
        if props.get("KeySchema") != Some(&json!([{"AttributeName": "id", "KeyType": "HASH"}])) {
            self.push(id, key, "the key must be id (HASH)".into());
        }
        let index = props
            .get("GlobalSecondaryIndexes")
            .and_then(Json::as_array)
            .and_then(|gs| {
                gs.iter()
                    .find(|g| g.get("IndexName") == Some(&json!("ViewKeyIndex")))
            });
        let expected = json!([
            {"AttributeName": "view_key", "KeyType": "HASH"},
            {"AttributeName": "aggregate_id", "KeyType": "RANGE"}
        ]);
        if index.and_then(|i| i.get("KeySchema")) != Some(&expected) {
            self.push(id, key, "the ViewKeyIndex GSI (view_key HASH + aggregate_id RANGE) is missing; view reads use it".into());
        }
    }

    fn table_common(
        &mut self,
        _plan: &Plan,
        resources: &Map<String, Json>,
        id: &str,
        key: &str,
        t: &TablePlan,
    ) -> bool {
        match resource_type(resources, id) {
            Some("AWS::DynamoDB::Table") => {}
            _ => {
                self.push(id, key, "missing or not an AWS::DynamoDB::Table".into());
                return false;
            }
        }
        let r = &resources[id];
        let props = &r["Properties"];
        if props.get("TableName") != Some(&json!(t.table_name)) {
            self.push(
                id,
                "stack_name",
                format!("TableName must be {:?}", t.table_name),
            );
        }
        let policy = if t.retain_on_delete {
            "Retain"
        } else {
            "Delete"
        };
        for attr in ["DeletionPolicy", "UpdateReplacePolicy"] {
            if r.get(attr).and_then(Json::as_str).unwrap_or("Delete") != policy {
                self.push(
                    id,
                    &format!("{key}.retain_on_delete"),
                    format!("{attr} must be {policy}"),
                );
            }
        }
        if props
            .pointer("/PointInTimeRecoverySpecification/PointInTimeRecoveryEnabled")
            .and_then(Json::as_bool)
            .unwrap_or(false)
            != t.point_in_time_recovery
        {
            self.push(
                id,
                &format!("{key}.point_in_time_recovery"),
                format!(
                    "PointInTimeRecoveryEnabled must be {}",
                    t.point_in_time_recovery
                ),
            );
        }
        if props
            .get("DeletionProtectionEnabled")
            .and_then(Json::as_bool)
            .unwrap_or(false)
            != t.deletion_protection
        {
            self.push(
                id,
                &format!("{key}.deletion_protection"),
                format!(
                    "DeletionProtectionEnabled must be {}",
                    t.deletion_protection
                ),
            );
        }
        // The AWS-owned key: `SSEEnabled: true` (or a KMS key id) selects a KMS key, billed per request and
        // needing kms:* permissions the deploy role does not have (see templates/tables.yaml.hbs).
        if props.get("SSESpecification") != Some(&json!({"SSEEnabled": false})) {
            self.push(
                id,
                key,
                "SSESpecification must be `SSEEnabled: false` (encryption at rest with the AWS-owned key): `SSEEnabled: true` or a KMS key selects a KMS key, billed per request and needing kms:* permissions the deploy role does not grant".into(),
            );
        }
        true
    }

    fn stream_mapping(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let id = "ProjectorEventSourceMapping";
        let key = "stream_mapping";
        self.expect_type(
            resources,
            "ProjectorDeadLetterQueue",
            "AWS::SQS::Queue",
            key,
        );
        let mappings: Vec<&String> = resources
            .iter()
            .filter(|(_, r)| r.get("Type") == Some(&json!("AWS::Lambda::EventSourceMapping")))
            .map(|(k, _)| k)
            .collect();
        if plan.kind == EnvKind::Local {
            // moto runs a mapping in Docker on every write, fails and empties the stream; the local engine
            // polls the stream itself with the plan's settings instead.
            for m in mappings {
                self.push(m, "kind", "a local stack must not have an event source mapping: the local endpoint empties the stream when one exists".into());
            }
            return;
        }
        if mappings.iter().any(|m| *m != id) {
            self.push(
                id,
                key,
                format!("only one event source mapping, `{id}`, is expected; found {mappings:?}"),
            );
        }
        let Some(r) = resources.get(id) else {
            self.push(
                id,
                key,
                "missing: the projector would never see the events stream".into(),
            );
            return;
        };
        let sm = &plan.stream_mapping;
        let props = &r["Properties"];
        for (prop, want, k) in planned_mapping_properties(sm) {
            if props.get(prop) != Some(&want) {
                self.push(
                    id,
                    k,
                    format!(
                        "{prop} must be {want}, found {}",
                        props.get(prop).unwrap_or(&Json::Null)
                    ),
                );
            }
        }
        // Unbounded values are refused even if the plan were bypassed: they let one record block a shard.
        for prop in ["MaximumRetryAttempts", "MaximumRecordAgeInSeconds"] {
            if props
                .get(prop)
                .and_then(Json::as_i64)
                .is_some_and(|v| v < 0)
            {
                self.push(
                    id,
                    key,
                    format!("{prop} is unbounded (-1): a poison record would block its shard"),
                );
            }
        }
        if !strings_of(props.get("FunctionResponseTypes"))
            .iter()
            .any(|s| s == "ReportBatchItemFailures")
        {
            self.push(id, "functions.projector", "FunctionResponseTypes must include ReportBatchItemFailures: the projector reports partial batch failures".into());
        }
        if props.pointer("/DestinationConfig/OnFailure/Destination")
            != Some(&json!({"Fn::GetAtt": ["ProjectorDeadLetterQueue", "Arn"]}))
        {
            self.push(id, key, "the on-failure destination must be the ProjectorDeadLetterQueue, so given-up records are kept".into());
        }
    }

    fn api(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let apigw: Vec<&String> = resources
            .iter()
            .filter(|(_, r)| resource_type_of(r).starts_with("AWS::ApiGatewayV2::"))
            .map(|(k, _)| k)
            .collect();
        if plan.kind == EnvKind::Local {
            for id in apigw {
                self.push(id, "kind", "a local stack must not have API Gateway v2 resources: the local endpoint ignores them (the local gateway serves the routes)".into());
            }
            return;
        }
        self.expect_type(resources, "HttpApi", "AWS::ApiGatewayV2::Api", "api");
        self.api_routes(plan, resources);
        self.api_integrations(plan, resources);
        self.api_stage(resources);
    }

    /// Each planned route: present, targeting its function's integration, authorized as planned.
    fn api_routes(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let routes: BTreeMap<String, &Json> = resources
            .iter()
            .filter(|(_, r)| resource_type_of(r) == "AWS::ApiGatewayV2::Route")
            .filter_map(|(_, r)| {
                Some((r.pointer("/Properties/RouteKey")?.as_str()?.to_string(), r))
            })
            .collect();
        for route in &plan.api.routes {
            let rid = route_logical_id(route);
            let Some(r) = routes.get(&route.route_key()) else {
                self.push(
                    &rid,
                    "api",
                    format!(
                        "route `{}` is missing; the {} function serves it",
                        route.route_key(),
                        route.function
                    ),
                );
                continue;
            };
            let integration = format!("{}Integration", route.function.logical_prefix());
            if r.pointer("/Properties/Target")
                != Some(&json!({"Fn::Sub": format!("integrations/${{{integration}}}")}))
            {
                self.push(
                    &rid,
                    "api",
                    format!("route `{}` must target {integration}", route.route_key()),
                );
            }
            let wants_jwt = plan.api.jwt.is_some() && route.path != "/health";
            let auth = r
                .pointer("/Properties/AuthorizationType")
                .and_then(Json::as_str)
                .unwrap_or("NONE");
            if wants_jwt != (auth == "JWT") {
                self.push(
                    &rid,
                    "api.jwt",
                    format!(
                        "AuthorizationType must be {}",
                        if wants_jwt { "JWT" } else { "NONE" }
                    ),
                );
            }
        }
    }

    /// Each integration: API Gateway v2 payloads through AWS_PROXY, to the function's live alias, which API
    /// Gateway may invoke.
    fn api_integrations(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        for (id, r) in resources {
            if resource_type_of(r) != "AWS::ApiGatewayV2::Integration" {
                continue;
            }
            let p = &r["Properties"];
            if p.get("PayloadFormatVersion") != Some(&json!("2.0")) {
                self.push(id, "api", "PayloadFormatVersion must be \"2.0\": the handlers parse API Gateway v2 events".into());
            }
            if p.get("IntegrationType") != Some(&json!("AWS_PROXY")) {
                self.push(id, "api", "IntegrationType must be AWS_PROXY".into());
            }
        }
        // Every function behind a route can be invoked by API Gateway, through its live alias (never
        // $LATEST: a deploy shifts traffic between versions there, and `rollback` moves it back).
        for f in FunctionName::ALL
            .into_iter()
            .filter(|f| plan.api.routes.iter().any(|r| r.function == *f))
        {
            let fid = format!("{}LiveAlias", f.logical_prefix());
            let integration = format!("{}Integration", f.logical_prefix());
            if let Some(i) = resources.get(&integration)
                && i.pointer("/Properties/IntegrationUri") != Some(&json!({"Ref": fid}))
            {
                self.push(
                    &integration,
                    "api",
                    format!(
                        "IntegrationUri must be {{\"Ref\":\"{fid}\"}} (the live alias), found {}",
                        i.pointer("/Properties/IntegrationUri")
                            .unwrap_or(&Json::Null)
                    ),
                );
            }
            let has_permission = resources.values().any(|r| {
                resource_type_of(r) == "AWS::Lambda::Permission"
                    && r.pointer("/Properties/FunctionName") == Some(&json!({"Ref": fid}))
                    && r.pointer("/Properties/Principal")
                        == Some(&json!("apigateway.amazonaws.com"))
            });
            if !has_permission {
                self.push(
                    &format!("{}ApiPermission", f.logical_prefix()),
                    "api",
                    format!("API Gateway has no permission to invoke {fid}"),
                );
            }
        }
    }

    /// The stage: auto-deployed, writing access logs.
    fn api_stage(&mut self, resources: &Map<String, Json>) {
        if let Some(stage) = resources.get("HttpApiStage") {
            if stage.pointer("/Properties/AutoDeploy") != Some(&json!(true)) {
                self.push(
                    "HttpApiStage",
                    "api.stage_name",
                    "the stage must auto-deploy so route changes go live with the stack".into(),
                );
            }
            if stage
                .pointer("/Properties/AccessLogSettings/DestinationArn")
                .is_none()
            {
                self.push(
                    "HttpApiStage",
                    "api",
                    "the stage must write access logs (AccessLogSettings) so requests can be traced".into(),
                );
            }
        } else {
            self.push(
                "HttpApiStage",
                "api.stage_name",
                "the HTTP API has no stage".into(),
            );
        }
    }

    /// On AWS every function role carries the permissions boundary the CI bootstrap creates: the deploy role
    /// may create or change a role only with it attached, so a role without it would fail to deploy.
    fn boundaries(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        if plan.kind != EnvKind::Aws {
            return;
        }
        let wanted = format!(
            "arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:policy/{}",
            permissions_boundary_name(&plan.stack_name)
        );
        for f in FunctionName::ALL {
            let id = format!("{}Role", f.logical_prefix());
            let Some(r) = resources.get(&id) else {
                continue;
            };
            if r.pointer("/Properties/PermissionsBoundary/Fn::Sub") != Some(&json!(wanted)) {
                self.push(
                    &id,
                    &format!("functions.{f}"),
                    format!("the role must carry the permissions boundary {wanted}: the deploy role may create roles only with it"),
                );
            }
        }
    }

    /// The role CodeDeploy shifts the aliases with: exactly [`CODEDEPLOY_ROLE_ACTIONS`], on the stack's own
    /// functions (their aliases) and alarms.
    fn codedeploy_role(&mut self, r: &Json) {
        let key = "deployment";
        let mut statements = Vec::new();
        if let Some(Json::Array(policies)) = r.pointer("/Properties/Policies") {
            for p in policies {
                statements.extend(statements_of(p.get("PolicyDocument")));
            }
        }
        if r.pointer("/Properties/ManagedPolicyArns").is_some() {
            self.push(
                CODEDEPLOY_ROLE,
                key,
                "managed policies are not allowed: their permissions are not reviewed here".into(),
            );
        }
        for s in statements {
            for a in strings_of(s.get("Action")) {
                if !CODEDEPLOY_ROLE_ACTIONS.contains(&a.as_str()) {
                    self.push(
                        CODEDEPLOY_ROLE,
                        key,
                        format!(
                            "action `{a}` is not one CodeDeploy needs to shift a Lambda alias ({})",
                            CODEDEPLOY_ROLE_ACTIONS.join(", ")
                        ),
                    );
                }
            }
            let items = match s.get("Resource").cloned().unwrap_or(Json::Null) {
                Json::Array(a) => a,
                other => vec![other],
            };
            for item in items {
                let mut targets = Vec::new();
                collect_refs(&item, &mut |t, _| {
                    targets.push(t.split('.').next().unwrap_or("").to_string())
                });
                let own = |t: &String| {
                    FunctionName::ALL
                        .iter()
                        .any(|f| *t == format!("{}Function", f.logical_prefix()))
                        || (t.contains("NewVersion") && t.ends_with("Alarm"))
                };
                if targets.is_empty() || !targets.iter().all(own) {
                    self.push(CODEDEPLOY_ROLE, key, format!("resource {item} is not one of the stack's function aliases or deployment alarms"));
                }
            }
        }
    }

    /// With `deployment.strategy` canary or linear (AWS), every live alias is updated by CodeDeploy through its
    /// function's deployment group, which rolls back on the new version's alarms; otherwise nothing of CodeDeploy.
    fn deployment(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let key = "deployment.strategy";
        let codedeploy = plan.kind == EnvKind::Aws && plan.deployment.uses_codedeploy();
        if !codedeploy {
            for (id, r) in resources {
                if resource_type_of(r).starts_with("AWS::CodeDeploy::")
                    || r.get("UpdatePolicy").is_some()
                {
                    self.push(id, key, "the deployment strategy is all_at_once (or the environment is local): no CodeDeploy resource or UpdatePolicy".into());
                }
            }
            return;
        }
        for f in FunctionName::ALL {
            let p = f.logical_prefix();
            let (alias, group) = (format!("{p}LiveAlias"), format!("{p}DeploymentGroup"));
            let Some(a) = resources.get(&alias) else {
                continue;
            };
            if a.pointer("/UpdatePolicy/CodeDeployLambdaAliasUpdate/DeploymentGroupName")
                != Some(&json!({"Ref": group}))
            {
                self.push(&alias, key, format!("the alias must be updated by CodeDeploy: UpdatePolicy.CodeDeployLambdaAliasUpdate.DeploymentGroupName = {{\"Ref\":\"{group}\"}}"));
            }
            let Some(g) = resources.get(&group) else {
                self.push(
                    &group,
                    key,
                    "missing: the function's traffic shift has no deployment group".into(),
                );
                continue;
            };
            let props = &g["Properties"];
            if props.get("DeploymentConfigName")
                != Some(&json!(plan.deployment.codedeploy_config()))
            {
                self.push(
                    &group,
                    key,
                    format!(
                        "DeploymentConfigName must be {} (the configured shift)",
                        plan.deployment.codedeploy_config()
                    ),
                );
            }
            let rollback_events = strings_of(props.pointer("/AutoRollbackConfiguration/Events"));
            if props.pointer("/AutoRollbackConfiguration/Enabled") != Some(&json!(true))
                || !rollback_events
                    .iter()
                    .any(|e| e == "DEPLOYMENT_STOP_ON_ALARM")
            {
                self.push(&group, key, "the shift must roll back by itself: AutoRollbackConfiguration enabled with DEPLOYMENT_STOP_ON_ALARM".into());
            }
            let alarms = props
                .pointer("/AlarmConfiguration/Alarms")
                .and_then(Json::as_array)
                .map_or(0, Vec::len);
            if props.pointer("/AlarmConfiguration/Enabled") != Some(&json!(true)) || alarms < 3 {
                self.push(&group, key, "the shift must be watched: AlarmConfiguration enabled with the new version's errors, throttles and latency alarms".into());
            }
        }
    }

    fn alarms(&mut self, plan: &Plan, resources: &Map<String, Json>) {
        let codedeploy = plan.kind == EnvKind::Aws && plan.deployment.uses_codedeploy();
        let alarms: Vec<&String> = resources
            .iter()
            .filter(|(_, r)| resource_type_of(r) == "AWS::CloudWatch::Alarm")
            .map(|(k, _)| k)
            // The deployment alarms belong to the traffic shift, whatever `alarms` says.
            .filter(|k| !(codedeploy && k.contains("NewVersion")))
            .collect();
        let wanted = plan.kind == EnvKind::Aws && plan.alarms;
        if !wanted {
            for a in alarms {
                self.push(
                    a,
                    "alarms",
                    "alarms are off for this environment (or it is local)".into(),
                );
            }
        } else if !resources.contains_key("ProjectorIteratorAgeAlarm")
            || !resources.contains_key("DeadLetterQueueDepthAlarm")
        {
            self.push(
                "ProjectorIteratorAgeAlarm",
                "alarms",
                "alarms are on: the iterator-age and dead-letter-queue alarms must exist".into(),
            );
        }
        if wanted {
            if !resources.contains_key("HttpApi5xxAlarm") {
                self.push(
                    "HttpApi5xxAlarm",
                    "alarms",
                    "alarms are on: the API's 5xx alarm must exist".into(),
                );
            }
            let topic = json!([plan.alarm_topic_arn]);
            // (Deployment alarms notify it too: a rolled-back canary is news.)
            for (id, r) in resources
                .iter()
                .filter(|(_, r)| resource_type_of(r) == "AWS::CloudWatch::Alarm")
            {
                if r.pointer("/Properties/AlarmActions") != Some(&topic) {
                    self.push(
                        id,
                        "alarm_topic_arn",
                        "the alarm must notify the configured topic (AlarmActions), or nobody learns it fired".into(),
                    );
                }
            }
        }
    }
}

/// The logical id of the role CodeDeploy assumes (rendered with a canary or linear `deployment`).
const CODEDEPLOY_ROLE: &str = "CodeDeployRole";

/// What CodeDeploy does with that role in a Lambda deployment (AWSCodeDeployRoleForLambda, minus hooks,
/// notifications and S3 AppSpecs, which the stack does not use).
pub const CODEDEPLOY_ROLE_ACTIONS: [&str; 4] = [
    "cloudwatch:DescribeAlarms",
    "lambda:GetAlias",
    "lambda:GetProvisionedConcurrencyConfig",
    "lambda:UpdateAlias",
];

fn resource_type<'a>(resources: &'a Map<String, Json>, id: &str) -> Option<&'a str> {
    resources.get(id)?.get("Type")?.as_str()
}

fn resource_type_of(r: &Json) -> &str {
    r.get("Type").and_then(Json::as_str).unwrap_or("")
}

fn attribute_types(props: &Json) -> BTreeMap<String, String> {
    props
        .get("AttributeDefinitions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some((
                a.get("AttributeName")?.as_str()?.to_string(),
                a.get("AttributeType")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn statements_of(doc: Option<&Json>) -> Vec<Json> {
    match doc.and_then(|d| d.get("Statement")) {
        Some(Json::Array(a)) => a.clone(),
        Some(s @ Json::Object(_)) => vec![s.clone()],
        _ => vec![],
    }
}

fn strings_of(v: Option<&Json>) -> Vec<String> {
    match v {
        Some(Json::String(s)) => vec![s.clone()],
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

fn visit_strings(v: &Json, f: &mut dyn FnMut(&str)) {
    match v {
        Json::String(s) => f(s),
        Json::Array(a) => a.iter().for_each(|x| visit_strings(x, f)),
        Json::Object(m) => m.values().for_each(|x| visit_strings(x, f)),
        _ => {}
    }
}

/// Calls `f(target, kind)` for every `Ref`, `Fn::GetAtt` and `${...}` in `Fn::Sub` under `v`.
fn collect_refs(v: &Json, f: &mut dyn FnMut(String, &'static str)) {
    match v {
        Json::Object(m) => {
            if let Some(Json::String(t)) = m.get("Ref") {
                f(t.clone(), "Ref");
            }
            if let Some(Json::Array(a)) = m.get("Fn::GetAtt")
                && let Some(Json::String(t)) = a.first()
            {
                f(t.clone(), "GetAtt");
            }
            if let Some(sub) = m.get("Fn::Sub") {
                let (text, vars) = match sub {
                    Json::String(s) => (s.as_str(), None),
                    Json::Array(a) => (
                        a.first().and_then(Json::as_str).unwrap_or(""),
                        a.get(1).and_then(Json::as_object),
                    ),
                    _ => ("", None),
                };
                for var in sub_variables(text) {
                    if !vars.is_some_and(|m| m.contains_key(&var)) {
                        f(var, "Sub");
                    }
                }
            }
            for x in m.values() {
                collect_refs(x, f);
            }
        }
        Json::Array(a) => a.iter().for_each(|x| collect_refs(x, f)),
        _ => {}
    }
}

/// `${Name}` and `${Res.Attr}` variables of a Sub string (`${!Literal}` is an escape, not a variable).
fn sub_variables(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let var = &after[..end];
        if !var.starts_with('!') {
            out.push(var.trim().to_string());
        }
        rest = &after[end + 1..];
    }
    out
}

/// The config key that produced a resource or output, for violations found by generic rules.
fn config_key_of(owner: &str) -> &'static str {
    let id = owner.strip_prefix("Outputs.").unwrap_or(owner);
    for f in FunctionName::ALL {
        if id.starts_with(f.logical_prefix())
            && !id.starts_with("ProjectorEventSourceMapping")
            && !id.starts_with("ProjectorDeadLetterQueue")
            && !id.starts_with("ProjectorIteratorAge")
        {
            return match f {
                FunctionName::Command => "functions.command",
                FunctionName::Query => "functions.query",
                FunctionName::Projector => "functions.projector",
            };
        }
    }
    match id {
        _ if id.starts_with("EventsTable") || id.starts_with("EventsStream") => "tables.events",
        _ if id.starts_with("ProjectionsTable") => "tables.projections",
        _ if id.starts_with("ProjectorEventSourceMapping") || id.contains("DeadLetterQueue") => {
            "stream_mapping"
        }
        _ if id.starts_with("HttpApi") || id.starts_with("Route") || id == "ApiUrl" => "api",
        _ if id.ends_with("Alarm") => "alarms",
        _ => "templates/",
    }
}

/// The event source mapping's properties as the plan sets them: (property, value, the config key behind it).
fn planned_mapping_properties(sm: &StreamMapping) -> [(&'static str, Json, &'static str); 9] {
    [
        (
            "EventSourceArn",
            json!({"Fn::GetAtt": ["EventsTable", "StreamArn"]}),
            "tables.events",
        ),
        (
            "FunctionName",
            json!({"Ref": "ProjectorLiveAlias"}),
            "functions.projector",
        ),
        (
            "BatchSize",
            json!(sm.batch_size),
            "stream_mapping.batch_size",
        ),
        (
            "MaximumBatchingWindowInSeconds",
            json!(sm.maximum_batching_window_seconds),
            "stream_mapping.maximum_batching_window_seconds",
        ),
        (
            "MaximumRetryAttempts",
            json!(sm.maximum_retry_attempts),
            "stream_mapping.maximum_retry_attempts",
        ),
        (
            "MaximumRecordAgeInSeconds",
            json!(sm.maximum_record_age_seconds),
            "stream_mapping.maximum_record_age_seconds",
        ),
        (
            "BisectBatchOnFunctionError",
            json!(sm.bisect_batch_on_function_error),
            "stream_mapping.bisect_batch_on_function_error",
        ),
        (
            "ParallelizationFactor",
            json!(1),
            "stream_mapping.parallelization_factor",
        ),
        (
            "StartingPosition",
            json!(match sm.starting_position {
                StartingPosition::TrimHorizon => "TRIM_HORIZON",
                StartingPosition::Latest => "LATEST",
            }),
            "stream_mapping.starting_position",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_variables_skip_escapes() {
        assert_eq!(sub_variables("a${X}b${!Lit}c${Y.Arn}"), vec!["X", "Y.Arn"]);
    }
}
