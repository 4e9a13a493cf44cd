//! Every benchmark, run at a tiny size: a benchmark that no longer runs (an API it calls changed, a route it
//! reads moved, the domain it writes changed) fails here instead of on the day someone wants its figures.
//! Nothing here checks a speed (figures depend on the machine; speed goals live in docs/benchmarks.md): each
//! test checks that its benchmark produced every figure it promises, and the counts that are the design's.
//!
//! The benchmarks start servers and whole `cargo xtask` processes of their own; one runs at a time.

use bench::OutputFormat;

/// One benchmark at a time: each starts its own endpoint, engine or whole processes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn store_reports_every_figure_and_two_requests_per_append() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = bench::store::run(&bench::store::Args {
        rounds: 1,
        histories: vec![2, 5],
        batch: 3,
        aggregate: None,
        output: OutputFormat::Json,
    })
    .await
    .expect("bench store runs");
    let what: Vec<(&str, Option<u64>)> = report
        .figures
        .iter()
        .map(|f| (f.what.as_str(), f.history))
        .collect();
    assert_eq!(
        what,
        [
            ("single-event append", Some(2)),
            ("single-event append with commandId", Some(2)),
            ("single-event append", Some(5)),
            ("single-event append with commandId", Some(5)),
            ("3-event batch append", Some(5)),
            ("projected batch: 3 records of 1 aggregate", None),
            ("projected batch: 100 records of 10 aggregates", None),
        ]
    );
    // The append's design (ARCHITECTURE.md): one read of the head and one transaction, whatever the history.
    for f in report.figures.iter().filter(|f| f.what.contains("append")) {
        assert_eq!(f.requests, 2.0, "{f:?}");
        assert!(f.write_units > 0.0 && f.read_units > 0.0, "{f:?}");
    }
    assert!(report.event_bytes > 0);
    assert!(report.to_string().contains("| single-event append | 5 |"));
}

#[tokio::test(flavor = "multi_thread")]
async fn store_with_an_aggregate_that_declares_a_view_counts_the_view_rows() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = bench::store::run(&bench::store::Args {
        rounds: 1,
        histories: vec![2],
        batch: 3,
        aggregate: Some("account".into()),
        output: OutputFormat::Json,
    })
    .await
    .expect("bench store --aggregate account runs");
    assert_eq!(report.aggregate, "account");
    // The account declares `accounts_by_owner`: the projector writes each aggregate's read model and its
    // view row once per batch, so 3 requests per aggregate (GetItem, 2 PutItem); appends do not change.
    let projected: Vec<(&str, f64)> = report
        .figures
        .iter()
        .filter(|f| f.what.starts_with("projected"))
        .map(|f| (f.what.as_str(), f.requests))
        .collect();
    assert_eq!(
        projected,
        [
            ("projected batch: 3 records of 1 aggregate", 3.0),
            ("projected batch: 100 records of 10 aggregates", 30.0),
        ],
        "{report}"
    );
    for f in report.figures.iter().filter(|f| f.what.contains("append")) {
        assert_eq!(f.requests, 2.0, "{f:?}");
    }
    let unknown = bench::store::run(&bench::store::Args {
        rounds: 1,
        histories: vec![2],
        batch: 3,
        aggregate: Some("invoice".into()),
        output: OutputFormat::Json,
    })
    .await
    .expect_err("an unregistered aggregate type is refused");
    assert!(
        unknown
            .to_string()
            .contains("`--aggregate invoice` is not a registered aggregate type"),
        "{unknown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_reports_full_noop_and_teardown() {
    let _one = ONE_AT_A_TIME.lock().await;
    let figures = bench::deploy::deploy_figures(1)
        .await
        .expect("bench deploy runs");
    assert_eq!(figures.rounds, 1);
    assert!(figures.zip_bytes > 0);
    for ms in [
        figures.full_deploy_ms,
        figures.noop_deploy_ms,
        figures.teardown_ms,
    ] {
        assert!(ms > 0.0, "{figures:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hotswap_reports_one_and_three_functions() {
    let _one = ONE_AT_A_TIME.lock().await;
    let figures = bench::deploy::hotswap_figures(1)
        .await
        .expect("bench hotswap runs");
    let changed: Vec<usize> = figures.0.iter().map(|r| r.changed_functions).collect();
    assert_eq!(changed, [1, 3]);
    for r in &figures.0 {
        assert_eq!(r.rounds, 1);
        assert!(
            r.full_deploy_ms_median > 0.0 && r.hotswap_ms_median > 0.0,
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_times_whole_processes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = bench::cli::run(&bench::cli::Args {
        rounds: 1,
        cold: false,
        output: OutputFormat::Json,
    })
    .await
    .expect("bench cli runs");
    assert_eq!(report.rounds, 1);
    assert!(report.full_deploy.ms > 0.0 && report.noop_deploy_ms > 0.0);
    assert!(report.status_ms > 0.0 && report.teardown_ms > 0.0);
    assert!(report.full_deploy.first_output_ms.is_some());
    assert!(report.cold_first_deploy.is_none());
}

/// `bench local` the way docs/benchmarks.md runs it: `cargo xtask bench local` (the xtask hands it to the
/// bench binary) against a deployed `local` environment, here a sandbox of its own.
#[tokio::test(flavor = "multi_thread")]
async fn local_measures_gateway_host_cargo_lambda_and_projection_lag() {
    let _one = ONE_AT_A_TIME.lock().await;
    let sandbox = bench::cli::UserSandbox::new(&bench::repo_root()).unwrap();
    sandbox.run(&["deploy"]).expect("the sandbox deploys");
    let out = sandbox
        .stdout(&[
            "bench",
            "local",
            "--samples",
            "3",
            "--lag-events",
            "2",
            "--output",
            "json",
        ])
        .expect("`cargo xtask bench local` runs");
    let report: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bench local prints one JSON document ({e}):\n{out}"));
    for figure in [
        "gateway_health",
        "direct_invoke_health",
        "projection_lag",
        "cargo_lambda_watch",
    ] {
        assert!(
            report[figure]["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "`{figure}` missing: {report:#}"
        );
    }
    assert_eq!(report["gateway_health"]["samples"], 3);
    assert_eq!(report["projection_lag"]["samples"], 2);
    sandbox.run(&["teardown", "--yes"]).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_times_both_sides_on_a_scratch_copy_and_leaves_the_checkout_alone() {
    let _one = ONE_AT_A_TIME.lock().await;
    let edited = bench::repo_root().join("functions/query/src/main.rs");
    let before = std::fs::read(&edited).unwrap();
    let report = bench::dev::run(&bench::dev::Args {
        rounds: 1,
        output: OutputFormat::Json,
    })
    .await
    .expect("bench dev runs");
    assert_eq!(report.xtask_dev_s.len(), 1, "{report:?}");
    assert_eq!(report.cargo_lambda_watch_s.len(), 1, "{report:?}");
    assert!(report.cargo_lambda_version.contains("cargo-lambda"));
    assert_eq!(
        std::fs::read(&edited).unwrap(),
        before,
        "bench dev must not edit the checkout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn release_reports_size_glibc_and_start_to_ready_per_function_and_architecture() {
    let _one = ONE_AT_A_TIME.lock().await;
    // arm64 binaries start on this x86_64 machine through qemu-user (installed by .ci/run): the suite checks
    // that they start as the x86_64 ones do.
    for architecture in ["x86_64", "arm64"] {
        let report = bench::release::run(&bench::release::Args {
            rounds: 1,
            architecture: architecture.into(),
            output: OutputFormat::Json,
        })
        .await
        .unwrap_or_else(|e| panic!("bench release --architecture {architecture} runs: {e:#}"));
        assert_eq!(report.architecture, architecture);
        assert_eq!(
            report.emulated_by.is_some(),
            architecture != std::env::consts::ARCH.replace("aarch64", "arm64"),
            "{report:?}"
        );
        let functions: Vec<&str> = report
            .functions
            .iter()
            .map(|r| r.function.as_str())
            .collect();
        assert_eq!(functions, ["command", "query", "projector"]);
        for r in &report.functions {
            assert!(r.binary_bytes > 0 && r.zip_bytes > 0, "{r:?}");
            assert!(r.glibc_floor.is_some(), "{r:?}");
            assert_eq!(r.rounds, 1);
            assert!(r.ready_ms_min > 0.0, "{r:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn inspector_opens_a_seeded_aggregate_and_shows_its_replay_matching() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = bench::inspector::run(&bench::inspector::Args {
        events: 60,
        rounds: 1,
        output: OutputFormat::Json,
    })
    .await
    .expect("bench inspector runs");
    assert_eq!(report.events, 60);
    assert!(report.page_bytes > 0, "{report:?}");
    for ms in [
        report.first_open_ms,
        report.replay_done_ms,
        report.warm_open_ms,
        report.deep_page_ms,
    ] {
        assert!(ms > 0.0, "{report:?}");
    }
}
