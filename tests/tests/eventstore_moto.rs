//! The event store, the HTTP handlers and the projector against the local AWS endpoint (moto, started
//! through `local_engine::endpoint`, the code the tool uses): conflicts, batches of 98 and 99 events, the
//! 400 KB item limit, idempotent retries across restarts, pagination past a 1 MB page, GSI queries,
//! concurrent writers, and the projector with a poison event.
//!
//! One moto serves all tests of this binary (`tests::moto::shared`); every test uses its own tables.

use std::sync::Arc;

use domain::{Metadata, StoredEvent};
use serde_json::{Value, json};
use service::append::{AppendError, append};
use service::aws_sdk_dynamodb::Client;
use service::aws_sdk_dynamodb::types::AttributeValue;
use service::lambda_http::{Body, Response};
use service::testing::{create_tables, request, stream_event, stream_record};
use service::{Config, DynamoStore, EventStore};
use tests::store::command;

use tests::moto::{SharedMoto as Moto, shared as moto};

/// A store on fresh tables named after the test; keep the `Arc` alive for the test's duration.
async fn fresh_store(test: &str) -> (Arc<Moto>, DynamoStore) {
    let moto = moto().await;
    // A client per test: each #[tokio::test] has its own runtime and the client's connections belong to it.
    let client = Client::new(&moto.endpoint.sdk_config().await);
    let config = Config {
        events_table: format!("{test}-events"),
        projections_table: format!("{test}-projections"),
    };
    create_tables(&client, &config.events_table, &config.projections_table)
        .await
        .expect("tables are created");
    (moto, service::testing::store(client, config))
}

async fn all_events(store: &DynamoStore, aggregate: &str) -> Vec<StoredEvent> {
    store.read_events(aggregate, 0, None, true).await.unwrap().0
}

fn decode(response: Response<Body>) -> (u16, Value) {
    (
        response.status().as_u16(),
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

#[tokio::test]
async fn stale_expected_version_is_a_conflict_with_the_current_version() {
    let (_moto, store) = fresh_store("conflict").await;
    append(
        &store,
        &command(
            "u1",
            vec![("user_created", json!({"name": "Ann"}))],
            Some(0),
            None,
        ),
        Metadata::default(),
    )
    .await
    .unwrap();
    let err = append(
        &store,
        &command("u1", vec![("user_updated", json!({"a": 1}))], Some(0), None),
        Metadata::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::Conflict {
                expected: Some(0),
                current: 1
            }
        ),
        "{err:?}"
    );
    // The raw conditional write refuses to overwrite an existing version.
    let mut again = all_events(&store, "u1").await;
    again[0]
        .event_data
        .insert("overwritten".into(), json!(true));
    assert!(matches!(
        store.write_events(&again).await,
        Err(service::StoreError::Conflict)
    ));
    // A transaction whose second item exists is cancelled as a whole: the conflict is reported and the
    // new first item is not written either.
    let mut fresh = again[0].clone();
    fresh.version = 2;
    assert!(matches!(
        store.write_events(&[fresh, again[0].clone()]).await,
        Err(service::StoreError::Conflict)
    ));
    assert_eq!(all_events(&store, "u1").await.len(), 1);
    assert!(
        !all_events(&store, "u1").await[0]
            .event_data
            .contains_key("overwritten")
    );
}

#[tokio::test]
async fn a_batch_of_98_events_is_one_atomic_append_and_99_is_refused() {
    // 98 events + the head + the command record = TransactWriteItems' 100 items.
    let (_moto, store) = fresh_store("batch").await;
    let mut events = vec![("user_created", json!({}))];
    events.extend((0..97).map(|i| ("user_updated", json!({ "n": i }))));
    let out = append(
        &store,
        &command("b100", events.clone(), Some(0), Some("batch-98")),
        Metadata::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        out.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=98).collect::<Vec<_>>()
    );
    let stored = all_events(&store, "b100").await;
    assert_eq!(stored.len(), 98);
    assert_eq!(
        stored.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=98).collect::<Vec<_>>()
    );

    events.push(("user_updated", json!({"n": 98})));
    let err = append(
        &store,
        &command("b101", events, Some(0), None),
        Metadata::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AppendError::TooLarge(_)), "{err:?}");
    assert!(all_events(&store, "b101").await.is_empty());

    // A batch that breaks a rule in its middle is written not at all (one transaction).
    let bad = vec![
        ("user_created", json!({})),
        ("user_updated", json!({})),
        ("user_created", json!({})),
    ];
    assert!(
        append(&store, &command("b3", bad, None, None), Metadata::default())
            .await
            .is_err()
    );
    assert!(all_events(&store, "b3").await.is_empty());
}

#[tokio::test]
async fn events_over_400_kb_are_refused_up_front_and_large_ones_below_are_stored() {
    let (_moto, store) = fresh_store("itemsize").await;
    let over = "x".repeat(400 * 1024);
    let err = append(
        &store,
        &command(
            "big",
            vec![("user_created", json!({ "blob": over }))],
            None,
            None,
        ),
        Metadata::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AppendError::TooLarge(_)), "{err:?}");
    assert!(all_events(&store, "big").await.is_empty());
    let under = "x".repeat(395 * 1024);
    append(
        &store,
        &command(
            "big",
            vec![("user_created", json!({ "blob": under }))],
            None,
            None,
        ),
        Metadata::default(),
    )
    .await
    .expect("an event just under the limit is accepted by DynamoDB");
    assert_eq!(
        all_events(&store, "big").await[0].event_data["blob"]
            .as_str()
            .unwrap()
            .len(),
        395 * 1024
    );
}

#[tokio::test]
async fn a_retried_command_returns_the_original_result_even_after_a_restart() {
    let (moto, store) = fresh_store("idempotent").await;
    let create = command(
        "u1",
        vec![("user_created", json!({"name": "Ann"}))],
        None,
        Some("cmd-1"),
    );
    let first = append(&store, &create, Metadata::default()).await.unwrap();
    assert!(!first.deduplicated);
    let update = command(
        "u1",
        vec![
            ("user_updated", json!({"a": 1})),
            ("user_updated", json!({"b": 2})),
        ],
        None,
        Some("cmd-2"),
    );
    let second = append(&store, &update, Metadata::default()).await.unwrap();
    // A "restarted" function: a new client and store, nothing cached.
    let restarted = service::testing::store(
        Client::new(&moto.endpoint.sdk_config().await),
        store.config.clone(),
    );
    let again = append(&restarted, &create, Metadata::default())
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.events, first.events);
    let again = append(&restarted, &update, Metadata::default())
        .await
        .unwrap();
    assert_eq!(again.events, second.events);
    assert_eq!(all_events(&store, "u1").await.len(), 3);
    // Through the handler too: the same body gives the same response.
    let body = json!({"eventType": "user_updated", "eventData": {"c": 3}, "commandId": "cmd-3"})
        .to_string();
    let one = decode(
        service::http::handle_command(
            &store,
            request("POST", "/aggregates/u1/events", Some(&body)),
        )
        .await,
    );
    let two = decode(
        service::http::handle_command(
            &restarted,
            request("POST", "/aggregates/u1/events", Some(&body)),
        )
        .await,
    );
    assert_eq!(one.0, 201);
    assert_eq!(one, two);
    assert_eq!(all_events(&store, "u1").await.len(), 4);
}

#[tokio::test]
async fn reads_page_through_every_1_mb_page() {
    let (_moto, store) = fresh_store("pages").await;
    let blob = "y".repeat(100 * 1024);
    let mut events = vec![("user_created", json!({ "blob": blob }))];
    events.extend((0..11).map(|i| ("user_updated", json!({ "blob": blob, "n": i }))));
    append(
        &store,
        &command("p", events, Some(0), None),
        Metadata::default(),
    )
    .await
    .unwrap();
    // One raw query stops at DynamoDB's 1 MB page (the seed's single query would lose events here).
    let raw = store
        .client
        .query()
        .table_name(&store.config.events_table)
        .key_condition_expression("aggregate_id = :a")
        .expression_attribute_values(":a", AttributeValue::S("p".into()))
        .send()
        .await
        .unwrap();
    assert!(
        raw.items().len() < 12 && raw.last_evaluated_key().is_some(),
        "one page holds {}",
        raw.items().len()
    );
    assert_eq!(
        all_events(&store, "p")
            .await
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    let (status, page) = decode(
        service::http::handle_query(
            &store,
            request("GET", "/aggregates/p/events?limit=1000", None),
        )
        .await,
    );
    assert_eq!(status, 200);
    assert_eq!(page["events"].as_array().unwrap().len(), 12);
    assert_eq!(page["nextAfter"], Value::Null);
    let (status, view) = decode(
        service::http::handle_query(
            &store,
            request("GET", "/aggregates/p?consistent=true", None),
        )
        .await,
    );
    assert_eq!(
        (
            status,
            view["version"].clone(),
            view["state"]["user"]["n"].clone()
        ),
        (200, json!(12), json!(10))
    );
}

#[tokio::test]
async fn events_by_type_come_from_the_gsi_in_time_order_with_a_cursor() {
    let (_moto, store) = fresh_store("gsi").await;
    for i in 0..5 {
        let body = json!({"aggregateId": format!("g{i}"), "eventType": "user_created", "eventData": {"i": i}}).to_string();
        let (status, _) = decode(
            service::http::handle_command(&store, request("POST", "/events", Some(&body))).await,
        );
        assert_eq!(status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await; // distinct timestamps
    }
    let body =
        json!({"aggregateId": "g0", "eventType": "user_updated", "eventData": {}}).to_string();
    service::http::handle_command(&store, request("POST", "/events", Some(&body))).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/events?type=user_created&limit=2".to_string(),
            Some(c) => format!("/events?type=user_created&limit=2&cursor={c}"),
        };
        let (status, page) =
            decode(service::http::handle_query(&store, request("GET", &path, None)).await);
        assert_eq!(status, 200, "{page}");
        for e in page["events"].as_array().unwrap() {
            assert_eq!(e["eventType"], "user_created");
            seen.push((
                e["timestamp"].as_str().unwrap().to_string(),
                e["aggregateId"].as_str().unwrap().to_string(),
            ));
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(
        seen.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>(),
        ["g0", "g1", "g2", "g3", "g4"]
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "time order: {seen:?}"
    );
    // A time window selects the middle events.
    let (from, to) = (&seen[1].0, &seen[3].0);
    let (_, page) = decode(
        service::http::handle_query(
            &store,
            request(
                "GET",
                &format!("/events?type=user_created&from={from}&to={to}"),
                None,
            ),
        )
        .await,
    );
    assert_eq!(page["events"].as_array().unwrap().len(), 3, "{page}");
}

#[tokio::test]
async fn concurrent_writers_lose_nothing_and_each_version_has_one_winner() {
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    let (_moto, store) = fresh_store("concurrency").await;
    append(
        &store,
        &command("hot", vec![("user_created", json!({}))], Some(0), None),
        Metadata::default(),
    )
    .await
    .unwrap();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..EACH {
                let cmd = command(
                    "hot",
                    vec![("user_updated", json!({ "writer": w, "i": i }))],
                    None,
                    None,
                );
                let out = append(store.as_ref(), &cmd, Metadata::default())
                    .await
                    .expect("an unguarded append retries until it lands");
                versions.push(out.events[0].version);
            }
            versions
        }));
    }
    let mut won: Vec<u64> = Vec::new();
    for t in tasks {
        won.extend(t.await.unwrap());
    }
    won.sort();
    let expected: Vec<u64> = (2..=(1 + WRITERS * EACH) as u64).collect();
    assert_eq!(won, expected, "each version has exactly one winner");
    let log = all_events(&store, "hot").await;
    assert_eq!(
        log.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=(1 + WRITERS * EACH) as u64).collect::<Vec<_>>()
    );
    let mut writes: Vec<(u64, u64)> = log[1..]
        .iter()
        .map(|e| {
            (
                e.event_data["writer"].as_u64().unwrap(),
                e.event_data["i"].as_u64().unwrap(),
            )
        })
        .collect();
    writes.sort();
    writes.dedup();
    assert_eq!(
        writes.len(),
        WRITERS * EACH,
        "no lost and no duplicated event"
    );
}

#[tokio::test]
async fn the_projector_builds_read_models_and_fails_only_the_poison_aggregate() {
    let (_moto, store) = fresh_store("projector").await;
    for (id, t, d) in [
        ("ok", "user_created", json!({"name": "Ann"})),
        ("ok", "user_updated", json!({"age": 3})),
        ("poisoned", "user_created", json!({})),
    ] {
        let body = json!({"aggregateId": id, "eventType": t, "eventData": d}).to_string();
        assert_eq!(
            decode(
                service::http::handle_command(&store, request("POST", "/events", Some(&body)))
                    .await
            )
            .0,
            200
        );
    }
    // A poison event written around the API, straight into the table.
    let mut poison = all_events(&store, "poisoned").await[0].clone();
    poison.version = 2;
    poison.event_type = "user_exploded".into();
    store
        .client
        .put_item()
        .table_name(&store.config.events_table)
        .set_item(Some(service::serde_dynamo::to_item(&poison).unwrap()))
        .send()
        .await
        .unwrap();
    let mut log = all_events(&store, "ok").await;
    log.extend(all_events(&store, "poisoned").await);
    let records: Vec<_> = log
        .iter()
        .enumerate()
        .map(|(i, e)| stream_record(&format!("{:021}", i + 1), e))
        .collect();
    // Deliver everything twice (at-least-once): the duplicate half is skipped.
    let mut twice = records.clone();
    twice.extend(records);
    let response = service::projector::handle(&store, stream_event(twice)).await;
    let mut failed: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap())
        .collect();
    failed.sort();
    // The poisoned aggregate's records from the poison one on (its two deliveries and the redelivered
    // version 1 that came after it in the batch); nothing of the healthy aggregate.
    assert_eq!(
        failed,
        [
            format!("{:021}", 3),
            format!("{:021}", 4),
            format!("{:021}", 4)
        ]
    );
    let (status, view) =
        decode(service::http::handle_query(&store, request("GET", "/aggregates/ok", None)).await);
    assert_eq!(status, 200);
    assert_eq!(
        view,
        json!({"aggregateId": "ok", "aggregateType": "user", "version": 2, "state": {"user": {"name": "Ann", "age": 3}}})
    );
    let (_, poisoned) = decode(
        service::http::handle_query(&store, request("GET", "/aggregates/poisoned", None)).await,
    );
    assert_eq!(
        poisoned["version"], 1,
        "progress before the poison event is kept"
    );
}

/// A store on fresh tables whose client counts its requests.
async fn metered_store(test: &str) -> (Arc<Moto>, DynamoStore, service::testing::DynamoMeter) {
    let (moto, store) = fresh_store(test).await;
    let meter = service::testing::DynamoMeter::default();
    let config =
        service::aws_sdk_dynamodb::config::Builder::from(&moto.endpoint.sdk_config().await)
            .interceptor(meter.clone())
            .build();
    let metered = service::testing::store(Client::from_conf(config), store.config.clone());
    (moto, metered, meter)
}

/// Grows `aggregate` to `n` events with 98-event batches (the seeding is not measured).
async fn grow(store: &DynamoStore, aggregate: &str, n: usize) {
    let mut have = all_events(store, aggregate).await.len();
    while have < n {
        let mut events = Vec::new();
        if have == 0 {
            events.push(("user_created", json!({"name": "Ann"})));
        }
        while events.len() < 98 && have + events.len() < n {
            events.push(("user_updated", json!({"n": have + events.len()})));
        }
        let written = events.len();
        append(
            store,
            &command(aggregate, events, None, None),
            Metadata::default(),
        )
        .await
        .unwrap();
        have += written;
    }
}

#[tokio::test]
async fn an_append_makes_two_requests_whatever_the_history() {
    let (_moto, store, meter) = metered_store("requests").await;
    for (aggregate, history) in [("short", 1), ("long", 300)] {
        grow(&store, aggregate, history).await;
        for command_id in [None, Some(format!("{aggregate}-c"))] {
            meter.reset();
            let cmd = command(
                aggregate,
                vec![("user_updated", json!({"k": "v"}))],
                None,
                command_id.as_deref(),
            );
            let out = append(&store, &cmd, Metadata::default()).await.unwrap();
            assert!(!out.deduplicated);
            let ops: Vec<(String, u64)> = meter
                .by_operation()
                .into_iter()
                .map(|(op, u)| (op, u.requests))
                .collect();
            let read = if command_id.is_some() {
                "BatchGetItem"
            } else {
                "GetItem"
            };
            assert_eq!(
                ops,
                [(read.to_string(), 1), ("TransactWriteItems".to_string(), 1)],
                "{aggregate} ({history} events), commandId {command_id:?}"
            );
        }
        // A retry of the command is one read and no write.
        meter.reset();
        let retry = command(
            aggregate,
            vec![("user_updated", json!({"k": "v"}))],
            None,
            Some(&format!("{aggregate}-c")),
        );
        assert!(
            append(&store, &retry, Metadata::default())
                .await
                .unwrap()
                .deduplicated
        );
        assert_eq!(meter.total().requests, 1);
    }
    assert_eq!(all_events(&store, "long").await.len(), 302);
}

#[tokio::test]
async fn a_command_id_reused_with_another_body_is_refused_and_concurrent_duplicates_are_stored_once()
 {
    let (_moto, store) = fresh_store("dupes").await;
    let store = Arc::new(store);
    let create = command(
        "u1",
        vec![("user_created", json!({"name": "Ann"}))],
        None,
        Some("c1"),
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, create) = (Arc::clone(&store), create.clone());
            tokio::spawn(async move { append(store.as_ref(), &create, Metadata::default()).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().expect("every duplicate succeeds"));
    }
    assert!(results.iter().all(|r| r.events == results[0].events));
    assert_eq!(results.iter().filter(|r| !r.deduplicated).count(), 1);
    assert_eq!(all_events(&store, "u1").await.len(), 1);

    let other = command(
        "u1",
        vec![("user_created", json!({"name": "Bob"}))],
        None,
        Some("c1"),
    );
    let err = append(store.as_ref(), &other, Metadata::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::IdempotencyConflict(_)),
        "{err:?}"
    );
    assert_eq!(all_events(&store, "u1").await.len(), 1);
}

/// The real stream of the table carries the head and the command record next to the events; the mapping's
/// filter (applied here as the local poller applies it) lets exactly the events through, and the GSI and
/// every event reader see only events.
#[tokio::test]
async fn only_events_pass_the_stream_filter_and_reach_readers() {
    let (moto, store) = fresh_store("sparse").await;
    for (t, command_id) in [("user_created", "c1"), ("user_updated", "c2")] {
        append(
            &store,
            &command("u1", vec![(t, json!({"x": 1}))], None, Some(command_id)),
            Metadata::default(),
        )
        .await
        .unwrap();
    }
    let sdk = moto.endpoint.sdk_config().await;
    let stream_arn = store
        .client
        .describe_table()
        .table_name(&store.config.events_table)
        .send()
        .await
        .unwrap()
        .table
        .and_then(|t| t.latest_stream_arn)
        .unwrap();
    let records = tests::moto::read_stream(&sdk, &stream_arn).await;
    let pattern: Value = serde_json::from_str(stack::EVENTS_ONLY_FILTER).unwrap();
    let (passed, dropped): (Vec<Value>, Vec<Value>) = records
        .iter()
        .map(|r| local_engine::poller::record_json(r, "us-east-1", &stream_arn))
        .partition(|r| local_engine::poller::matches_filter(&pattern, r));
    let versions = |rs: &[Value]| -> Vec<String> {
        rs.iter()
            .map(|r| {
                r["dynamodb"]["Keys"]["version"]["N"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(versions(&passed), ["1", "2"]);
    let dropped = versions(&dropped);
    assert_eq!(
        dropped.iter().filter(|v| *v == "0").count(),
        2,
        "head insert + modify: {dropped:?}"
    );
    assert_eq!(
        dropped.iter().filter(|v| v.starts_with('-')).count(),
        2,
        "two command records"
    );

    assert_eq!(all_events(&store, "u1").await.len(), 2);
    let (status, page) = decode(
        service::http::handle_query(&store, request("GET", "/aggregates/u1/events", None)).await,
    );
    assert_eq!((status, page["events"].as_array().unwrap().len()), (200, 2));
    for t in ["user_created", "user_updated"] {
        let (_, page) = decode(
            service::http::handle_query(&store, request("GET", &format!("/events?type={t}"), None))
                .await,
        );
        assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    }
}
