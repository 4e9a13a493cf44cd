//! `cargo xtask bench store`: what the event store costs in DynamoDB requests and capacity units per
//! single-event append at 10, 1,000 and 10,000 events of history, per 98-event batch append and per
//! projected batch, on a fresh local endpoint of its own.
//!
//! Why requests and capacity, not milliseconds: moto's latency is not DynamoDB's, but the number of
//! requests and the bytes they read and write are the design's, and they are what DynamoDB bills. The
//! requests are counted and the capacity summed by `service::testing::DynamoMeter`, an SDK interceptor
//! on the store's own client (see there for how capacity is modelled and what moto reports).

use domain::api::{AppendCommand, NewEvent};
use serde::Serialize;
use serde_json::{Map, Value, json};
use service::aws_sdk_dynamodb::{Client, config::Builder};
use service::testing::{DynamoMeter, Usage, create_tables, stream_event, stream_record};
use service::{Config, DynamoStore, EventStore};

use crate::exit::ExitStatus;

/// Arguments of `cargo xtask bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// Appends measured per figure (the mean per append is printed).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::cli::OutputFormat,
}

/// One figure: the mean usage of one operation of the store.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub what: String,
    /// Events of the aggregate before the measured operation (for appends).
    pub history: Option<u64>,
    pub requests: f64,
    pub read_units: f64,
    pub write_units: f64,
    /// What moto reported as ConsumedCapacity (constants; see `DynamoMeter`).
    pub reported_units: f64,
    pub operations: String,
}

/// Every figure of one run: `Display` for people, `Serialize` for `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreReport {
    pub event_bytes: usize,
    pub figures: Vec<Figure>,
}

impl std::fmt::Display for StoreReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "event store cost per operation (events of ~{} bytes; capacity modelled from item sizes)",
            self.event_bytes
        )?;
        writeln!(
            f,
            "| operation | history | requests | RCU | WCU | requests by operation |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---|")?;
        for x in &self.figures {
            writeln!(
                f,
                "| {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                x.what,
                x.history.map_or("-".to_string(), |h| h.to_string()),
                x.requests,
                x.read_units,
                x.write_units,
                x.operations
            )?;
        }
        Ok(())
    }
}

pub async fn run(args: StoreArgs) -> anyhow::Result<ExitStatus> {
    let rounds = args.rounds.max(1);
    let tmp = tempfile::tempdir()?;
    let endpoint = local_engine::endpoint::Endpoint::start_fresh(&tmp.path().join("state")).await?;
    let result = measure(&endpoint, rounds).await;
    endpoint.stop();
    let report = result?;
    match args.output {
        crate::cli::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        crate::cli::OutputFormat::Text => print!("{report}"),
    }
    Ok(ExitStatus::Success)
}

/// A ~1 KB event payload (the size of the measurements); the same keys every time, so the user's
/// state, and with it the head item, keeps one size however long the history.
fn payload(n: u64) -> Map<String, Value> {
    json!({"n": n, "note": "x".repeat(960)})
        .as_object()
        .cloned()
        .expect("an object")
}

fn command(aggregate: &str, events: Vec<(&str, u64)>, command_id: Option<String>) -> AppendCommand {
    AppendCommand {
        aggregate_id: aggregate.to_string(),
        aggregate_type: None,
        events: events
            .into_iter()
            .map(|(t, n)| NewEvent {
                event_type: t.to_string(),
                event_data: payload(n),
            })
            .collect(),
        expected_version: None,
        command_id,
    }
}

async fn append(store: &DynamoStore, cmd: &AppendCommand) -> anyhow::Result<()> {
    service::append::append(store, cmd, domain::Metadata::default())
        .await
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("appending to `{}`: {e}", cmd.aggregate_id))
}

/// Gives `aggregate` a history of `n` events. Appending 10,000 events through the API would take moto
/// very long (its TransactWriteItems deep-copies the whole table), so all but the last event are written
/// with BatchWriteItem and the last one through the store's own append transaction with the head folded
/// from all of them: the same items the API would have written.
pub(crate) async fn seed(store: &DynamoStore, aggregate: &str, n: u64) -> anyhow::Result<()> {
    use service::aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let events: Vec<domain::StoredEvent> = (1..=n)
        .map(|v| domain::StoredEvent {
            aggregate_id: aggregate.to_string(),
            version: v,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: if v == 1 {
                "user_created"
            } else {
                "user_updated"
            }
            .to_string(),
            event_data: payload(v),
            timestamp: domain::now_timestamp(),
            command_id: None,
            metadata: domain::Metadata::default(),
            aggregate_type: None,
            schema_version: None,
        })
        .collect();
    let table = &store.config.events_table;
    for chunk in events[..events.len() - 1].chunks(25) {
        let mut requests = Vec::new();
        for e in chunk {
            let put = PutRequest::builder()
                .set_item(Some(service::serde_dynamo::to_item(e)?))
                .build()?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let mut pending = Some(requests);
        while let Some(items) = pending.take().filter(|r| !r.is_empty()) {
            let out = store
                .client
                .batch_write_item()
                .request_items(table, items)
                .send()
                .await?;
            pending = out.unprocessed_items.and_then(|mut u| u.remove(table));
        }
    }
    let state = domain::registry()
        .replay(
            events
                .iter()
                .map(|e| (e.event_type.as_str(), e.schema_version(), &e.event_data)),
        )?
        .expect("n >= 1");
    let last = events.last().cloned().expect("n >= 1");
    store
        .append(&service::store::AppendWrite {
            aggregate_id: aggregate.to_string(),
            events: vec![last],
            head: service::store::Head {
                version: n,
                state: state.state(),
                aggregate_type: Some(state.kind().to_string()),
            },
            previous_head: None,
            command: None,
        })
        .await?;
    Ok(())
}

fn figure(what: &str, history: Option<u64>, meter: &DynamoMeter, per: usize) -> Figure {
    let per = per as f64;
    let total: Usage = meter.total();
    let operations = meter
        .by_operation()
        .into_iter()
        .filter(|(_, u)| u.requests > 0)
        .map(|(op, u)| format!("{op} {}", u.requests as f64 / per))
        .collect::<Vec<_>>()
        .join(", ");
    Figure {
        what: what.to_string(),
        history,
        requests: total.requests as f64 / per,
        read_units: total.read_units / per,
        write_units: total.write_units / per,
        reported_units: total.reported_units / per,
        operations,
    }
}

/// The stream records of the events of `aggregates` after `after`, as one batch.
async fn records(
    store: &DynamoStore,
    aggregates: &[String],
    after: u64,
) -> anyhow::Result<Vec<service::aws_lambda_events::event::dynamodb::EventRecord>> {
    let mut records = Vec::new();
    for a in aggregates {
        let (events, _) = store.read_events(a, after, None, true).await?;
        for e in events {
            records.push(stream_record(&format!("{:021}", records.len() + 1), &e));
        }
    }
    Ok(records)
}

/// Projects one batch of records and returns its figure (only the projector's requests are counted).
async fn project(
    store: &DynamoStore,
    meter: &DynamoMeter,
    what: &str,
    aggregates: &[String],
    after: u64,
) -> anyhow::Result<Figure> {
    let batch = records(store, aggregates, after).await?;
    meter.reset();
    let response = service::projector::handle(store, stream_event(batch)).await;
    anyhow::ensure!(
        response.batch_item_failures.is_empty(),
        "the projector failed records: {:?}",
        response.batch_item_failures
    );
    Ok(figure(what, None, meter, 1))
}

async fn measure(
    endpoint: &local_engine::endpoint::Endpoint,
    rounds: usize,
) -> anyhow::Result<StoreReport> {
    let meter = DynamoMeter::default();
    let conf = Builder::from(&endpoint.sdk_config().await)
        .interceptor(meter.clone())
        .build();
    let client = Client::from_conf(conf);
    // One table pair per aggregate size: moto's TransactWriteItems deep-copies every table it touches, so a
    // shared table would make every measured write slow (DynamoDB's cost does not depend on the table).
    let tables = |name: &str| Config {
        events_table: format!("bench-{name}-events"),
        projections_table: format!("bench-{name}-projections"),
    };
    let mut stores = Vec::new();
    for name in ["h10", "h1000", "h10000", "projection"] {
        let config = tables(name);
        create_tables(&client, &config.events_table, &config.projections_table)
            .await
            .map_err(|e| anyhow::anyhow!("creating the benchmark tables: {e}"))?;
        stores.push(DynamoStore::new(client.clone(), config));
    }
    let mut figures = Vec::new();

    for (history, store) in [10u64, 1_000, 10_000].into_iter().zip(&stores) {
        let id = format!("history-{history}");
        eprintln!("seeding `{id}` with {history} events");
        seed(store, &id, history).await?;
        meter.reset();
        for r in 0..rounds {
            append(store, &command(&id, vec![("user_updated", r as u64)], None)).await?;
        }
        figures.push(figure("single-event append", Some(history), &meter, rounds));
        meter.reset();
        for r in 0..rounds {
            let cmd = command(
                &id,
                vec![("user_updated", r as u64)],
                Some(format!("c-{r}")),
            );
            append(store, &cmd).await?;
        }
        figures.push(figure(
            "single-event append with commandId",
            Some(history),
            &meter,
            rounds,
        ));
        eprintln!(
            "{}",
            figures[figures.len() - 2..]
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let store = &stores[2];
    meter.reset();
    for r in 0..rounds {
        let events = (0..98)
            .map(|i| ("user_updated", (r * 98 + i) as u64))
            .collect();
        append(store, &command("history-10000", events, None)).await?;
    }
    figures.push(figure(
        "98-event batch append",
        Some(10_000),
        &meter,
        rounds,
    ));

    eprintln!("{:?}", figures.last());
    let store = &stores[3];
    // Projection: read models that are current, then one batch of new events.
    let one = vec!["projected-1".to_string()];
    let ten: Vec<String> = (0..10).map(|i| format!("projected-10-{i}")).collect();
    for a in one.iter().chain(&ten) {
        append(store, &command(a, vec![("user_created", 0)], None)).await?;
    }
    project(store, &meter, "set-up", &one, 0).await?;
    project(store, &meter, "set-up", &ten, 0).await?;
    let events = (1..=98).map(|n| ("user_updated", n)).collect();
    append(store, &command("projected-1", events, None)).await?;
    for a in &ten {
        let events = (1..=10).map(|n| ("user_updated", n)).collect();
        append(store, &command(a, events, None)).await?;
    }
    figures.push(
        project(
            store,
            &meter,
            "projected batch: 98 records of 1 aggregate",
            &one,
            1,
        )
        .await?,
    );
    figures.push(
        project(
            store,
            &meter,
            "projected batch: 100 records of 10 aggregates",
            &ten,
            1,
        )
        .await?,
    );
    Ok(StoreReport {
        event_bytes: service::size::event_item_size(&domain::StoredEvent {
            aggregate_id: "history-1000".into(),
            version: 1000,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: "user_updated".into(),
            event_data: payload(1000),
            timestamp: domain::now_timestamp(),
            command_id: None,
            metadata: domain::Metadata::default(),
            aggregate_type: None,
            schema_version: None,
        }),
        figures,
    })
}
