//! A canary deploy on the local engine, through the real CLI and the real function binaries: with
//! `deployment: {strategy: canary, percent: 10}` in `local.yaml`, a deploy of a new query build (its `/health`
//! names the build) serves it to 10% of the gateway's requests while the step lasts, says so (and `status`
//! shows the split), and then deploys it; afterwards every request gets the new build. (A failing canary is rolled back: `local_canary.rs`, through
//! the same control socket with a build that cannot start.)

use serde_json::Value;
use tests::cli::{Background, LocalEnv, output_text};

const STEP_SECONDS: u64 = 8;

async fn build_of_health(client: &reqwest::Client, env: &LocalEnv) -> String {
    let resp = client
        .get(format!("{}/health", env.url()))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 200);
    let health: Value = resp.json().await.unwrap();
    health["build"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_local_canary_serves_the_new_build_to_ten_percent_of_requests_then_to_all() {
    let env = LocalEnv::new();
    let local = env.config_dir().join("local.yaml");
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&local).unwrap()).unwrap();
    yaml["deployment"] = serde_yaml::from_str(&format!(
        "{{strategy: canary, percent: 10, interval_seconds: {STEP_SECONDS}}}"
    ))
    .unwrap();
    std::fs::write(&local, serde_yaml::to_string(&yaml).unwrap()).unwrap();

    // The first deploy has nothing to shift from.
    let first = env
        .command(&["deploy", "--yes"])
        .env_remove("CQRS_BUILD_TAG")
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", output_text(&first));
    assert!(
        output_text(&first).contains("the release goes live at once"),
        "{}",
        output_text(&first)
    );
    let client = reqwest::Client::new();
    // `dev` unless another checkout sharing the target dir left its own tag in the build (cargo compares times).
    let before = build_of_health(&client, &env).await;

    // A new query build, deployed with the canary.
    let tag = format!("canary-{}", std::process::id());
    let mut cmd = env.command(&["deploy", "--yes"]);
    cmd.env("CQRS_BUILD_TAG", &tag);
    let mut deploy = Background::start(cmd);
    deploy.wait_for(
        "traffic shift: 10% of the invocations go to the new versions",
        1,
        std::time::Duration::from_secs(900),
    );
    assert!(
        deploy
            .output()
            .contains("traffic shift: new version of `query` served beside the live one"),
        "only the query function changed:\n{}",
        deploy.output()
    );
    // `status` shows the split while the step lasts.
    let status = env.run(&["status"]);
    let shown = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(status.status.success(), "{}", output_text(&status));
    assert!(
        shown.contains("live (the local engine's binaries")
            && shown.lines().any(|l| l.trim_start().starts_with("query")
                && l.contains("(90%)")
                && l.contains("(10%)")),
        "status shows query's split:\n{shown}"
    );
    let mut builds = Vec::new();
    for _ in 0..100 {
        builds.push(build_of_health(&client, &env).await);
    }
    let new = builds.iter().filter(|b| **b == tag).count();
    let old = builds.iter().filter(|b| **b == before).count();
    assert_eq!(new + old, 100, "{builds:?}");
    assert!(
        (8..=12).contains(&new),
        "about 10% of the requests reach the new build while the step lasts: {new} of 100\n{}",
        deploy.output()
    );

    let status = deploy.finish(std::time::Duration::from_secs(300));
    let text = deploy.output();
    assert!(status.success(), "the canary passes and deploys:\n{text}");
    assert!(text.contains("traffic shift: passed in"), "{text}");
    for _ in 0..10 {
        assert_eq!(
            build_of_health(&client, &env).await,
            tag,
            "after the shift every request gets the new build"
        );
    }
}
