//! `cargo xtask bench store`: what the event store costs in DynamoDB requests and capacity units per
//! single-event append at 10, 1,000 and 10,000 events of history, per 98-event batch append and per
//! projected batch, on a fresh local endpoint of its own.
//!
//! The events are the domain's own, through the registry: the first registered aggregate's `example()`
//! starts each aggregate with its first event and repeats its last (the seed's `user`: `user_created`, then
//! `user_updated`), so the figures are those of whatever domain the workspace holds. The event size is printed
//! with the figures, since capacity units follow item sizes.
//!
//! Why requests and capacity, not milliseconds: moto's latency is not DynamoDB's, but the number of
//! requests and the bytes they read and write are the design's, and they are what DynamoDB bills. The
//! requests are counted and the capacity summed by `service::testing::DynamoMeter`, an SDK interceptor
//! on the store's own client (see there for how capacity is modelled and what moto reports).

use domain::api::{AppendCommand, NewEvent};
use serde::Serialize;
use serde_json::{Map, Value};
use service::aws_sdk_dynamodb::{Client, config::Builder};
use service::testing::{DynamoMeter, Usage, create_tables, stream_event, stream_record};
use service::{Config, DynamoStore, EventStore};

/// Arguments of `cargo xtask bench store`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Appends measured per figure (the mean per append is printed).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Events of history before the measured appends, one aggregate (and table) per length.
    #[arg(long, value_delimiter = ',', default_values_t = [10u64, 1_000, 10_000])]
    pub histories: Vec<u64>,
    /// Events per measured batch append (and per projected batch); DynamoDB's transaction limit leaves 98.
    #[arg(long, default_value_t = 98)]
    pub batch: usize,
    /// The registered aggregate type whose example events are written (default: the first registered). One
    /// that declares views shows what its view rows add to the projector's batch.
    #[arg(long)]
    pub aggregate: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, value_enum, default_value_t)]
    pub output: crate::OutputFormat,
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
    /// The aggregate type whose example events were written.
    pub aggregate: String,
    pub event_bytes: usize,
    pub figures: Vec<Figure>,
}

impl std::fmt::Display for StoreReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "event store cost per operation (`{}` events of ~{} bytes; capacity modelled from item sizes)",
            self.aggregate, self.event_bytes
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

pub async fn run(args: &Args) -> anyhow::Result<StoreReport> {
    anyhow::ensure!(
        !args.histories.is_empty() && args.histories.iter().all(|h| *h >= 1),
        "--histories needs at least one length, each at least 1 (got {:?})",
        args.histories
    );
    anyhow::ensure!(
        (1..=domain::validate::MAX_BATCH_EVENTS).contains(&args.batch),
        "--batch must be between 1 and {} (DynamoDB's transaction limit); got {}",
        domain::validate::MAX_BATCH_EVENTS,
        args.batch
    );
    // An unknown aggregate type is refused before any endpoint starts.
    Events::of_kind(args.aggregate.as_deref())?;
    let tmp = tempfile::tempdir()?;
    let endpoint = local_engine::endpoint::Endpoint::start_fresh(&tmp.path().join("state")).await?;
    let result = measure(&endpoint, args).await;
    endpoint.stop();
    result
}

/// The events the benchmark writes: the example's first event starts an aggregate, its last one is repeated.
pub(crate) struct Events {
    kind: &'static str,
    first: (&'static str, Map<String, Value>),
    next: (&'static str, Map<String, Value>),
}

impl Events {
    /// The first registered aggregate's example events.
    pub(crate) fn of_domain() -> Events {
        Events::of_kind(None).expect("the registry refuses a domain without aggregates")
    }

    /// The example events of aggregate type `kind` (the first registered when `None`).
    pub(crate) fn of_kind(kind: Option<&str>) -> anyhow::Result<Events> {
        let registry = domain::registry();
        let kind = match kind {
            None => registry.kinds().next(),
            Some(name) => registry.kind(name),
        }
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`--aggregate {}` is not a registered aggregate type; the domain registers: {}",
                kind.unwrap_or_default(),
                registry
                    .kinds()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let example = kind.example();
        Ok(Events {
            kind: kind.name(),
            first: example.first().cloned().expect("examples are not empty"),
            next: example.last().cloned().expect("examples are not empty"),
        })
    }

    /// Event `v` (1-based) of an aggregate's history.
    fn nth(&self, v: u64) -> &(&'static str, Map<String, Value>) {
        if v == 1 { &self.first } else { &self.next }
    }

    fn stored(&self, aggregate: &str, v: u64) -> domain::StoredEvent {
        let (event_type, data) = self.nth(v);
        let registry = domain::registry();
        domain::StoredEvent {
            aggregate_id: aggregate.to_string(),
            version: v,
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: event_type.to_string(),
            event_data: data.clone(),
            timestamp: domain::now_timestamp(),
            command_id: None,
            metadata: domain::Metadata::default(),
            aggregate_type: registry
                .kind_of_event(event_type)
                .map(|k| k.name().to_string()),
            schema_version: registry.spec(event_type).map(|s| s.version),
        }
    }

    /// An append of `count` events to `aggregate`, the first being event `from` of its history.
    fn command(
        &self,
        aggregate: &str,
        from: u64,
        count: usize,
        command_id: Option<String>,
    ) -> AppendCommand {
        AppendCommand {
            aggregate_id: aggregate.to_string(),
            aggregate_type: None,
            events: (from..from + count as u64)
                .map(|v| {
                    let (t, data) = self.nth(v);
                    NewEvent {
                        event_type: t.to_string(),
                        event_data: data.clone(),
                    }
                })
                .collect(),
            expected_version: None,
            command_id,
        }
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
pub(crate) async fn seed(
    store: &DynamoStore,
    events: &Events,
    aggregate: &str,
    n: u64,
) -> anyhow::Result<()> {
    use service::aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let events: Vec<domain::StoredEvent> = (1..=n).map(|v| events.stored(aggregate, v)).collect();
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
    args: &Args,
) -> anyhow::Result<StoreReport> {
    let rounds = args.rounds.max(1);
    let batch = args.batch;
    let events = Events::of_kind(args.aggregate.as_deref())?;
    let meter = DynamoMeter::default();
    let conf = Builder::from(&endpoint.sdk_config().await)
        .interceptor(meter.clone())
        .build();
    let client = Client::from_conf(conf);
    // One table pair per aggregate size: moto's TransactWriteItems deep-copies every table it touches, so a
    // shared table would make every measured write slow (DynamoDB's cost does not depend on the table).
    let new_store = async |name: &str| -> anyhow::Result<DynamoStore> {
        let config = Config {
            events_table: format!("bench-{name}-events"),
            projections_table: format!("bench-{name}-projections"),
        };
        create_tables(&client, &config.events_table, &config.projections_table)
            .await
            .map_err(|e| anyhow::anyhow!("creating the benchmark tables: {e}"))?;
        // With the views table the deployed functions get when the domain declares views.
        Ok(service::testing::store(client.clone(), config))
    };
    let mut figures = Vec::new();

    let mut longest: Option<(u64, String, u64, DynamoStore)> = None;
    for &history in &args.histories {
        let store = new_store(&format!("h{history}")).await?;
        let id = format!("history-{history}");
        eprintln!("seeding `{id}` with {history} events");
        seed(&store, &events, &id, history).await?;
        let mut next = history + 1;
        meter.reset();
        for _ in 0..rounds {
            append(&store, &events.command(&id, next, 1, None)).await?;
            next += 1;
        }
        figures.push(figure("single-event append", Some(history), &meter, rounds));
        meter.reset();
        for r in 0..rounds {
            let cmd = events.command(&id, next, 1, Some(format!("c-{r}")));
            append(&store, &cmd).await?;
            next += 1;
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
        if longest.as_ref().is_none_or(|(h, ..)| *h < history) {
            longest = Some((history, id, next, store));
        }
    }
    let (history, id, mut next, store) = longest.expect("--histories is not empty");
    meter.reset();
    for _ in 0..rounds {
        append(&store, &events.command(&id, next, batch, None)).await?;
        next += batch as u64;
    }
    figures.push(figure(
        &format!("{batch}-event batch append"),
        Some(history),
        &meter,
        rounds,
    ));

    eprintln!("{:?}", figures.last());
    let store = new_store("projection").await?;
    // Projection: read models that are current, then one batch of new events: `batch` records of one
    // aggregate, and 10 records each of 10 aggregates.
    let one = vec!["projected-1".to_string()];
    let ten: Vec<String> = (0..10).map(|i| format!("projected-10-{i}")).collect();
    for a in one.iter().chain(&ten) {
        append(&store, &events.command(a, 1, 1, None)).await?;
    }
    project(&store, &meter, "set-up", &one, 0).await?;
    project(&store, &meter, "set-up", &ten, 0).await?;
    append(&store, &events.command("projected-1", 2, batch, None)).await?;
    for a in &ten {
        append(&store, &events.command(a, 2, 10, None)).await?;
    }
    figures.push(
        project(
            &store,
            &meter,
            &format!("projected batch: {batch} records of 1 aggregate"),
            &one,
            1,
        )
        .await?,
    );
    figures.push(
        project(
            &store,
            &meter,
            "projected batch: 100 records of 10 aggregates",
            &ten,
            1,
        )
        .await?,
    );
    Ok(StoreReport {
        aggregate: events.kind.to_string(),
        event_bytes: service::size::event_item_size(&events.stored("history-1000", 1000)),
        figures,
    })
}
