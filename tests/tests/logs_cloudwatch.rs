//! `cargo xtask logs` on AWS environments reads CloudWatch Logs through `deployer::logs`. These tests run it
//! against the local AWS endpoint (moto, started through `local_engine::endpoint`, which implements
//! CreateLogGroup/PutLogEvents/FilterLogEvents): two functions with two streams each, more events than a page,
//! merged by timestamp; a group that does not exist is "no logs yet"; a follow poll returns only new events,
//! once. A last test runs the CLI for `dev` without AWS credentials (no network is touched) and checks the error.
//!
//! One moto serves all tests of this binary (`tests::moto::shared`); every test uses its own log groups.

use std::process::Command;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use deployer::logs::{LogGroup, Reader};
use stack::FunctionName;

use tests::moto::{SharedMoto as Moto, shared as moto};

/// The Logs client the tool builds (`Clients::from_sdk_config`), pointed at moto. A client per test: each
/// #[tokio::test] has its own runtime and the client's connections belong to it.
async fn client(moto: &Moto) -> Client {
    deployer::aws::Clients::from_sdk_config(&moto.endpoint.sdk_config().await).logs
}

fn group(prefix: &str, function: FunctionName) -> LogGroup {
    LogGroup {
        function,
        name: format!("/aws/lambda/{prefix}-{function}"),
    }
}

async fn create(client: &Client, group: &LogGroup, streams: &[&str]) {
    client
        .create_log_group()
        .log_group_name(&group.name)
        .send()
        .await
        .unwrap();
    for s in streams {
        client
            .create_log_stream()
            .log_group_name(&group.name)
            .log_stream_name(*s)
            .send()
            .await
            .unwrap();
    }
}

/// Puts `(timestamp, message)` events, in order, into one stream.
async fn put(client: &Client, group: &LogGroup, stream: &str, events: &[(i64, String)]) {
    let mut req = client
        .put_log_events()
        .log_group_name(&group.name)
        .log_stream_name(stream);
    for (ts, message) in events {
        req = req.log_events(
            InputLogEvent::builder()
                .timestamp(*ts)
                .message(message)
                .build()
                .unwrap(),
        );
    }
    let out = req.send().await.unwrap();
    assert!(
        out.rejected_log_events_info().is_none(),
        "moto rejected events: {out:?}"
    );
}

/// A minute ago: recent enough for PutLogEvents (which refuses events older than 14 days).
fn base_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() - 60_000
}

/// `(function, milliseconds after base, stream, message)` of each line.
fn lines(batch: &deployer::logs::Batch, base: i64) -> Vec<(FunctionName, i64, String, String)> {
    batch
        .lines
        .iter()
        .map(|l| {
            (
                l.function,
                l.timestamp_ms - base,
                l.stream.clone(),
                l.message.clone(),
            )
        })
        .collect()
}

/// Events at `base + offset` with messages `<label> +<offset>`.
fn events(base: i64, label: &str, offsets: &[i64]) -> Vec<(i64, String)> {
    offsets
        .iter()
        .map(|o| (base + o, format!("{label} +{o}\n")))
        .collect()
}

#[tokio::test]
async fn every_page_of_two_functions_is_read_and_merged_by_timestamp() {
    let moto = moto().await;
    let client = client(&moto).await;
    let (command, query, projector) = (
        group("merge", FunctionName::Command),
        group("merge", FunctionName::Query),
        group("merge", FunctionName::Projector),
    );
    create(&client, &command, &["c-1", "c-2"]).await;
    create(&client, &query, &["q-1", "q-2"]).await;
    let base = base_ms();
    // Two instances per function writing interleaved; one millisecond shared across groups and streams.
    put(
        &client,
        &command,
        "c-1",
        &events(base, "c1", &[0, 20, 40, 60]),
    )
    .await;
    put(&client, &command, "c-2", &events(base, "c2", &[10, 30, 50])).await;
    put(&client, &query, "q-1", &events(base, "q1", &[5, 30])).await;
    put(&client, &query, "q-2", &events(base, "q2", &[15, 45, 70])).await;

    let mut reader =
        Reader::new(vec![command.clone(), query.clone(), projector.clone()]).page_size(2);
    let batch = reader.read(&client, base - 1000, None).await.unwrap();
    let got = lines(&batch, base);
    let expected: Vec<(FunctionName, i64, String, String)> = [
        (FunctionName::Command, 0, "c-1", "c1"),
        (FunctionName::Query, 5, "q-1", "q1"),
        (FunctionName::Command, 10, "c-2", "c2"),
        (FunctionName::Query, 15, "q-2", "q2"),
        (FunctionName::Command, 20, "c-1", "c1"),
        // Same millisecond: the groups' order (command before query).
        (FunctionName::Command, 30, "c-2", "c2"),
        (FunctionName::Query, 30, "q-1", "q1"),
        (FunctionName::Command, 40, "c-1", "c1"),
        (FunctionName::Query, 45, "q-2", "q2"),
        (FunctionName::Command, 50, "c-2", "c2"),
        (FunctionName::Command, 60, "c-1", "c1"),
        (FunctionName::Query, 70, "q-2", "q2"),
    ]
    .into_iter()
    .map(|(f, o, s, label)| (f, o, s.to_string(), format!("{label} +{o}\n")))
    .collect();
    assert_eq!(got, expected);
    // 7 command events in pages of 2 (4 requests), 5 query events (3), one for the missing projector group.
    assert_eq!(batch.requests, 8, "every page was read");
    assert_eq!(
        batch.no_logs_yet,
        vec![projector.clone()],
        "no logs yet, no error"
    );

    // The last N lines of each function, still merged by timestamp.
    let tail = Reader::new(vec![command, query, projector])
        .page_size(2)
        .read(&client, base - 1000, Some(2))
        .await
        .unwrap();
    let got: Vec<(FunctionName, i64)> =
        lines(&tail, base).into_iter().map(|l| (l.0, l.1)).collect();
    assert_eq!(
        got,
        [
            (FunctionName::Query, 45),
            (FunctionName::Command, 50),
            (FunctionName::Command, 60),
            (FunctionName::Query, 70),
        ]
    );
}

#[tokio::test]
async fn a_follow_poll_returns_only_new_events_once() {
    let moto = moto().await;
    let client = client(&moto).await;
    let (command, projector) = (
        group("follow", FunctionName::Command),
        group("follow", FunctionName::Projector),
    );
    create(&client, &command, &["a", "b"]).await;
    let base = base_ms();
    put(&client, &command, "a", &events(base, "a", &[0, 100, 200])).await;
    put(&client, &command, "b", &events(base, "b", &[150])).await;

    let mut reader = Reader::new(vec![command.clone(), projector.clone()]).page_size(2);
    let first = reader.read(&client, base - 1000, Some(2)).await.unwrap();
    let got: Vec<i64> = first.lines.iter().map(|l| l.timestamp_ms - base).collect();
    assert_eq!(got, [150, 200], "the last 2 lines first");
    assert_eq!(first.no_logs_yet, vec![projector.clone()]);

    // Nothing new: nothing printed twice (the poll re-reads the last seconds on purpose).
    let quiet = reader.poll(&client).await.unwrap();
    assert_eq!(quiet.lines, vec![], "no duplicates");

    // New events: one in the same millisecond as the newest seen, one later, one stamped earlier than the
    // newest seen but arriving now (another instance's late ingestion), and the projector's first invocation.
    put(&client, &command, "b", &events(base, "b", &[200, 300])).await;
    put(&client, &command, "a", &events(base, "late-a", &[180])).await;
    create(&client, &projector, &["p"]).await;
    put(&client, &projector, "p", &events(base, "p", &[250])).await;
    let second = reader.poll(&client).await.unwrap();
    let got: Vec<(FunctionName, i64, String)> = second
        .lines
        .iter()
        .map(|l| (l.function, l.timestamp_ms - base, l.message.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (FunctionName::Command, 180, "late-a +180\n".to_string()),
            (FunctionName::Command, 200, "b +200\n".to_string()),
            (FunctionName::Projector, 250, "p +250\n".to_string()),
            (FunctionName::Command, 300, "b +300\n".to_string()),
        ]
    );
    assert!(second.no_logs_yet.is_empty());
    assert_eq!(reader.poll(&client).await.unwrap().lines, vec![]);
}

use tests::cli::xtask_binary as xtask_bin;
use tests::repo_root;

#[test]
fn logs_for_an_aws_env_without_credentials_says_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(xtask_bin());
    cmd.args(["logs", "--env", "dev", "--function", "command"])
        .current_dir(repo_root())
        // No credentials anywhere in the standard chain, and no instance metadata lookup: nothing leaves
        // this machine.
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_ENDPOINT_URL",
        "XTASK_ENV",
        "XTASK_CONFIG_DIR",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("DispatchFailure"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(
            "error: reading the CloudWatch logs of `dev` (region eu-west-1, account 111111111111): no AWS credentials for `dev`: tried the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE), ~/.aws/config and ~/.aws/credentials, web identity, SSO and the container/instance metadata\nconfigure credentials (`aws configure sso` then --profile <name>, or AWS_PROFILE) and retry; -v shows what each source answered"
        ),
        "{stderr}"
    );
}
