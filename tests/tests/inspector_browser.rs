//! The local inspector in a real browser (Debian's headless chromium, pinned, see `tests::tools::chromium`)
//! against a local deploy through the real CLI: `deploy` prints the inspector's URL beside the API's, and
//! `inspect` prints it without blocking; a posted event shows in its aggregate's timeline with the read model
//! and the replay side by side; a read model made wrong on purpose is flagged field by field; a poisoned
//! record shows in the dead-letter view with a link to its aggregate; a `deploy --hotswap` shows in the
//! functions view's hotswap history. Every view is screenshotted (into
//! `$INSPECTOR_SCREENSHOTS` when set, which is how `docs/inspector/*.png` are made; else a temporary
//! directory) and each screenshot is checked to be a PNG.
//!
//! The other tests here: no AWS environment has an inspector (its plan has no local settings, its template
//! names none, `inspect --env dev` refuses), and `.ci/run` installs the chromium version the tests pin.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use tests::cli::{LocalEnv, output_text as text};
use tests::repo_root;

/// Loads `url` in headless chromium and returns the DOM after the page's scripts ran.
fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Screenshots `url` into `file` (1400 x `height`) and checks that a PNG was written.
fn screenshot(url: &str, file: &Path, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let out = chromium(profile.path())
        .arg(format!("--screenshot={}", file.display()))
        .arg(format!("--window-size=1400,{height}"))
        .arg("--hide-scrollbars")
        .arg(url)
        .output()
        .expect("chromium runs");
    let png = std::fs::read(file).unwrap_or_default();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "chromium --screenshot {url} wrote no PNG at {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// chromium with the flags that run it headless here and in CI (root, no GPU, no network of its own).
fn chromium(profile: &Path) -> Command {
    let mut cmd = Command::new(tests::tools::chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(std::process::Stdio::null());
    cmd
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 200 ms until it returns `Some` or `limit` passes.
async fn eventually<T>(limit: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where the screenshots go: `$INSPECTOR_SCREENSHOTS` (the docs' copies) or a temporary directory.
fn screenshot_dir(tmp: &Path) -> PathBuf {
    match std::env::var_os("INSPECTOR_SCREENSHOTS") {
        Some(d) => {
            let d = PathBuf::from(d);
            std::fs::create_dir_all(&d).unwrap();
            d
        }
        None => tmp.to_path_buf(),
    }
}

#[tokio::test]
async fn the_inspector_shows_timelines_flags_wrong_read_models_and_dead_letters_in_a_browser() {
    let _ = tests::tools::chromium(); // install (or fail) before deploying anything
    let env = LocalEnv::new();
    let deploy = env.run(&["deploy"]);
    assert!(deploy.status.success(), "deploy failed:\n{}", text(&deploy));
    let printed = String::from_utf8_lossy(&deploy.stdout).to_string();
    let inspector = printed
        .lines()
        .find_map(|l| l.strip_prefix("inspector: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("deploy prints the inspector's URL:\n{}", text(&deploy)))
        .to_string();
    assert!(
        inspector.starts_with("http://127.0.0.1:") && inspector != env.url(),
        "{inspector}"
    );

    // `inspect` prints the same URL and returns at once, with no terminal and no browser to open.
    let inspect = env
        .command(&["inspect"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("BROWSER")
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", text(&inspect));
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        inspector,
        "{}",
        text(&inspect)
    );
    assert!(
        String::from_utf8_lossy(&inspect.stderr).contains("no browser to open here"),
        "{}",
        text(&inspect)
    );

    let http = reqwest::Client::new();
    let api = env.url();
    let pid = std::process::id();

    // A posted event appears in its aggregate's timeline, beside the read model and the replay.
    let ada = format!("ada-{pid}");
    let (s, v) = post(&http, format!("{api}/events"), json!({"aggregateId": ada, "eventType": "user_created", "eventData": {"name": "Ada", "email": "ada@example.com"}})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&http, format!("{api}/events"), json!({"aggregateId": ada, "eventType": "user_updated", "eventData": {"email": "ada@lovelace.org"}, "commandId": format!("cmd-{pid}")})).await;
    assert_eq!(s, 200, "{v}");
    let projected = eventually(Duration::from_secs(30), async || {
        let v: Value = http
            .get(format!("{api}/aggregates/{ada}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (v["version"] == 2).then_some(v)
    })
    .await;
    assert!(
        projected.is_some(),
        "the read model of {ada} reaches version 2"
    );
    let dom = dump_dom(&format!("{inspector}/aggregates/{ada}"));
    let timeline = section(&dom, "id=\"events\"", "</table>");
    assert!(
        timeline.contains("user_created") && timeline.contains("user_updated"),
        "both events are in the timeline:\n{timeline}"
    );
    assert!(
        timeline.contains("ada@lovelace.org") && timeline.contains(&format!("cmd-{pid}")),
        "the posted event's data and command id are shown:\n{timeline}"
    );
    assert!(
        dom.contains("id=\"read-model\"") && dom.contains("id=\"replay\""),
        "read model and replay are side by side:\n{dom}"
    );
    assert!(
        dom.contains("data-verdict=\"matches\"") && !dom.contains("class=\"differs\""),
        "a correct read model is not flagged:\n{dom}"
    );
    let listed = dump_dom(&format!("{inspector}/"));
    assert!(
        listed.contains(&format!("href=\"/aggregates/{ada}\"")),
        "the aggregate is listed:\n{listed}"
    );

    // The GSI view: events of one type, with links to their aggregates.
    let by_type = dump_dom(&format!("{inspector}/events?type=user_updated"));
    let rows = section(&by_type, "id=\"by-type\"", "</table>");
    assert!(
        rows.contains(&format!("href=\"/aggregates/{ada}\"")) && rows.contains("ada@lovelace.org"),
        "the user_updated event is listed by type:\n{rows}"
    );

    // A read model made wrong on purpose (at the version the log has) is flagged, field by field.
    let bob = format!("bob-{pid}");
    let (s, v) = post(&http, format!("{api}/events"), json!({"aggregateId": bob, "eventType": "user_created", "eventData": {"name": "Bob", "email": "bob@example.com"}})).await;
    assert_eq!(s, 200, "{v}");
    let sdk =
        local_engine::endpoint::sdk_config_for(&format!("http://127.0.0.1:{}", env.endpoint_port))
            .await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let model = eventually(Duration::from_secs(30), async || {
        let out = dynamo
            .get_item()
            .table_name("cqrs-local-projections")
            .key("aggregate_id", AttributeValue::S(bob.clone()))
            .consistent_read(true)
            .send()
            .await
            .ok()?;
        out.item
    })
    .await
    .expect("the projector writes bob's read model");
    let mut wrong: service::ReadModel = service::serde_dynamo::from_item(model).unwrap();
    wrong.state["user"]["email"] = json!("mallory@example.com");
    dynamo
        .put_item()
        .table_name("cqrs-local-projections")
        .set_item(Some(service::serde_dynamo::to_item(&wrong).unwrap()))
        .send()
        .await
        .expect("the wrong read model is written");
    let dom = dump_dom(&format!("{inspector}/aggregates/{bob}"));
    assert!(
        dom.contains("data-verdict=\"differs\"") && dom.contains("verdict flagged"),
        "the wrong read model is flagged:\n{dom}"
    );
    let compared = section(&dom, "id=\"comparison\"", "</table>");
    let differing: Vec<&str> = compared.split("<tr class=\"differs\">").skip(1).collect();
    assert_eq!(differing.len(), 1, "one field differs:\n{compared}");
    assert!(
        differing[0].contains("/user/email")
            && differing[0].contains("mallory@example.com")
            && differing[0].contains("bob@example.com"),
        "the differing field shows both values:\n{compared}"
    );

    // A poisoned record (written straight into the log) lands in the dead-letter view, with its error and a
    // link to its event.
    let poison = format!("poison-{pid}");
    dynamo
        .put_item()
        .table_name("cqrs-local-events")
        .item("aggregate_id", AttributeValue::S(poison.clone()))
        .item("version", AttributeValue::N("1".into()))
        .item("event_type", AttributeValue::S("not_an_event".into()))
        .item("timestamp", AttributeValue::S(domain::now_timestamp()))
        .send()
        .await
        .expect("poison written");
    let link = format!("href=\"/aggregates/{poison}\"");
    let dom = eventually(Duration::from_secs(90), async || {
        let dom = dump_dom(&format!("{inspector}/pipeline?refresh=off"));
        dom.contains(&link).then_some(dom)
    })
    .await
    .expect("the poisoned record appears in the dead-letter view");
    let letters = section(&dom, "id=\"dead-letters\"", "</table>");
    assert!(
        letters.contains("class=\"dead-letter\"")
            && letters.contains("RetryAttemptsExhausted")
            && letters.contains("not_an_event"),
        "the dead letter shows its condition and event:\n{letters}"
    );
    assert!(
        letters.contains("event cannot be applied") && letters.contains("not an event"),
        "the dead letter shows the projector's error:\n{letters}"
    );
    let poisoned = dump_dom(&format!("{inspector}/aggregates/{poison}"));
    assert!(
        poisoned.contains("not a readable event") && poisoned.contains("not_an_event"),
        "the link leads to the poisoned event:\n{poisoned}"
    );

    // A code swap shows in the functions view's hotswap history (`dev` records its swaps the same way; the
    // query binary bakes `CQRS_BUILD_TAG` in, so a new tag is a code change of the query alone).
    let swap = env
        .command(&["deploy", "--hotswap"])
        .env("CQRS_BUILD_TAG", "inspector")
        .output()
        .unwrap();
    assert!(swap.status.success(), "{}", text(&swap));
    let dom = dump_dom(&format!("{inspector}/functions"));
    let history = section(&dom, "id=\"hotswaps\"", "</table>");
    assert!(
        history.contains("query") && !history.contains("no swap yet"),
        "the swap is in the hotswap history:\n{history}"
    );
    assert!(
        dom.contains("id=\"release-digest\"") && dom.contains("REPORT lines"),
        "the release and the invocations are shown:\n{dom}"
    );

    // One screenshot of each view.
    let tmp = tempfile::tempdir().unwrap();
    let dir = screenshot_dir(tmp.path());
    screenshot(&format!("{inspector}/"), &dir.join("aggregates.png"), 900);
    screenshot(
        &format!("{inspector}/aggregates/{bob}"),
        &dir.join("aggregate.png"),
        800,
    );
    screenshot(
        &format!("{inspector}/events?type=user_created"),
        &dir.join("events.png"),
        600,
    );
    screenshot(
        &format!("{inspector}/pipeline?refresh=off"),
        &dir.join("pipeline.png"),
        900,
    );
    screenshot(
        &format!("{inspector}/functions"),
        &dir.join("functions.png"),
        1100,
    );

    // The inspector is read-only: anything but GET is refused, and nothing it served changed the tables.
    let refused = http
        .post(format!("{inspector}/aggregates/{bob}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 405);
    let after: service::ReadModel = service::serde_dynamo::from_item(
        dynamo
            .get_item()
            .table_name("cqrs-local-projections")
            .key("aggregate_id", AttributeValue::S(bob.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        after, wrong,
        "the inspector left the wrong read model as it was"
    );

    let down = env.run(&["teardown", "--yes"]);
    assert!(down.status.success(), "{}", text(&down));
    let gone = env.run(&["inspect", "--no-open"]);
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("not running"),
        "{}",
        text(&gone)
    );
}

/// The part of `html` from `start` to the next `end`.
fn section<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` is on the page:\n{html}"));
    let rest = &html[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[test]
fn no_aws_environment_has_an_inspector() {
    for env in ["dev", "staging", "prod"] {
        let plan = stack::config::load(&repo_root().join("config"), env).unwrap();
        assert!(
            plan.local.is_none(),
            "`{env}` has local settings, so an inspector port"
        );
        let template = stack::load_checked(&repo_root().join("config"), env)
            .unwrap()
            .1;
        assert!(
            !template.body.to_lowercase().contains("inspector"),
            "the `{env}` template names an inspector"
        );
    }
    // An AWS config that asks for one is refused.
    let dir = tempfile::tempdir().unwrap();
    let config = tests::cli::copy_config(dir.path());
    let dev = config.join("dev.yaml");
    let mut yaml = std::fs::read_to_string(&dev).unwrap();
    yaml.push_str("local:\n  gateway_port: 3030\n  endpoint_port: 5050\n  inspector_port: 3040\n");
    std::fs::write(&dev, yaml).unwrap();
    let err = stack::config::load(&config, "dev").unwrap_err().to_string();
    assert!(err.contains("local"), "{err}");
    // And `inspect` refuses an AWS environment before touching anything.
    let out = Command::new(tests::cli::xtask_binary())
        .args(["inspect", "--env", "dev", "--no-open"])
        .env("XTASK_CONFIG_DIR", repo_root().join("config"))
        .env("XTASK_STATE_DIR", dir.path().join("state"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only for local environments"),
        "{}",
        text(&out)
    );
}

#[test]
fn ci_installs_the_chromium_the_tests_pin() {
    let run = std::fs::read_to_string(repo_root().join(".ci/run")).unwrap();
    assert!(
        run.contains(&format!(
            "chromium_version=\"{}\"",
            tests::tools::CHROMIUM_VERSION
        )),
        ".ci/run installs another chromium than tests::tools::CHROMIUM_VERSION"
    );
}
