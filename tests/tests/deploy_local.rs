//! Deploys against the local AWS endpoint (a fresh moto per test), through the same deployer code the CLI
//! uses: full deploy, no-op deploy, an update of a function setting, the data-loss guard, confirmation
//! without a terminal, teardown with and without retained tables, and a redeploy after a retaining teardown.

mod deploy_common;

use std::time::Instant;

use deploy_common::{TestEnv, tables_yaml};
use deployer::deploy::{DeployOptions, DeployRequest, DeployResult};
use deployer::teardown::TeardownOptions;
use deployer::ui::{Confirmation, RecordingUi};
use stack::FunctionName;

#[tokio::test]
async fn full_deploy_creates_the_stack_then_the_same_deploy_is_up_to_date() {
    let env = TestEnv::start("full", "").await;
    let (outcome, ui) = env.deploy(b"", |_| {}).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("deploy failed: {e}\n{}", ui.text()));
    assert_eq!(outcome.result, DeployResult::Created, "{}", ui.text());
    assert_eq!(outcome.final_status, "CREATE_COMPLETE");
    let (plan, _) = env.load();

    // The resources really exist.
    for f in FunctionName::ALL {
        let name = &plan.function(f).function_name;
        let cfg = env
            .clients
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(cfg.memory_size(), Some(256), "{name}");
    }
    assert!(env.table_exists(&plan.events_table.table_name).await);
    assert!(env.table_exists(&plan.projections_table.table_name).await);
    assert_eq!(
        outcome.outputs.get("EventsTableName"),
        Some(&plan.events_table.table_name),
        "{:?}",
        outcome.outputs
    );
    assert_eq!(
        outcome.outputs.get("ReleaseDigest"),
        Some(&outcome.release_digest)
    );
    // The zips and the manifest are in the artifact bucket under content-addressed keys.
    let uploads = outcome.uploads.as_ref().unwrap();
    assert_eq!(
        uploads.uploaded.len(),
        4,
        "three zips and the manifest: {uploads:?}"
    );
    let bucket = env.bucket(&plan);
    let manifest =
        deployer::artifacts::read_manifest(&env.clients.s3, &bucket, &outcome.release_digest)
            .await
            .unwrap();
    assert_eq!(manifest.digest(), outcome.release_digest);
    // The deployed code is the zip we built (Lambda reports base64 of its SHA-256).
    let cmd = env
        .clients
        .lambda
        .get_function()
        .function_name(&plan.function(FunctionName::Command).function_name)
        .send()
        .await
        .unwrap();
    let zip_sha = &manifest.functions[&FunctionName::Command].zip_sha256;
    assert_eq!(
        cmd.configuration().unwrap().code_sha256().unwrap(),
        deployer::promote::code_sha256_of_hex(zip_sha).unwrap()
    );
    // Progress went through the UI.
    assert!(
        ui.text().contains("creating: CREATE_COMPLETE"),
        "{}",
        ui.text()
    );

    // The same release again: "up to date", no change set, no upload.
    let started = Instant::now();
    let (again, ui2) = env.deploy(b"", |_| {}).await;
    let again = again.unwrap();
    let took = started.elapsed();
    assert_eq!(again.result, DeployResult::UpToDate, "{}", ui2.text());
    assert!(again.change_set.is_none() && again.uploads.is_none());
    assert!(again.to_string().contains("is up to date"), "{again}");
    eprintln!("no-op deploy took {took:?}");
    // JSON for CI.
    let json = serde_json::to_value(&again).unwrap();
    assert_eq!(json["result"], "up_to_date");
}

#[tokio::test]
async fn changing_a_function_setting_updates_only_what_changed() {
    let env = TestEnv::start("update", "").await;
    env.deploy(b"", |_| {}).await.0.expect("first deploy");
    env.write_config("functions:\n  command:\n    memory: 512\n");
    let (outcome, ui) = env.deploy(b"", |_| {}).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("update failed: {e}\n{}", ui.text()));
    assert_eq!(outcome.result, DeployResult::Updated);
    assert_eq!(outcome.final_status, "UPDATE_COMPLETE");
    let preview = outcome.preview.as_ref().unwrap();
    let command = preview
        .changes
        .iter()
        .find(|c| c.logical_id == "CommandFunction")
        .expect("the command function changes");
    assert!(
        command.properties.contains(&"MemorySize".to_string()),
        "{preview}"
    );
    assert!(
        preview
            .changes
            .iter()
            .all(|c| c.logical_id != "EventsTable"),
        "{preview}"
    );
    let (plan, _) = env.load();
    let cfg = env
        .clients
        .lambda
        .get_function_configuration()
        .function_name(&plan.function(FunctionName::Command).function_name)
        .send()
        .await
        .unwrap();
    assert_eq!(cfg.memory_size(), Some(512));
    assert!(
        ui.text().contains("~ CommandFunction"),
        "the preview was printed:\n{}",
        ui.text()
    );

    // New code only: the code keys change, the functions are modified through their parameters.
    let (outcome, ui) = env.deploy(b"v2", |_| {}).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("code update failed: {e}\n{}", ui.text()));
    assert_eq!(outcome.result, DeployResult::Updated);
    let preview = outcome.preview.unwrap();
    assert!(
        preview
            .parameters
            .iter()
            .any(|p| p.name == "CommandCodeKey"),
        "{preview}"
    );
    assert_eq!(outcome.uploads.unwrap().uploaded.len(), 4);
}

#[tokio::test]
async fn a_table_key_change_is_refused_without_allow_data_loss() {
    let env = TestEnv::start("guard", "").await;
    env.deploy(b"", |_| {}).await.0.expect("first deploy");
    let (plan, template) = env.load();
    let release = env.release(&plan, &template, b"");
    // The projections table's key attribute renamed: a replacement of a protected table.
    let body = replace_projections_key(&template.body);
    let bucket = env.bucket(&plan);
    let req = DeployRequest {
        plan: &plan,
        template_body: &body,
        release: &release,
        bucket: &bucket,
    };
    let ui = RecordingUi::new(Confirmation::Yes);
    let err = deployer::deploy::deploy(&env.clients, req, &DeployOptions::for_plan(&plan), &ui)
        .await
        .unwrap_err();
    assert!(matches!(err, deployer::Error::Refused(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ProjectionsTable would change KeySchema"),
        "{msg}"
    );
    assert!(msg.contains("--allow-data-loss"), "{msg}");
    // Nothing changed and the change set is gone.
    let stack = deployer::stackops::describe(&env.clients.cfn, &env.stack_name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployer::stackops::status_of(&stack), "CREATE_COMPLETE");
    let sets = env
        .clients
        .cfn
        .list_change_sets()
        .stack_name(&env.stack_name)
        .send()
        .await
        .unwrap();
    assert!(
        sets.summaries()
            .iter()
            .all(|s| s.execution_status().map(|e| e.as_str()) != Some("AVAILABLE")),
        "no change set is left to execute"
    );
}

fn replace_projections_key(body: &str) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(body).unwrap();
    let table = &doc["Resources"]["ProjectionsTable"]["Properties"];
    let old_key = table["KeySchema"][0]["AttributeName"]
        .as_str()
        .unwrap()
        .to_string();
    let out = body.replace(
        &format!("AttributeName: {old_key}"),
        "AttributeName: renamed_key",
    );
    assert_ne!(out, body, "the key attribute appears in the template");
    out
}

#[tokio::test]
async fn without_a_terminal_and_without_yes_the_deploy_refuses() {
    let env = TestEnv::start("noyes", "").await;
    let (plan, template) = env.load();
    let release = env.release(&plan, &template, b"");
    let bucket = env.bucket(&plan);
    let req = DeployRequest {
        plan: &plan,
        template_body: &template.body,
        release: &release,
        bucket: &bucket,
    };
    let mut opts = DeployOptions::for_plan(&plan);
    opts.confirm = true;
    let ui = RecordingUi::new(Confirmation::NoTerminal);
    let err = deployer::deploy::deploy(&env.clients, req, &opts, &ui)
        .await
        .unwrap_err();
    assert!(matches!(err, deployer::Error::Refused(_)), "{err}");
    assert!(err.to_string().contains("pass --yes"), "{err}");
    assert_eq!(ui.questions().len(), 1);
    assert!(
        !env.table_exists(&plan.events_table.table_name).await,
        "nothing was created"
    );
}

#[tokio::test]
async fn teardown_without_retained_tables_removes_everything() {
    let env = TestEnv::start("down", &tables_yaml(false)).await;
    env.deploy(b"", |_| {}).await.0.expect("deploy");
    let (plan, _) = env.load();
    let bucket = env.bucket(&plan);
    let ui = RecordingUi::new(Confirmation::Yes);
    let opts = TeardownOptions {
        delete_data: false,
        confirm: false,
        poll_interval: deployer::deploy::poll_interval(&plan),
        wait_timeout: deployer::stackops::DEFAULT_WAIT_TIMEOUT,
    };
    let outcome = deployer::teardown::teardown(&env.clients, &plan, &bucket, &opts, &ui)
        .await
        .unwrap();
    assert!(outcome.stack_deleted);
    assert!(outcome.retained_tables.is_empty());
    assert_eq!(outcome.deleted_bucket.as_deref(), Some(bucket.as_str()));
    assert!(!env.stack_exists().await);
    assert!(!env.table_exists(&plan.events_table.table_name).await);
    assert!(!env.table_exists(&plan.projections_table.table_name).await);
    let functions = env.clients.lambda.list_functions().send().await.unwrap();
    assert!(functions.functions().is_empty(), "functions are gone");
    assert!(
        env.clients
            .s3
            .head_bucket()
            .bucket(&bucket)
            .send()
            .await
            .is_err(),
        "the artifact bucket is gone"
    );
    // Tearing down again is harmless.
    let again = deployer::teardown::teardown(&env.clients, &plan, &bucket, &opts, &ui)
        .await
        .unwrap();
    assert!(!again.stack_deleted);
}

#[tokio::test]
async fn teardown_keeps_retained_tables_and_a_redeploy_adopts_or_explains() {
    let env = TestEnv::start("retain", &tables_yaml(true)).await;
    env.deploy(b"", |_| {}).await.0.expect("deploy");
    let (plan, _) = env.load();
    // Write a row so "the data survives" means something.
    env.clients
        .dynamodb
        .put_item()
        .table_name(&plan.events_table.table_name)
        .set_item(Some(sample_event_item(&plan)))
        .send()
        .await
        .unwrap();
    let bucket = env.bucket(&plan);
    let ui = RecordingUi::new(Confirmation::Yes);
    let opts = TeardownOptions {
        delete_data: false,
        confirm: false,
        poll_interval: deployer::deploy::poll_interval(&plan),
        wait_timeout: deployer::stackops::DEFAULT_WAIT_TIMEOUT,
    };
    let outcome = deployer::teardown::teardown(&env.clients, &plan, &bucket, &opts, &ui)
        .await
        .unwrap();
    assert!(outcome.stack_deleted);
    assert_eq!(
        outcome.retained_tables,
        // The views table follows the projections table's settings (the shipped domain declares views).
        plan.tables()
            .iter()
            .map(|(_, t)| t.table_name.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(outcome.retained_tables.len(), 3, "{outcome}");
    assert!(outcome.to_string().contains("kept table"), "{outcome}");
    assert!(!env.stack_exists().await);
    assert!(env.table_exists(&plan.events_table.table_name).await);
    assert!(env.table_exists(&plan.projections_table.table_name).await);

    // Redeploy: the retained tables are adopted (import) or the deploy refuses with exact steps.
    let (result, ui) = env.deploy(b"", |_| {}).await;
    match result {
        Ok(outcome) => {
            assert!(
                matches!(
                    outcome.result,
                    DeployResult::Updated | DeployResult::Created
                ),
                "{}",
                ui.text()
            );
            let count = env
                .clients
                .dynamodb
                .scan()
                .table_name(&plan.events_table.table_name)
                .send()
                .await
                .unwrap()
                .count();
            assert_eq!(count, 1, "the retained event is still there");
        }
        Err(err) => {
            assert!(
                matches!(err, deployer::Error::Refused(_)),
                "{err}\n{}",
                ui.text()
            );
            let msg = err.to_string();
            assert!(msg.contains(&plan.events_table.table_name), "{msg}");
            assert!(
                msg.contains("teardown --env local --delete-data --yes"),
                "{msg}"
            );
            // Following the message works: delete the data, deploy again.
            let opts = TeardownOptions {
                delete_data: true,
                ..opts
            };
            let down = deployer::teardown::teardown(&env.clients, &plan, &bucket, &opts, &ui)
                .await
                .unwrap();
            assert_eq!(down.deleted_tables.len(), plan.tables().len());
            assert!(!env.table_exists(&plan.events_table.table_name).await);
            let (again, ui) = env.deploy(b"", |_| {}).await;
            assert_eq!(
                again
                    .unwrap_or_else(|e| panic!("{e}\n{}", ui.text()))
                    .result,
                DeployResult::Created
            );
        }
    }
}

#[tokio::test]
async fn delete_data_is_refused_when_the_config_protects_the_data() {
    let env = TestEnv::start(
        "protect",
        "tables:\n  events:\n    retain_on_delete: true\n    deletion_protection: true\n",
    )
    .await;
    let (plan, _) = env.load();
    let ui = RecordingUi::new(Confirmation::Yes);
    let opts = TeardownOptions {
        delete_data: true,
        confirm: false,
        poll_interval: deployer::deploy::poll_interval(&plan),
        wait_timeout: deployer::stackops::DEFAULT_WAIT_TIMEOUT,
    };
    let err = deployer::teardown::teardown(&env.clients, &plan, &env.bucket(&plan), &opts, &ui)
        .await
        .unwrap_err();
    assert!(matches!(err, deployer::Error::Refused(_)), "{err}");
    assert!(err.to_string().contains("deletion_protection"), "{err}");
}

fn sample_event_item(
    plan: &stack::Plan,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    let _ = plan;
    use aws_sdk_dynamodb::types::AttributeValue as V;
    [
        ("aggregate_id".to_string(), V::S("user-1".into())),
        ("version".to_string(), V::N("1".into())),
        ("event_type".to_string(), V::S("UserCreated".into())),
        ("timestamp".to_string(), V::S("2026-01-01T00:00:00Z".into())),
    ]
    .into()
}
