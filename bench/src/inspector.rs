//! `cargo xtask bench inspector`: how long the local inspector takes to open an aggregate of 10,000 events
//! (the bar: under a second), on a fresh local endpoint of its own.
//!
//! The aggregate is seeded as `bench store` seeds its histories (the domain's example events, the head
//! written by the store's own append), its read model is written as the projector would, and the inspector is served on a
//! free port exactly as the engine serves it. Timed: the first open (the timeline's first page and the read
//! model; replay starts folding every event and the page is shown once it is done or its budget is spent),
//! how long until the comparison with replay is on the page, a next open (the head says nothing was written
//! since, so replay reads nothing) and a page deep in the history (`?after=9950`, one Query from an
//! ExclusiveStartKey). Wall times on moto, the local endpoint every user runs: DynamoDB's own latency is not
//! measured here.

use std::time::{Duration, Instant};

use serde::Serialize;
use service::{Config, DynamoStore, EventStore, ReadModel};

/// Arguments of `cargo xtask bench inspector`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events of the aggregate opened.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Opens timed per warm figure (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct InspectorReport {
    pub events: u64,
    pub page_bytes: usize,
    pub first_open_ms: f64,
    /// Until the page shows the replay beside the read model (the first open starts it).
    pub replay_done_ms: f64,
    pub warm_open_ms: f64,
    pub deep_page_ms: f64,
}

impl std::fmt::Display for InspectorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "inspector: opening an aggregate of {} events (the domain's example events), page of {} bytes",
            self.events, self.page_bytes
        )?;
        writeln!(
            f,
            "  first open (timeline page 1 + read model; replay starts)           {:.0} ms",
            self.first_open_ms
        )?;
        writeln!(
            f,
            "  until the replay of every event is on the page                     {:.0} ms",
            self.replay_done_ms
        )?;
        writeln!(
            f,
            "  next open (nothing written since: replay reads nothing)            {:.0} ms (median)",
            self.warm_open_ms
        )?;
        writeln!(
            f,
            "  a page deep in the history (?after={})                            {:.0} ms (median)",
            self.events.saturating_sub(50),
            self.deep_page_ms
        )
    }
}

pub async fn run(args: &Args) -> anyhow::Result<InspectorReport> {
    anyhow::ensure!(
        args.events >= 1,
        "--events must be at least 1 (the aggregate opened needs a history)"
    );
    let tmp = tempfile::tempdir()?;
    let endpoint = local_engine::endpoint::Endpoint::start_fresh(&tmp.path().join("state")).await?;
    let result = measure(&endpoint, tmp.path(), args).await;
    endpoint.stop();
    result
}

async fn measure(
    endpoint: &local_engine::endpoint::Endpoint,
    dir: &std::path::Path,
    args: &Args,
) -> anyhow::Result<InspectorReport> {
    let sdk = endpoint.sdk_config().await;
    let client = service::aws_sdk_dynamodb::Client::new(&sdk);
    let config = Config {
        events_table: "bench-inspector-events".into(),
        projections_table: "bench-inspector-projections".into(),
    };
    service::testing::create_tables(&client, &config.events_table, &config.projections_table)
        .await
        .map_err(|e| anyhow::anyhow!("creating the benchmark tables: {e}"))?;
    let store = DynamoStore::new(client, config.clone());
    let id = format!("inspector-{}", args.events);
    eprintln!("seeding `{id}` with {} events", args.events);
    crate::store::seed(&store, &crate::store::Events::of_domain(), &id, args.events).await?;
    let (head, _) = store.read_head(&id, None).await?;
    let head = head.ok_or_else(|| anyhow::anyhow!("the seeded aggregate has no head"))?;
    store
        .put_read_model(
            &ReadModel {
                aggregate_id: id.clone(),
                aggregate_type: head.aggregate_type.clone(),
                version: head.version,
                state: head.state.clone(),
                updated_at: domain::now_timestamp(),
            },
            None,
        )
        .await?;

    let listener = local_engine::inspector::bind(0).await?;
    let url = format!("http://127.0.0.1:{}", listener.local_addr()?.port());
    let cfg = local_engine::inspector::InspectorConfig {
        env: "bench".into(),
        endpoint_url: endpoint.url().to_string(),
        region: "us-east-1".into(),
        events_table: config.events_table.clone(),
        projections_table: config.projections_table.clone(),
        dead_letter_queue_url: None,
        stream_arn: None,
        state_dir: dir.join("state"),
        dist: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(local_engine::inspector::serve(listener, cfg, None, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let open = |path: String| {
        let http = http.clone();
        let url = format!("{url}{path}");
        async move {
            let t = Instant::now();
            let resp = http.get(&url).send().await?;
            anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
            let body = resp.text().await?;
            Ok::<_, anyhow::Error>((t.elapsed(), body))
        }
    };
    let began = Instant::now();
    let (first, mut body) = open(format!("/aggregates/{id}")).await?;
    while body.contains("data-verdict=\"pending\"") {
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = open(format!("/aggregates/{id}")).await?.1;
    }
    let replay_done = began.elapsed();
    anyhow::ensure!(
        body.contains("data-verdict=\"matches\""),
        "the inspector does not show the seeded read model as matching its replay"
    );
    let mut warm = Vec::new();
    let mut deep = Vec::new();
    for _ in 0..args.rounds.max(1) {
        warm.push(open(format!("/aggregates/{id}")).await?.0);
        deep.push(
            open(format!(
                "/aggregates/{id}?after={}",
                args.events.saturating_sub(50)
            ))
            .await?
            .0,
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    Ok(InspectorReport {
        events: args.events,
        page_bytes: body.len(),
        first_open_ms: first.as_secs_f64() * 1000.0,
        replay_done_ms: replay_done.as_secs_f64() * 1000.0,
        warm_open_ms: median(warm),
        deep_page_ms: median(deep),
    })
}
