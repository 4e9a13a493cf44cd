//! One local AWS endpoint (moto) shared by the tests of one test binary: moto is slow to start, so tests hold
//! it through a reference count and it stops when the last running test drops its handle. Each test uses its
//! own tables, buckets or log groups on it.

use std::sync::{Arc, Weak};

use local_engine::endpoint::Endpoint;

static SHARED: tokio::sync::Mutex<Weak<SharedMoto>> = tokio::sync::Mutex::const_new(Weak::new());

/// A running moto and its state directory (removed with it).
pub struct SharedMoto {
    pub endpoint: Endpoint,
    _dir: tempfile::TempDir,
}

/// The shared moto, started when no running test holds it.
pub async fn shared() -> Arc<SharedMoto> {
    let mut shared = SHARED.lock().await;
    if let Some(m) = shared.upgrade() {
        return m;
    }
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint::start_fresh(dir.path())
        .await
        .expect("the local AWS endpoint starts");
    let m = Arc::new(SharedMoto {
        endpoint,
        _dir: dir,
    });
    *shared = Arc::downgrade(&m);
    m
}

/// Every record of the stream `stream_arn`, from the trim horizon of each shard.
pub async fn read_stream(
    sdk: &aws_config::SdkConfig,
    stream_arn: &str,
) -> Vec<aws_sdk_dynamodbstreams::types::Record> {
    let streams = aws_sdk_dynamodbstreams::Client::new(sdk);
    let shards = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .and_then(|d| d.shards)
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        while let Some(it) = iterator.take() {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            let batch = out.records.unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            records.extend(batch);
            iterator = out.next_shard_iterator;
        }
    }
    records
}
