//! Hotswap seen through the API, with real code: `xtask deploy` on a fresh local environment serves
//! `GET /health` with build `dev`; rebuilding with `CQRS_BUILD_TAG` set (the query binary bakes it in) and
//! `deploy --hotswap` updates only the query function, and the gateway answers with the new tag; `status`
//! shows the drift; a full deploy of the same build reconciles it without uploading a zip again.
//! Everything goes through the real CLI with free ports in a temporary copy of `config/`.

use serde_json::Value;
use tests::cli::{LocalEnv, stdout_json};

/// `xtask <args> --output json` in `env` with `CQRS_BUILD_TAG` set to `tag` (or removed), as a user would;
/// it must succeed.
fn json(env: &LocalEnv, tag: Option<&str>, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let mut cmd = env.command(&all);
    match tag {
        Some(t) => cmd.env("CQRS_BUILD_TAG", t),
        None => cmd.env_remove("CQRS_BUILD_TAG"),
    };
    let out = cmd.output().expect("xtask runs");
    assert!(
        out.status.success(),
        "xtask {all:?} failed:\n{}",
        tests::cli::output_text(&out)
    );
    stdout_json(&out, &format!("xtask {all:?}"))
}

async fn get_health(env: &LocalEnv) -> Value {
    let resp = reqwest::get(format!("{}/health", env.url()))
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_hotswapped_query_function_answers_with_its_new_build_through_the_gateway() {
    let env = LocalEnv::new();
    json(&env, None, &["deploy", "--yes"]);
    let health = get_health(&env).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["build"], "dev", "{health}");

    // A new build of the query function only: the tag is read by the query crate at compile time.
    let tag = format!("hotswap-{}", std::process::id());
    let swap = json(&env, Some(&tag), &["deploy", "--hotswap", "--yes"]);
    assert_eq!(swap["up_to_date"], false, "{swap}");
    let swapped: Vec<&str> = swap["swapped"]
        .as_array()
        .expect("swapped functions")
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        swapped,
        ["query"],
        "only the changed function is updated: {swap}"
    );

    // The local engine was restarted on the new binary: the gateway shows the new behaviour.
    let health = get_health(&env).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["build"], tag.as_str(), "{health}");

    let status = json(&env, Some(&tag), &["status"]);
    assert!(
        status["drift"]["functions"]["query"].is_object(),
        "status shows the query function drifted: {status}"
    );

    // A full deploy of the same build reconciles the stack; the zips are already uploaded.
    let full = json(&env, Some(&tag), &["deploy", "--yes"]);
    let uploaded: Vec<&str> = full["uploads"]["uploaded"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        uploaded.iter().all(|k| !k.ends_with(".zip")),
        "no zip is uploaded again: {full}"
    );
    let status = json(&env, Some(&tag), &["status"]);
    assert!(
        status["drift"].is_null(),
        "no drift after a full deploy: {status}"
    );
    let health = get_health(&env).await;
    assert_eq!(
        health["build"],
        tag.as_str(),
        "after the full deploy: {health}\n{full}"
    );
}
