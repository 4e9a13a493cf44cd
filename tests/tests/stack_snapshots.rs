//! Snapshot of the rendered CloudFormation template of every environment (insta).
//!
//! A template change shows up as a reviewed diff in `tests/tests/snapshots/`; CI runs with
//! `INSTA_UPDATE=no`, so an unreviewed change fails. Accept with `INSTA_UPDATE=always` after reviewing.

use std::path::PathBuf;

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

#[test]
fn rendered_template_of_every_environment_matches_its_snapshot() {
    let envs = stack::config::environments(&config_dir()).expect("config/ lists environments");
    assert_eq!(
        envs,
        ["dev", "local", "prod", "staging"],
        "a new environment needs a snapshot: add it here"
    );
    for env in envs {
        let (_, template) =
            stack::load_checked(&config_dir(), &env).unwrap_or_else(|e| panic!("{env}: {e}"));
        insta::assert_snapshot!(format!("template_{env}"), template.body);
    }
}

#[test]
fn rendering_is_deterministic_and_the_digest_is_the_sha256_of_the_body() {
    for env in stack::config::environments(&config_dir()).unwrap() {
        let plan = stack::config::load(&config_dir(), &env).unwrap();
        let a = stack::render::render(&plan).unwrap();
        let b = stack::render::render(&plan.clone()).unwrap();
        assert_eq!(a, b, "{env}: two renders of one plan differ");
        assert_eq!(a.sha256.len(), 64);
        assert_eq!(a, stack::RenderedTemplate::from_body(a.body.clone()));
        // A different plan gives a different template (the digest is not a constant).
        let mut other = plan.clone();
        other.functions[0].memory_mb += 64;
        assert_ne!(stack::render::render(&other).unwrap().sha256, a.sha256);
    }
}

#[test]
fn local_template_leaves_out_what_the_local_endpoint_cannot_create() {
    let (_, local) = stack::load_checked(&config_dir(), "local").unwrap();
    let doc = stack::template::parse(&local.body).unwrap();
    let types: Vec<String> = stack::template::resources(&doc)
        .values()
        .map(|r| r["Type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !types.iter().any(|t| t.starts_with("AWS::ApiGatewayV2::")),
        "{types:?}"
    );
    assert!(
        !types
            .iter()
            .any(|t| t == "AWS::Lambda::EventSourceMapping" || t == "AWS::CloudWatch::Alarm"),
        "{types:?}"
    );
    assert_eq!(doc["Outputs"]["ApiUrl"]["Value"], "http://127.0.0.1:3030");

    let (_, dev) = stack::load_checked(&config_dir(), "dev").unwrap();
    let doc = stack::template::parse(&dev.body).unwrap();
    let res = stack::template::resources(&doc);
    for id in [
        "HttpApi",
        "HttpApiStage",
        "ProjectorEventSourceMapping",
        "RouteGetHealth",
        "CommandIntegration",
    ] {
        assert!(res.contains_key(id), "dev lacks {id}");
    }
    assert!(
        doc["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .contains("${HttpApi}")
    );
}

#[test]
fn the_plan_carries_the_contract_other_crates_rely_on() {
    let plan = stack::config::load(&config_dir(), "local").unwrap();
    assert_eq!(plan.stack_name, "cqrs-local");
    assert_eq!(plan.region, "us-east-1");
    let local = plan.local.as_ref().unwrap();
    assert_eq!((local.gateway_port, local.endpoint_port), (3030, 5050));
    assert!(plan.deploy.hotswap);
    let names: Vec<_> = plan
        .functions
        .iter()
        .map(|f| f.function_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "cqrs-local-command",
            "cqrs-local-query",
            "cqrs-local-projector"
        ]
    );
    let env = |f| {
        plan.function(f)
            .environment
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        env(stack::FunctionName::Command),
        ["EVENTS_TABLE", "RUST_LOG"]
    );
    // The shipped domain declares views (the account's `accounts_by_owner`), so the query and the projector
    // also get the views table.
    assert_eq!(
        env(stack::FunctionName::Query),
        [
            "EVENTS_TABLE",
            "PROJECTIONS_TABLE",
            "RUST_LOG",
            "VIEWS_TABLE"
        ]
    );
    assert_eq!(
        env(stack::FunctionName::Projector),
        [
            "EVENTS_TABLE",
            "PROJECTIONS_TABLE",
            "RUST_LOG",
            "VIEWS_TABLE"
        ]
    );
    assert_eq!(
        plan.function(stack::FunctionName::Query).environment["VIEWS_TABLE"],
        "cqrs-local-views"
    );
    assert_eq!(
        plan.function(stack::FunctionName::Query).environment["PROJECTIONS_TABLE"],
        "cqrs-local-projections"
    );
    let sm = &plan.stream_mapping;
    assert_eq!(
        (
            sm.batch_size,
            sm.maximum_batching_window_seconds,
            sm.maximum_retry_attempts,
            sm.maximum_record_age_seconds
        ),
        (100, 0, 5, 3600),
        "local: no batching window (config/local.yaml), so the read model follows a write within a poll"
    );
    assert!(sm.bisect_batch_on_function_error);
    assert_eq!(sm.parallelization_factor, 1);
    assert_eq!(sm.starting_position, stack::StartingPosition::TrimHorizon);
    assert_eq!(plan.api.routes, stack::default_routes());

    let prod = stack::config::load(&config_dir(), "prod").unwrap();
    assert_eq!(prod.deploy.promote_from.as_deref(), Some("staging"));
    assert!(prod.deploy.require_smoke && !prod.deploy.hotswap && prod.alarms);
    for t in [&prod.events_table, &prod.projections_table] {
        assert!(t.retain_on_delete && t.deletion_protection && t.point_in_time_recovery);
    }
    let staging = stack::config::load(&config_dir(), "staging").unwrap();
    assert_eq!(staging.deploy.promote_from.as_deref(), Some("dev"));
    assert!(staging.deploy.require_smoke);
    assert_eq!(
        staging.role_arn.as_deref(),
        Some("arn:aws:iam::111111111111:role/cqrs-deploy-staging")
    );
}
