//! Rendering a [`Plan`] into a CloudFormation template with handlebars.
//!
//! The templates live in `templates/` and are embedded with `include_str!`, so neither the tests nor the
//! binary depend on the working directory. Handlebars runs in strict mode (a missing variable fails the
//! render instead of leaving a hole) with HTML escaping off; every string from the config goes through the
//! `json` helper, which writes a JSON string literal (valid YAML), so no value can inject YAML structure.
//! The view model is built from the plan's ordered data (`Vec`, `BTreeMap`), so the output is deterministic.

use handlebars::{Handlebars, handlebars_helper};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::plan::*;

/// The root template and its partials, by partial name.
const ROOT: &str = include_str!("../../templates/stack.yaml.hbs");
const PARTIALS: [(&str, &str); 7] = [
    ("tables", include_str!("../../templates/tables.yaml.hbs")),
    ("roles", include_str!("../../templates/roles.yaml.hbs")),
    (
        "functions",
        include_str!("../../templates/functions.yaml.hbs"),
    ),
    ("stream", include_str!("../../templates/stream.yaml.hbs")),
    ("api", include_str!("../../templates/api.yaml.hbs")),
    ("alarms", include_str!("../../templates/alarms.yaml.hbs")),
    (
        "deployment",
        include_str!("../../templates/deployment.yaml.hbs"),
    ),
];

/// A rendered template and the SHA-256 (hex) of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedTemplate {
    pub body: String,
    pub sha256: String,
}

impl RenderedTemplate {
    /// Wraps a body (e.g. a hand-edited one in tests), computing its digest.
    pub fn from_body(body: String) -> Self {
        let sha256 = hex::encode(Sha256::digest(body.as_bytes()));
        RenderedTemplate { body, sha256 }
    }
}

/// The templates are broken (a syntax error or a variable the view model lacks).
///
/// ### Handling
/// A bug in `templates/` or in this module, never in the user's config: report it; nothing was deployed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template `{name}` does not compile: {source}")]
    Compile {
        name: String,
        source: Box<handlebars::TemplateError>,
    },
    #[error("rendering the template failed: {0}")]
    Render(#[from] Box<handlebars::RenderError>),
}

handlebars_helper!(json_helper: |v: Json| serde_json::to_string(v).unwrap_or_default());

/// Renders the plan's CloudFormation template (YAML).
pub fn render(plan: &Plan) -> Result<RenderedTemplate, RenderError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(json_helper));
    hb.register_template_string("stack", ROOT)
        .map_err(|e| RenderError::Compile {
            name: "stack".into(),
            source: Box::new(e),
        })?;
    for (name, text) in PARTIALS {
        hb.register_partial(name, text)
            .map_err(|e| RenderError::Compile {
                name: name.into(),
                source: Box::new(e),
            })?;
    }
    let body = hb.render("stack", &view_model(plan)).map_err(Box::new)?;
    Ok(RenderedTemplate::from_body(body))
}

/// The logical id of a route: `Route` + method + path words, e.g. `RoutePostAggregatesAggregateIdEvents`,
/// `RouteGetViewsAccountsByOwnerKey`. CloudFormation allows only ASCII letters and digits in a logical id, so
/// every other character (a view name's `_`, a path's `{}`) separates words.
pub fn route_logical_id(route: &Route) -> String {
    let mut id = String::from("Route");
    id.push_str(&pascal(&route.method.as_str().to_ascii_lowercase()));
    for word in route
        .path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
    {
        id.push_str(&pascal(word));
    }
    id
}

/// The alarms on one function's new version that stop a CodeDeploy shift: errors, throttles, latency.
fn deployment_alarms(f: &FunctionPlan) -> Vec<Json> {
    let prefix = f.name.logical_prefix();
    let latency_ms = f.timeout_seconds * 800;
    vec![
        json!({
            "logical_id": format!("{prefix}NewVersionErrorsAlarm"),
            "metric": "Errors",
            "threshold": 0,
            "extended_statistic": null,
            "description": format!("The new version of the {} function reported errors during a traffic shift.", f.name),
        }),
        json!({
            "logical_id": format!("{prefix}NewVersionThrottlesAlarm"),
            "metric": "Throttles",
            "threshold": 0,
            "extended_statistic": null,
            "description": format!("Invocations of the new version of the {} function were throttled during a traffic shift.", f.name),
        }),
        json!({
            "logical_id": format!("{prefix}NewVersionLatencyAlarm"),
            "metric": "Duration",
            "threshold": latency_ms,
            "extended_statistic": "p99",
            "description": format!("The new version of the {} function took over {latency_ms} ms (80% of its timeout) at p99 during a traffic shift.", f.name),
        }),
    ]
}

fn pascal(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// What the templates see: the plan, plus the few derived values handlebars cannot compute.
fn view_model(plan: &Plan) -> Json {
    let is_aws = plan.kind == EnvKind::Aws;
    let tags: Vec<Json> = plan
        .tags
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect();
    let functions: Vec<Json> = plan
        .functions
        .iter()
        .map(|f| function_model(plan, f))
        .collect();
    let sm = &plan.stream_mapping;
    let local_url = plan
        .local
        .as_ref()
        .map(|l| format!("http://127.0.0.1:{}", l.gateway_port));
    json!({
        "env": plan.env,
        "app": plan.app,
        "stack_name": plan.stack_name,
        "description": format!("{} ({}): event-sourced CQRS API, generated by cargo xtask render from config/{}.yaml", plan.app, plan.env, plan.env),
        "is_aws": is_aws,
        "live_alias": crate::plan::LIVE_ALIAS,
        "codedeploy": (is_aws && plan.deployment.uses_codedeploy()).then(|| json!({
            "application_name": crate::plan::codedeploy_application_name(&plan.stack_name),
            "role_name": crate::plan::codedeploy_role_name(&plan.stack_name),
            "config": plan.deployment.codedeploy_config(),
        })),
        "alarms": is_aws && plan.alarms,
        "alarm_topic_arn": plan.alarm_topic_arn,
        "permissions_boundary": crate::plan::permissions_boundary_name(&plan.stack_name),
        "function_role_path": crate::plan::function_role_path(&plan.stack_name),
        "role_names": FunctionName::ALL
            .into_iter()
            .map(|f| (f.as_str().to_string(), Json::String(crate::plan::function_role_name(&plan.stack_name, f))))
            .collect::<serde_json::Map<String, Json>>(),
        "operational_deletion_policy": if plan.retains_operational_resources() { "Retain" } else { "Delete" },
        "tags": tags,
        "events_table": table_model(&plan.events_table),
        "projections_table": table_model(&plan.projections_table),
        "views_table": plan.views_table.as_ref().map(table_model),
        "functions": functions,
        "dlq_name": crate::dlq_name(&plan.stack_name),
        "stream_mapping": {
            "filter_patterns": sm.filter_patterns,
            "batch_size": sm.batch_size,
            "maximum_batching_window_seconds": sm.maximum_batching_window_seconds,
            "maximum_retry_attempts": sm.maximum_retry_attempts,
            "maximum_record_age_seconds": sm.maximum_record_age_seconds,
            "bisect_batch_on_function_error": sm.bisect_batch_on_function_error,
            "parallelization_factor": sm.parallelization_factor,
            "starting_position": match sm.starting_position { StartingPosition::TrimHorizon => "TRIM_HORIZON", StartingPosition::Latest => "LATEST" },
        },
        "api": api_model(plan),
        "local_url": local_url,
    })
}

/// One table as the templates see it.
fn table_model(t: &TablePlan) -> Json {
    json!({
        "table_name": t.table_name,
        "billing_mode": match t.billing_mode { BillingMode::PayPerRequest => "PAY_PER_REQUEST", BillingMode::Provisioned => "PROVISIONED" },
        "point_in_time_recovery": t.point_in_time_recovery,
        "deletion_protection": t.deletion_protection,
        "deletion_policy": if t.retain_on_delete { "Retain" } else { "Delete" },
    })
}

/// One function as the templates see it, with the digest of the settings a published version captures.
fn function_model(plan: &Plan, f: &FunctionPlan) -> Json {
    let environment: Vec<Json> = f
        .environment
        .iter()
        .map(|(k, v)| {
            // Table names are references so CloudFormation orders creation and the names cannot drift.
            let value = match k.as_str() {
                "EVENTS_TABLE" => "!Ref EventsTable".to_string(),
                "PROJECTIONS_TABLE" => "!Ref ProjectionsTable".to_string(),
                "VIEWS_TABLE" => "!Ref ViewsTable".to_string(),
                _ => serde_json::to_string(v).unwrap_or_default(),
            };
            json!({ "key": k, "value": value })
        })
        .collect();
    let has_routes = plan.api.routes.iter().any(|r| r.function == f.name);
    // What a published version captures besides the code: a change to any of these must publish
    // a new version (see the Version resource in templates/functions.yaml.hbs).
    // A tuple and sorted pairs, never a JSON object: an object's key order depends on whether
    // serde_json's `preserve_order` is unified into the build, and the digest must not.
    let pairs: Vec<(&str, &str)> = environment
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap_or_default(),
                e["value"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    let settings = serde_json::to_string(&(
        f.memory_mb,
        f.timeout_seconds,
        f.architecture.as_lambda(),
        pairs,
    ))
    .expect("numbers and strings serialize");
    let settings_digest = hex::encode(&Sha256::digest(settings.as_bytes())[..6]);
    json!({
        "name": f.name.as_str(),
        "prefix": f.name.logical_prefix(),
        "function_name": f.function_name,
        "memory_mb": f.memory_mb,
        "timeout_seconds": f.timeout_seconds,
        "architecture": f.architecture.as_lambda(),
        "reserved_concurrency": f.reserved_concurrency,
        "log_retention_days": f.log_retention_days,
        "environment": environment,
        "has_routes": has_routes,
        "settings_digest": settings_digest,
        "deployment_alarms": deployment_alarms(f),
        "log_group_name": crate::function_log_group_name(&f.function_name),
        "errors_alarm_description": format!("The {} function reported errors.", f.name),
        "throttles_alarm_description": format!("Invocations of the {} function were throttled.", f.name),
    })
}

/// The HTTP API as the templates see it: one integration per function that serves routes, and the routes.
fn api_model(plan: &Plan) -> Json {
    let integrations: Vec<Json> = FunctionName::ALL
        .into_iter()
        .filter(|f| plan.api.routes.iter().any(|r| r.function == *f))
        .map(|f| json!({ "prefix": f.logical_prefix() }))
        .collect();
    let routes: Vec<Json> = plan
        .api
        .routes
        .iter()
        .map(|r| {
            json!({
                "logical_id": route_logical_id(r),
                "route_key": r.route_key(),
                "prefix": r.function.logical_prefix(),
                "integration_target": format!("integrations/${{{}Integration}}", r.function.logical_prefix()),
                // Health checks must work without a token (load balancers, smoke tests).
                "authorized": plan.api.jwt.is_some() && r.path != "/health",
            })
        })
        .collect();
    let stage_path = if plan.api.stage_name == "$default" {
        String::new()
    } else {
        format!("/{}", plan.api.stage_name)
    };
    json!({
        "name": format!("{}-api", plan.stack_name),
        "cors": plan.api.cors.as_ref().map(|c| json!({
            "allow_origins": c.allow_origins,
            "allow_methods": c.allow_methods,
            "allow_headers": c.allow_headers,
            "has_max_age": c.max_age_seconds.is_some(),
            "max_age_seconds": c.max_age_seconds,
        })),
        "burst_limit": plan.api.throttling_burst_limit,
        "rate_limit": plan.api.throttling_rate_limit,
        "jwt": plan.api.jwt,
        "stage_name": plan.api.stage_name,
        "stage_path": stage_path,
        "access_log_group_name": crate::plan::access_log_group_name(&plan.stack_name),
        "access_log_retention_days": plan.functions.iter().map(|f| f.log_retention_days).max().unwrap_or(14),
        "integrations": integrations,
        "routes": routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_ids_are_readable_and_unique() {
        let ids: Vec<String> = default_routes().iter().map(route_logical_id).collect();
        assert_eq!(ids[1], "RoutePostAggregatesAggregateIdEvents");
        // A view's name (`accounts_by_owner`) becomes words: CloudFormation takes only letters and digits.
        assert!(
            ids.contains(&"RouteGetViewsAccountsByOwnerKey".to_string()),
            "{ids:?}"
        );
        for id in &ids {
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        }
        let mut dedup = ids.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), ids.len());
    }
}
