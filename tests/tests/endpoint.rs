//! The local AWS endpoint manager: a fresh moto answers AWS APIs and is gone when its handle drops,
//! the background mode is reused and stopped through its pid file, and a moto it did not start is never reused.
//! Starting a background one needs the environment's lock (`local_engine::lock`), taken here as `deploy` does.

use std::net::TcpStream;

use local_engine::endpoint::{Endpoint, EndpointError};
use local_engine::lock::EnvLock;
use local_engine::process::Stopped;

#[tokio::test]
async fn fresh_endpoint_serves_dynamodb_and_stops_with_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Endpoint::start_fresh(dir.path())
        .await
        .expect("moto starts");
    let port = moto.port();
    let ddb = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let tables = ddb
        .list_tables()
        .send()
        .await
        .expect("moto answers DynamoDB");
    assert!(
        tables.table_names().is_empty(),
        "a fresh endpoint has no tables"
    );
    moto.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after stop"
    );
}

#[tokio::test]
async fn background_endpoint_is_reused_then_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let port = local_engine::endpoint::free_port().unwrap();
    let lock = EnvLock::try_acquire(dir.path(), "test").unwrap().unwrap();
    let (first, started) = Endpoint::ensure_running(dir.path(), port, &lock)
        .await
        .expect("moto starts in the background");
    assert!(started);
    drop(first); // a background endpoint outlives its handle
    let (again, started_again) = Endpoint::ensure_running(dir.path(), port, &lock)
        .await
        .unwrap();
    assert!(!started_again, "the running endpoint is reused");
    assert_eq!(again.port(), port);
    assert!(
        Endpoint::stop_background(dir.path()).await.was_running(),
        "the pid file named the moto this tool started"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after stop"
    );
    assert_eq!(
        Endpoint::stop_background(dir.path()).await,
        Stopped::NotRunning,
        "stopping twice is harmless"
    );
}

#[tokio::test]
async fn another_moto_on_the_port_is_never_taken_for_the_background_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    // A moto this state directory did not start (another checkout's, or the user's own) holds the port.
    let foreign = Endpoint::start_fresh(&dir.path().join("other"))
        .await
        .expect("moto starts");
    let port = foreign.port();
    assert!(
        Endpoint::running(dir.path(), port).await.is_none(),
        "status and teardown do not adopt it"
    );
    let lock = EnvLock::try_acquire(dir.path(), "test").unwrap().unwrap();
    let err = Endpoint::ensure_running(dir.path(), port, &lock)
        .await
        .expect_err("deploy refuses to reuse it");
    assert!(
        matches!(err, EndpointError::PortTaken { port: p, .. } if p == port)
            && err.to_string().contains("did not start"),
        "{err}"
    );
    assert!(!Endpoint::pid_file(dir.path()).exists());
    let ddb = aws_sdk_dynamodb::Client::new(&foreign.sdk_config().await);
    assert!(
        ddb.list_tables().send().await.is_ok(),
        "the other moto is left alone"
    );
}

/// The local endpoint snapshots only the items a TransactWriteItems names (moto's own rollback deep-copies
/// whole tables, which made every append cost time in proportion to the table's history). A cancelled
/// transaction must still leave everything as it was: the updated item, the item it would have created in a
/// new partition, and the stream, which gets no record of it.
#[tokio::test]
async fn a_cancelled_transaction_changes_no_item_and_adds_no_stream_record() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
        ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem, Update,
    };
    let dir = tempfile::tempdir().unwrap();
    let moto = Endpoint::start_fresh(dir.path())
        .await
        .expect("moto starts");
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let attr = |name: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    };
    let key = |name: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    };
    let table = ddb
        .create_table()
        .table_name("tx")
        .attribute_definitions(attr("pk", ScalarAttributeType::S))
        .attribute_definitions(attr("sk", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stream_arn = table
        .table_description
        .and_then(|d| d.latest_stream_arn)
        .expect("the table has a stream");
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: i64| AttributeValue::N(v.to_string());
    for sk in 0..3 {
        ddb.put_item()
            .table_name("tx")
            .item("pk", s("a"))
            .item("sk", n(sk))
            .item("v", n(1))
            .send()
            .await
            .unwrap();
    }
    let item = |pk: &str, sk: i64| {
        let ddb = ddb.clone();
        let pk = pk.to_string();
        async move {
            ddb.get_item()
                .table_name("tx")
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::N(sk.to_string()))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
        }
    };
    let before = item("a", 0).await;
    let records_before = tests::moto::read_stream(&sdk, &stream_arn).await.len();
    assert_eq!(records_before, 3);

    let bump = Update::builder()
        .table_name("tx")
        .key("pk", s("a"))
        .key("sk", n(0))
        .update_expression("SET v = v + :one")
        .expression_attribute_values(":one", n(1))
        .build()
        .unwrap();
    let fresh = Put::builder()
        .table_name("tx")
        .item("pk", s("new-partition"))
        .item("sk", n(1))
        .build()
        .unwrap();
    let taken = Put::builder()
        .table_name("tx")
        .item("pk", s("a"))
        .item("sk", n(2))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .unwrap();
    let err = ddb
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(bump.clone()).build())
        .transact_items(TransactWriteItem::builder().put(fresh).build())
        .transact_items(TransactWriteItem::builder().put(taken).build())
        .send()
        .await
        .expect_err("the last item's condition fails");
    let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        err.as_service_error()
    else {
        panic!("expected TransactionCanceledException, got {err:?}");
    };
    let reasons: Vec<Option<String>> = cancelled
        .cancellation_reasons()
        .iter()
        .map(|r| r.code().map(str::to_string))
        .collect();
    assert_eq!(
        reasons.last().cloned().flatten().as_deref(),
        Some("ConditionalCheckFailed"),
        "{reasons:?}"
    );
    assert_eq!(item("a", 0).await, before, "the update is rolled back");
    assert_eq!(
        item("new-partition", 1).await,
        None,
        "the put is rolled back"
    );
    assert_eq!(
        tests::moto::read_stream(&sdk, &stream_arn).await.len(),
        records_before,
        "a cancelled transaction leaves no stream record"
    );

    // A transaction that commits still applies every item and streams each of them.
    ddb.transact_write_items()
        .transact_items(TransactWriteItem::builder().update(bump).build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        item("a", 0).await.and_then(|i| i.get("v").cloned()),
        Some(n(2))
    );
    assert_eq!(
        tests::moto::read_stream(&sdk, &stream_arn).await.len(),
        records_before + 1
    );
    moto.stop();
}

/// A reader of the stream must never see the records of a transaction that is then cancelled, nor skip a committed
/// record. moto appends a transaction's stream records as it applies each item and the rollback cuts them off
/// again; a GetRecords in between would return an INSERT that never happened, and its next iterator (after that
/// sequence number) would step over the committed record that later reuses the number. The endpoint runs the
/// DynamoDB Streams API under the same lock as DynamoDB, so readers see only whole transactions.
///
/// Two readers follow the stream as the poller does (TRIM_HORIZON, then each page's next iterator) while one writer
/// commits transactions and another has wide transactions cancelled (many puts, then a failing condition, so the
/// window between their writes and their rollback is long). Bounded: a fixed number of transactions, and each
/// reader stops after an empty page once the writers are done, or fails at 20,000 pages or 180 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_records_never_returns_a_cancelled_write_nor_skips_a_committed_one() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
        ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem,
    };
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    const COMMITS: i64 = 60;
    const CANCELS: i64 = 60;
    const PUTS_PER_CANCEL: i64 = 40;
    const MAX_PAGES: usize = 20_000;
    const DEADLINE: Duration = Duration::from_secs(180);

    let dir = tempfile::tempdir().unwrap();
    let moto = Endpoint::start_fresh(dir.path())
        .await
        .expect("moto starts");
    let sdk = moto.sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let s = |v: &str| AttributeValue::S(v.into());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let table = ddb
        .create_table()
        .table_name("race")
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stream_arn = table
        .table_description
        .and_then(|d| d.latest_stream_arn)
        .expect("the table has a stream");
    // The item every cancelled transaction's last put collides with.
    ddb.put_item()
        .table_name("race")
        .item("pk", s("taken"))
        .item("sk", n(0))
        .send()
        .await
        .unwrap();

    let writers_done = Arc::new(AtomicBool::new(false));
    let committer = {
        let ddb = ddb.clone();
        tokio::spawn(async move {
            for i in 0..COMMITS {
                ddb.transact_write_items()
                    .transact_items(
                        TransactWriteItem::builder()
                            .put(
                                Put::builder()
                                    .table_name("race")
                                    .item("pk", s("committed"))
                                    .item("sk", n(i))
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .expect("the committed transaction commits");
            }
        })
    };
    let canceller = {
        let ddb = ddb.clone();
        tokio::spawn(async move {
            for j in 0..CANCELS {
                let mut tx = ddb.transact_write_items();
                for k in 0..PUTS_PER_CANCEL {
                    tx = tx.transact_items(
                        TransactWriteItem::builder()
                            .put(
                                Put::builder()
                                    .table_name("race")
                                    .item("pk", s(&format!("cancelled-{j}")))
                                    .item("sk", n(k))
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    );
                }
                let err = tx
                    .transact_items(
                        TransactWriteItem::builder()
                            .put(
                                Put::builder()
                                    .table_name("race")
                                    .item("pk", s("taken"))
                                    .item("sk", n(0))
                                    .condition_expression("attribute_not_exists(pk)")
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .send()
                    .await
                    .expect_err("the last put's condition fails");
                assert!(
                    err.as_service_error()
                        .is_some_and(|e| e.is_transaction_canceled_exception()),
                    "{err:?}"
                );
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
            let stream_arn = stream_arn.clone();
            let writers_done = writers_done.clone();
            tokio::spawn(async move {
                let shard = streams
                    .describe_stream()
                    .stream_arn(&stream_arn)
                    .send()
                    .await
                    .unwrap()
                    .stream_description
                    .and_then(|d| d.shards)
                    .and_then(|s| s.into_iter().next())
                    .and_then(|s| s.shard_id)
                    .expect("one shard");
                let mut iterator = streams
                    .get_shard_iterator()
                    .stream_arn(&stream_arn)
                    .shard_id(shard)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .unwrap()
                    .shard_iterator
                    .expect("an iterator");
                let started = Instant::now();
                let mut seen: Vec<(String, String)> = Vec::new();
                let mut pages = 0;
                loop {
                    // Read once more after the writers are done: an empty page then means caught up.
                    let done = writers_done.load(Ordering::SeqCst);
                    pages += 1;
                    assert!(
                        pages <= MAX_PAGES && started.elapsed() < DEADLINE,
                        "the reader did not catch up within {MAX_PAGES} pages / {DEADLINE:?} ({} records seen)",
                        seen.len()
                    );
                    let out = streams
                        .get_records()
                        .shard_iterator(&iterator)
                        .send()
                        .await
                        .unwrap();
                    let records = out.records.unwrap_or_default();
                    if records.is_empty() && done {
                        return (seen, pages);
                    }
                    for r in records {
                        let keys = r.dynamodb.and_then(|d| d.keys).unwrap_or_default();
                        let key = |k: &str| match keys.get(k) {
                            Some(aws_sdk_dynamodbstreams::types::AttributeValue::S(v)) => v.clone(),
                            Some(aws_sdk_dynamodbstreams::types::AttributeValue::N(v)) => v.clone(),
                            other => panic!("unexpected key {k}: {other:?}"),
                        };
                        seen.push((key("pk"), key("sk")));
                    }
                    iterator = out.next_shard_iterator.expect("an open shard");
                }
            })
        })
        .collect();
    committer.await.unwrap();
    canceller.await.unwrap();
    writers_done.store(true, Ordering::SeqCst);

    let mut expected = vec![("taken".to_string(), "0".to_string())];
    expected.extend((0..COMMITS).map(|i| ("committed".to_string(), i.to_string())));
    for reader in readers {
        let (seen, pages) = reader.await.unwrap();
        let rolled_back: Vec<_> = seen
            .iter()
            .filter(|(pk, _)| pk.starts_with("cancelled-"))
            .collect();
        assert!(
            rolled_back.is_empty(),
            "a reader ({pages} pages) saw {} record(s) of cancelled transactions, e.g. {:?}",
            rolled_back.len(),
            rolled_back.first()
        );
        assert_eq!(
            seen, expected,
            "a reader ({pages} pages) saw every committed record once, in commit order"
        );
    }
    moto.stop();
}
