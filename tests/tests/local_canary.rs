//! The local engine honours traffic weights: a shift asked through the real control socket serves a new binary
//! beside the live one (real function processes: the runtime probe), routes exactly the configured share of
//! invocations to it, gives it all of them once every step passed, and goes back to the live version when the
//! asking connection ends before a reload. A new version that fails is rolled back at its first failure, long
//! before its step ends, and every invocation goes to the live version again.

mod local_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use local_engine::canary::{ShiftEvent, ShiftRequest, ShiftVerdict, request_shift};
use local_engine::control::{ControlServer, DeployedSource, request_serving};
use local_engine::host::{CANARY_VERSION, Host};
use local_engine::{Engine, EngineHandle};
use local_support::*;
use serde_json::{Value, json};
use stack::{FunctionName, ShiftStep};

/// An engine hosting the probe as the query function, with its control socket in `dir`.
async fn engine(dir: &Path) -> (EngineHandle, ControlServer) {
    let functions = vec![probe_spec(
        FunctionName::Query,
        Duration::from_secs(5),
        &[("PROBE_WHO", "probe")],
    )];
    let engine = Engine::start(probe_engine(dir, "http://127.0.0.1:9", functions, vec![]))
        .await
        .expect("engine starts");
    let plan = stack::config::load(&tests::repo_root().join("config"), "local").unwrap();
    let source = DeployedSource {
        plan,
        endpoint_url: "http://127.0.0.1:9".into(),
        state_dir: dir.to_path_buf(),
        dist: dir.join("dist"),
    };
    let control = ControlServer::start(engine.host(), source).expect("control socket");
    (engine, control)
}

/// A new build of the probe: the same program with bytes appended (another digest, the same behaviour).
fn new_build(dir: &Path) -> PathBuf {
    let mut bytes = std::fs::read(probe_binary()).unwrap();
    bytes.extend_from_slice(b"a new build");
    let path = dir.join("new-build");
    write_executable(&path, &bytes);
    path
}

/// A broken build: a program that exits before it asks for work.
fn broken_build(dir: &Path) -> PathBuf {
    let path = dir.join("broken-build");
    write_executable(
        &path,
        b"#!/bin/sh\necho 'missing shared library' >&2\nexit 127\n",
    );
    path
}

fn write_executable(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Which version served an invocation of the query function, from the version the probe's process was given.
async fn served_by(host: &Host) -> String {
    let out = host
        .invoke(FunctionName::Query, serde_json::to_vec(&json!({})).unwrap())
        .await
        .expect("the invocation succeeds");
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    v["env"]["AWS_LAMBDA_FUNCTION_VERSION"]
        .as_str()
        .unwrap()
        .to_string()
}

fn shift_of(binary: PathBuf, percent: u32, seconds: u32) -> ShiftRequest {
    ShiftRequest {
        steps: vec![ShiftStep { percent, seconds }],
        binaries: BTreeMap::from([(FunctionName::Query, binary)]),
    }
}

#[tokio::test]
async fn a_ten_percent_canary_gets_every_tenth_invocation_then_all_and_ends_with_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _control) = engine(dir.path()).await;
    let host = engine.host();
    // Warm: the live version answers before the shift.
    assert_eq!(served_by(&host).await, "$LATEST");

    let request = shift_of(new_build(dir.path()), 10, 4);
    let (step_tx, step_rx) = tokio::sync::oneshot::channel();
    let state_dir = dir.path().to_path_buf();
    let shift = tokio::spawn(async move {
        let mut step_tx = Some(step_tx);
        let mut events = Vec::new();
        let outcome = request_shift(&state_dir, &request, |e| {
            if matches!(e, ShiftEvent::Step { .. })
                && let Some(tx) = step_tx.take()
            {
                let _ = tx.send(());
            }
            events.push(e.clone());
        })
        .await;
        (outcome, events)
    });
    step_rx.await.expect("the shift reaches its step");
    let mut versions = Vec::new();
    for _ in 0..100 {
        versions.push(served_by(&host).await);
    }
    let to_canary = versions.iter().filter(|v| *v == CANARY_VERSION).count();
    assert_eq!(
        to_canary, 10,
        "a 10% canary gets 10 of 100 invocations: {versions:?}"
    );
    assert_eq!(
        versions.iter().position(|v| v == CANARY_VERSION),
        Some(9),
        "spread evenly: the tenth is the first"
    );
    // What `status` shows: the live binary, and the canary's with its share.
    let serving = request_serving(dir.path())
        .await
        .expect("the engine answers");
    let query = &serving[&FunctionName::Query];
    let (canary_sha, percent) = query.canary.clone().expect("a canary during the shift");
    assert_eq!(percent, 10);
    assert_ne!(canary_sha, query.binary_sha256);

    let (outcome, events) = shift.await.unwrap();
    let (verdict, hold) = outcome.expect("the shift runs");
    let ShiftVerdict::Shifted(stats) = verdict else {
        panic!("the canary passes: {verdict:?} after {events:?}");
    };
    assert_eq!(stats[&FunctionName::Query].invocations, 10);
    assert_eq!(stats[&FunctionName::Query].errors, 0);
    assert!(
        matches!(&events[0], ShiftEvent::Started { functions } if functions == &[FunctionName::Query]),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ShiftEvent::Progress { .. })),
        "progress is reported while the step lasts: {events:?}"
    );
    // Every step passed: the new version takes every invocation while the caller holds the shift.
    for _ in 0..5 {
        assert_eq!(served_by(&host).await, CANARY_VERSION);
    }
    let serving = request_serving(dir.path()).await.unwrap();
    assert_eq!(
        serving[&FunctionName::Query].canary.as_ref().map(|c| c.1),
        Some(100)
    );
    // The caller went away without a reload (its deploy failed): back to the live version.
    drop(hold);
    let back = eventually(Duration::from_secs(10), async || {
        (host.canary_stats(FunctionName::Query).is_none()).then_some(())
    })
    .await;
    assert!(back.is_some(), "the canary ends with its connection");
    assert_eq!(served_by(&host).await, "$LATEST");
    let serving = request_serving(dir.path()).await.unwrap();
    assert_eq!(serving[&FunctionName::Query].canary, None);
    let log = std::fs::read_to_string(host.log_path(FunctionName::Query).unwrap()).unwrap();
    assert!(log.contains("CANARY 10% of the invocations go to"), "{log}");
    assert!(log.contains("START RequestId: "), "{log}");
    assert!(log.contains("Version: canary"), "{log}");
    engine.stop().await;
}

#[tokio::test]
async fn a_canary_that_fails_is_rolled_back_at_once_and_the_live_version_serves_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _control) = engine(dir.path()).await;
    let host = engine.host();
    assert_eq!(served_by(&host).await, "$LATEST");

    // A 50% step of a minute: the rollback must come from the failure, not from the clock.
    let request = shift_of(broken_build(dir.path()), 50, 60);
    let state_dir = dir.path().to_path_buf();
    let started = Instant::now();
    let shift = tokio::spawn(async move { request_shift(&state_dir, &request, |_| {}).await });
    // Invocations while the shift runs: the ones routed to the broken build fail (as they would on AWS until
    // the alarm fires), the others are served by the live version.
    let mut failed = 0;
    while !shift.is_finished() && started.elapsed() < Duration::from_secs(30) {
        match host
            .invoke(FunctionName::Query, serde_json::to_vec(&json!({})).unwrap())
            .await
        {
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    let (verdict, _hold) = shift.await.unwrap().expect("the shift runs");
    let ShiftVerdict::RolledBack {
        function,
        reason,
        stats,
    } = verdict
    else {
        panic!("a failing canary is rolled back: {verdict:?}");
    };
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "rolled back at the first failure, not at the end of the step ({:?})",
        started.elapsed()
    );
    assert_eq!(function, FunctionName::Query);
    assert!(reason.contains("failed"), "{reason}");
    assert!(stats[&FunctionName::Query].errors >= 1, "{stats:?}");
    assert!(failed >= 1, "the failure reached a caller");
    assert!(host.canary_stats(FunctionName::Query).is_none());
    for _ in 0..20 {
        assert_eq!(served_by(&host).await, "$LATEST");
    }
    // The broken build's pinned copy is gone; the live one stays.
    let pinned: Vec<_> = std::fs::read_dir(dir.path().join("code"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        pinned.is_empty(),
        "the probe engine pins nothing of its own and the broken build is pruned: {pinned:?}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_shift_of_the_binaries_already_served_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _control) = engine(dir.path()).await;
    let request = shift_of(probe_binary(), 10, 60);
    let started = Instant::now();
    let (verdict, _hold) = request_shift(dir.path(), &request, |_| {})
        .await
        .expect("the shift runs");
    assert_eq!(verdict, ShiftVerdict::Unchanged);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(engine.host().canary_stats(FunctionName::Query).is_none());
    engine.stop().await;
}
