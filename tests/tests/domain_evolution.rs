//! Events can evolve without breaking stored history, and a deploy refuses a change that would break it.
//!
//! Through the real CLI against a local deploy: after a first deploy, the environment's record of its domain
//! (`domain/<env>.json` in its artifact bucket) is replaced by what an *earlier* shape of the code recorded,
//! one whose `money_deposited` also had a required `currency` field and whose user had a `user_renamed`
//! event. The next `cargo xtask deploy` must refuse (exit 3) before any change set, naming the event, the
//! field and the fix; `cargo xtask validate` fails the same way against the state directory's copy; and a
//! deploy whose recorded domain is this build's own goes through.

use serde_json::json;
use tests::cli::{LocalEnv, output_text};

#[tokio::test]
async fn a_deploy_that_would_break_stored_events_is_refused_naming_event_field_and_fix() {
    let mut env = LocalEnv::new();
    let first = env.run(&["deploy", "--yes"]);
    assert!(first.status.success(), "{}", output_text(&first));

    let plan = stack::load_checked(&env.config_dir(), "local").unwrap().0;
    let bucket = deployer::artifacts::bucket_name(&plan, None);
    let url = format!("http://127.0.0.1:{}", env.endpoint_port);
    let clients = deployer::aws::Clients::from_sdk_config(
        &local_engine::endpoint::sdk_config_in(&url, &plan.region).await,
    );
    let current = domain::registry().describe();
    let recorded = deployer::domain_guard::recorded(&clients.s3, &bucket, "local")
        .await
        .unwrap();
    assert_eq!(
        recorded.as_ref(),
        Some(&current),
        "the first deploy recorded this build's domain"
    );

    // The previous shape of the code: `money_deposited` v1 carried a `currency`, and users could be renamed.
    let mut previous = current.clone();
    for aggregate in &mut previous.aggregates {
        for event in &mut aggregate.events {
            if event.event_type == "money_deposited" {
                event.schema["properties"]["currency"] = json!({"type": "string"});
            }
        }
        if aggregate.name == "user" {
            let mut renamed = aggregate.events[0].clone();
            renamed.event_type = "user_renamed".into();
            aggregate.events.push(renamed);
        }
    }
    deployer::domain_guard::record(&clients.s3, &bucket, "local", &previous)
        .await
        .unwrap();

    let refused = env.run(&["deploy", "--yes"]);
    let text = output_text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{text}");
    assert!(text.contains("would break events already stored"), "{text}");
    assert!(
        text.contains("event `money_deposited`, field `eventData.currency`: it was removed"),
        "{text}"
    );
    assert!(
        text.contains("raise the event's `VERSION` to 2 and add an upcaster from version 1"),
        "{text}"
    );
    assert!(
        text.contains("event `user_renamed`: the event type of aggregate `user` was removed"),
        "{text}"
    );

    // `validate` (no AWS) runs the same comparison against the copy the last deploy left in the state directory.
    let copy = deployer::domain_guard::local_copy(&env.state_dir());
    assert!(
        copy.exists(),
        "deploy keeps a copy for validate at {}",
        copy.display()
    );
    std::fs::write(&copy, serde_json::to_vec(&previous).unwrap()).unwrap();
    let validate = env.run(&["validate", "--env", "local"]);
    let text = output_text(&validate);
    assert_eq!(validate.status.code(), Some(2), "{text}");
    assert!(
        text.contains("event `money_deposited`, field `eventData.currency`: it was removed"),
        "{text}"
    );

    // With this build's own domain recorded, the same deploy goes through.
    deployer::domain_guard::record(&clients.s3, &bucket, "local", &current)
        .await
        .unwrap();
    let again = env.run(&["deploy", "--yes"]);
    assert!(again.status.success(), "{}", output_text(&again));
    let down = env.run(&["teardown", "--yes"]);
    assert!(down.status.success(), "{}", output_text(&down));
    env.torn_down = true;
}
