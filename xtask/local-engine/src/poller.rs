//! The local stream poller: DynamoDB Streams -> projector, with the event source mapping's semantics.
//!
//! Why it exists: on the local endpoint an `AWS::Lambda::EventSourceMapping` empties the stream (it tries
//! to run the function in Docker), so the template leaves the mapping out locally and this poller plays
//! its part, with the settings of the plan (the same data that renders the AWS mapping): batch size,
//! batching window, starting position, bisect on error, maximum retry attempts, maximum record age,
//! `ReportBatchItemFailures` (resume from the lowest failed sequence number) and the on-failure
//! destination (a Lambda-style description of the failed batch sent to the dead-letter queue).
//!
//! Records are filtered first, as the mapping's `FilterCriteria` do on AWS, with the plan's patterns
//! ([`matches_filter`] implements the subset of Lambda's filter syntax they use: nested keys, lists of
//! literal alternatives, `exists`); a record that matches no pattern is dropped, never delivered.
//!
//! Delivery is at least once and in order per shard. The last processed sequence number of every shard is
//! persisted (atomically) after each batch, so a restarted engine resumes where it stopped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stack::{FunctionName, StartingPosition, StreamMapping};
use tokio::sync::watch;

use crate::host::Host;

/// Settings of one poller.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub stream_arn: String,
    /// SQS queue for the on-failure destination; without it failed batches are only logged.
    pub dead_letter_queue_url: Option<String>,
    pub mapping: StreamMapping,
    /// The function that consumes the stream (the projector).
    pub function: FunctionName,
    /// Its ARN, for the failure descriptions.
    pub function_arn: String,
    pub region: String,
    pub checkpoint_path: PathBuf,
    /// Pause between polls of an idle shard (Lambda polls about four times a second).
    pub poll_interval: Duration,
}

/// Counters the poller publishes (tests and the benchmark read them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollerStats {
    pub batches_ok: u64,
    pub batches_failed: u64,
    pub records_delivered: u64,
    pub records_sent_to_dlq: u64,
    /// Projection lag of the last delivered batch: from its oldest event's `timestamp` to the end of the
    /// projector invocation that applied it, in milliseconds.
    pub last_lag_ms: Option<u64>,
    /// The `timestamp` (epoch ms) of the oldest event of the batch being delivered or retried, `None` when
    /// no batch is in flight: the inspector reads a growing lag from it while the projector fails.
    pub in_flight_since_ms: Option<i64>,
}

/// What the poller notes of a batch it sent to the dead-letter queue ([`crate::state::StatePaths::dead_letters`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterNote {
    /// The message's `requestContext.requestId`.
    pub request_id: String,
    pub condition: String,
    /// Why the batch failed: the invocation's error, or `batchItemFailures` when the projector reported them.
    pub error: Option<String>,
    pub records: Vec<DeadRecord>,
}

/// One record of a dead-lettered batch: enough to find its event in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadRecord {
    pub aggregate_id: Option<String>,
    pub version: Option<u64>,
    pub event_type: Option<String>,
    pub sequence_number: Option<String>,
}

/// Persisted per-shard progress.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkpoints {
    pub stream_arn: String,
    /// shard id -> last processed sequence number.
    pub shards: BTreeMap<String, String>,
}

impl Checkpoints {
    /// Loads the checkpoints of `stream_arn`; checkpoints of another stream (the table was recreated, e.g.
    /// because the endpoint restarted) are discarded.
    pub fn load(path: &std::path::Path, stream_arn: &str) -> Checkpoints {
        let loaded: Option<Checkpoints> = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match loaded {
            Some(c) if c.stream_arn == stream_arn => c,
            _ => Checkpoints {
                stream_arn: stream_arn.to_string(),
                shards: BTreeMap::new(),
            },
        }
    }

    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        crate::state::write_atomic(
            path,
            &serde_json::to_vec_pretty(self).expect("serialisable"),
        )
    }
}

/// The poller: one task reading every shard of the stream.
pub struct Poller {
    cfg: PollerConfig,
    host: Arc<Host>,
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    checkpoints: Checkpoints,
    shards: HashMap<String, ShardState>,
    stats: watch::Sender<PollerStats>,
}

#[derive(Default)]
struct ShardState {
    iterator: Option<String>,
    buffer: Vec<Record>,
    buffer_since: Option<Instant>,
    closed: bool,
}

impl Poller {
    pub fn new(
        cfg: PollerConfig,
        host: Arc<Host>,
        sdk: &aws_config::SdkConfig,
    ) -> (Poller, watch::Receiver<PollerStats>) {
        let checkpoints = Checkpoints::load(&cfg.checkpoint_path, &cfg.stream_arn);
        let (stats, stats_rx) = watch::channel(PollerStats::default());
        let poller = Poller {
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            cfg,
            host,
            checkpoints,
            shards: HashMap::new(),
            stats,
        };
        (poller, stats_rx)
    }

    /// Polls until `shutdown` turns true. Errors of the endpoint are logged and retried, never fatal.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut last_describe: Option<Instant> = None;
        let mut shard_order: Vec<String> = Vec::new();
        while !*shutdown.borrow() {
            if last_describe.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                match self.describe_shards().await {
                    Ok(order) => {
                        shard_order = order;
                        last_describe = Some(Instant::now());
                    }
                    Err(e) => tracing::warn!("describing stream {}: {e}", self.cfg.stream_arn),
                }
            }
            let mut busy = false;
            for shard_id in shard_order.clone() {
                match self.poll_shard(&shard_id).await {
                    Ok(got) => busy |= got,
                    Err(e) => {
                        tracing::warn!("polling shard {shard_id}: {e}");
                        // Start again from the checkpoint: buffered records will be read again.
                        self.shards.insert(shard_id.clone(), ShardState::default());
                    }
                }
            }
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Lists shards, parents before children, so records are processed in order across a shard split.
    async fn describe_shards(&mut self) -> Result<Vec<String>, String> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.cfg.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| {
                    format!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
                })?;
            let desc = out.stream_description.ok_or("no stream description")?;
            shards.extend(desc.shards.unwrap_or_default());
            match desc.last_evaluated_shard_id {
                Some(id) if !id.is_empty() => start = Some(id),
                _ => break,
            }
        }
        let ids: std::collections::HashSet<String> =
            shards.iter().filter_map(|s| s.shard_id.clone()).collect();
        let mut ordered: Vec<String> = Vec::new();
        let mut remaining = shards;
        while !remaining.is_empty() {
            let before = remaining.len();
            remaining.retain(|s| {
                let id = s.shard_id.clone().unwrap_or_default();
                let parent_done = s
                    .parent_shard_id
                    .as_ref()
                    .is_none_or(|p| !ids.contains(p) || ordered.contains(p));
                if parent_done {
                    ordered.push(id);
                    false
                } else {
                    true
                }
            });
            if remaining.len() == before {
                ordered.extend(remaining.iter().filter_map(|s| s.shard_id.clone()));
                break;
            }
        }
        Ok(ordered)
    }

    /// Reads one page of a shard and delivers a batch when it is full or its window has passed.
    /// Returns whether records were read or delivered (then the next poll comes without a pause).
    async fn poll_shard(&mut self, shard_id: &str) -> Result<bool, String> {
        let batch_size = self.cfg.mapping.batch_size.max(1) as usize;
        let window = Duration::from_secs(self.cfg.mapping.maximum_batching_window_seconds as u64);
        let state = self.shards.entry(shard_id.to_string()).or_default();
        if state.closed && state.buffer.is_empty() {
            return Ok(false);
        }
        if state.iterator.is_none() && !state.closed {
            let mut req = self
                .streams
                .get_shard_iterator()
                .stream_arn(&self.cfg.stream_arn)
                .shard_id(shard_id);
            req = match self.checkpoints.shards.get(shard_id) {
                Some(seq) => req
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                None => req.shard_iterator_type(match self.cfg.mapping.starting_position {
                    StartingPosition::TrimHorizon => ShardIteratorType::TrimHorizon,
                    StartingPosition::Latest => ShardIteratorType::Latest,
                }),
            };
            let out = req.send().await.map_err(|e| {
                format!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
            })?;
            let state = self.shards.get_mut(shard_id).expect("inserted above");
            state.iterator = out.shard_iterator;
            if state.iterator.is_none() {
                state.closed = true;
            }
        }
        let mut read_any = false;
        let state = self.shards.get_mut(shard_id).expect("inserted above");
        if let Some(iterator) = state.iterator.clone()
            && state.buffer.len() < batch_size
        {
            let want = (batch_size - state.buffer.len()).min(1000) as i32;
            let out = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(want)
                .send()
                .await
                .map_err(|e| {
                    format!("{}", aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
                })?;
            let records: Vec<Record> = out
                .records
                .unwrap_or_default()
                .into_iter()
                .filter(|r| self.passes_filter(r))
                .collect();
            let state = self.shards.get_mut(shard_id).expect("inserted above");
            read_any = !records.is_empty();
            if read_any && state.buffer.is_empty() {
                state.buffer_since = Some(Instant::now());
            }
            state.buffer.extend(records);
            state.iterator = out.next_shard_iterator;
            if state.iterator.is_none() {
                state.closed = true;
            }
        }
        let state = self.shards.get_mut(shard_id).expect("inserted above");
        let ready = state.buffer.len() >= batch_size
            || (!state.buffer.is_empty()
                && (state.closed || state.buffer_since.is_some_and(|t| t.elapsed() >= window)));
        if !ready {
            return Ok(read_any);
        }
        let take = state.buffer.len().min(batch_size);
        let batch: Vec<Record> = state.buffer.drain(..take).collect();
        state.buffer_since = if state.buffer.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        self.deliver(shard_id, batch).await;
        Ok(true)
    }

    /// Whether a record matches one of the mapping's filter patterns (every record, without patterns).
    fn passes_filter(&self, record: &Record) -> bool {
        let patterns = &self.cfg.mapping.filter_patterns;
        if patterns.is_empty() {
            return true;
        }
        let json = record_json(record, &self.cfg.region, &self.cfg.stream_arn);
        patterns.iter().any(|p| {
            serde_json::from_str::<Value>(p).is_ok_and(|pattern| matches_filter(&pattern, &json))
        })
    }

    /// Delivers one batch with retries, bisection, partial failures and the on-failure destination.
    async fn deliver(&mut self, shard_id: &str, records: Vec<Record>) {
        let mapping = self.cfg.mapping.clone();
        let mut queue: VecDeque<(Vec<Record>, u32)> = VecDeque::from([(records, 0)]);
        while let Some((batch, attempts)) = queue.pop_front() {
            // Records older than the maximum age are not delivered any more (Lambda discards them and
            // reports them to the on-failure destination).
            let max_age = Duration::from_secs(mapping.maximum_record_age_seconds as u64);
            let (expired, batch): (Vec<Record>, Vec<Record>) = batch
                .into_iter()
                .partition(|r| record_age(r).is_some_and(|age| age > max_age));
            if !expired.is_empty() {
                self.send_to_dlq(shard_id, &expired, "RecordAgeExceeded", attempts, None)
                    .await;
                if batch.is_empty() {
                    self.checkpoint(shard_id, &expired);
                    continue;
                }
            }
            if batch.is_empty() {
                continue;
            }
            let oldest = batch.iter().filter_map(event_time_ms).min();
            self.stats.send_modify(|s| s.in_flight_since_ms = oldest);
            let payload =
                Bytes::from(serde_json::to_vec(&self.event(&batch)).expect("json serialises"));
            let failed_from: Result<Option<usize>, String> =
                match self.host.invoke(self.cfg.function, payload).await {
                    Ok(out) => Ok(lowest_failure(&out.body, &batch)),
                    Err(e) => Err(e.to_string()),
                };
            let (remaining, error) = match failed_from {
                Ok(None) => {
                    self.checkpoint(shard_id, &batch);
                    let now = chrono::Utc::now().timestamp_millis();
                    self.stats.send_modify(|s| {
                        s.batches_ok += 1;
                        s.records_delivered += batch.len() as u64;
                        s.last_lag_ms = oldest.map(|t| (now - t).max(0) as u64);
                        s.in_flight_since_ms = None;
                    });
                    continue;
                }
                Ok(Some(idx)) => {
                    // ReportBatchItemFailures: everything before the lowest failed record is done.
                    if idx > 0 {
                        self.checkpoint(shard_id, &batch[..idx]);
                        self.stats
                            .send_modify(|s| s.records_delivered += idx as u64);
                    }
                    (batch[idx..].to_vec(), "batchItemFailures".to_string())
                }
                Err(e) => (batch, e),
            };
            self.stats.send_modify(|s| s.batches_failed += 1);
            let attempts = attempts + 1;
            tracing::warn!(
                "projector batch of {} record(s) failed (attempt {attempts}): {error}",
                remaining.len()
            );
            if attempts > mapping.maximum_retry_attempts {
                self.send_to_dlq(
                    shard_id,
                    &remaining,
                    "RetryAttemptsExhausted",
                    attempts,
                    Some(&error),
                )
                .await;
                self.checkpoint(shard_id, &remaining);
                self.stats.send_modify(|s| s.in_flight_since_ms = None);
            } else if mapping.bisect_batch_on_function_error && remaining.len() > 1 {
                let mut first = remaining;
                let second = first.split_off(first.len() / 2);
                queue.push_front((second, attempts));
                queue.push_front((first, attempts));
            } else {
                tokio::time::sleep(Duration::from_millis((100 * attempts as u64).min(1000))).await;
                queue.push_front((remaining, attempts));
            }
        }
    }

    fn checkpoint(&mut self, shard_id: &str, done: &[Record]) {
        let Some(seq) = done.last().and_then(sequence_number) else {
            return;
        };
        self.checkpoints.shards.insert(shard_id.to_string(), seq);
        if let Err(e) = self.checkpoints.save(&self.cfg.checkpoint_path) {
            tracing::warn!(
                "saving checkpoint {}: {e}",
                self.cfg.checkpoint_path.display()
            );
        }
    }

    /// The stream event Lambda would send for these records.
    fn event(&self, batch: &[Record]) -> Value {
        json!({ "Records": batch.iter().map(|r| record_json(r, &self.cfg.region, &self.cfg.stream_arn)).collect::<Vec<_>>() })
    }

    /// Sends the description of failed records to the on-failure destination, like Lambda does for
    /// stream sources (the records themselves are not included; their sequence range is).
    async fn send_to_dlq(
        &mut self,
        shard_id: &str,
        records: &[Record],
        condition: &str,
        attempts: u32,
        error: Option<&str>,
    ) {
        self.stats
            .send_modify(|s| s.records_sent_to_dlq += records.len() as u64);
        let message = failure_description(&self.cfg, shard_id, records, condition, attempts, error);
        // The queue's message, like Lambda's, names only a sequence range; the note keeps what a person
        // debugging it needs (the error and each record's event), for the inspector.
        let note = DeadLetterNote {
            request_id: message["requestContext"]["requestId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            condition: condition.to_string(),
            error: error.map(str::to_string),
            records: records.iter().map(dead_record).collect(),
        };
        let journal = self
            .cfg
            .checkpoint_path
            .with_file_name("dead-letters.jsonl");
        if let Err(e) = crate::state::append_json_line(&journal, &note) {
            tracing::warn!("noting a dead-lettered batch in {}: {e}", journal.display());
        }
        let Some(url) = &self.cfg.dead_letter_queue_url else {
            tracing::error!(
                "dropping {} record(s) with no on-failure destination: {message}",
                records.len()
            );
            return;
        };
        if let Err(e) = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(message.to_string())
            .send()
            .await
        {
            tracing::error!(
                "sending failed batch to {url}: {}; the description was {message}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            );
        }
    }
}

/// Lambda's on-failure record for a stream batch.
pub fn failure_description(
    cfg: &PollerConfig,
    shard_id: &str,
    records: &[Record],
    condition: &str,
    attempts: u32,
    error: Option<&str>,
) -> Value {
    let arrival = |r: Option<&Record>| {
        r.and_then(|r| r.dynamodb.as_ref())
            .and_then(|d| d.approximate_creation_date_time)
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::now_v7().to_string(),
            "functionArn": cfg.function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": if error.is_some() { "Unhandled" } else { "" },
        },
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records.first().and_then(sequence_number),
            "endSequenceNumber": records.last().and_then(sequence_number),
            "approximateArrivalOfFirstRecord": arrival(records.first()),
            "approximateArrivalOfLastRecord": arrival(records.last()),
            "batchSize": records.len(),
            "streamArn": cfg.stream_arn,
        }
    })
}

/// The keys of a stream record's event (from its new image).
fn dead_record(r: &Record) -> DeadRecord {
    let image = r.dynamodb.as_ref().and_then(|d| d.new_image.as_ref());
    let s = |name: &str| {
        image
            .and_then(|i| i.get(name))
            .and_then(|v| v.as_s().ok())
            .cloned()
    };
    DeadRecord {
        aggregate_id: s("aggregate_id"),
        version: image
            .and_then(|i| i.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok()),
        event_type: s("event_type"),
        sequence_number: sequence_number(r),
    }
}

/// The stored event's `timestamp` (epoch ms), from the record's new image.
fn event_time_ms(r: &Record) -> Option<i64> {
    let image = r.dynamodb.as_ref()?.new_image.as_ref()?;
    let ts = image.get("timestamp")?.as_s().ok()?;
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn sequence_number(r: &Record) -> Option<String> {
    r.dynamodb.as_ref().and_then(|d| d.sequence_number.clone())
}

fn record_age(r: &Record) -> Option<Duration> {
    let t = r.dynamodb.as_ref()?.approximate_creation_date_time?;
    let now = chrono::Utc::now().timestamp_millis();
    let ms = now - (t.secs() * 1000 + t.subsec_nanos() as i64 / 1_000_000);
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// Compares DynamoDB sequence numbers (decimal strings of arbitrary length).
fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Index of the first record to retry according to a `ReportBatchItemFailures` response, if any failed.
/// An identifier that matches no record of the batch fails the whole batch, as on Lambda.
pub fn lowest_failure(response: &[u8], batch: &[Record]) -> Option<usize> {
    let value: Value = serde_json::from_slice(response).ok()?;
    let failures = value.get("batchItemFailures")?.as_array()?;
    let ids: Vec<String> = failures
        .iter()
        .filter_map(|f| {
            f.get("itemIdentifier")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    if failures.is_empty() {
        return None;
    }
    if ids.len() != failures.len() {
        return Some(0);
    }
    let lowest = ids.iter().min_by(|a, b| seq_cmp(a, b))?;
    match batch
        .iter()
        .position(|r| sequence_number(r).as_deref() == Some(lowest.as_str()))
    {
        Some(idx) => Some(idx),
        None => Some(0),
    }
}

/// Whether `record` (as Lambda delivers it) matches a Lambda event filter `pattern`: every key of the
/// pattern must match; an object recurses, a list is a set of alternatives (a literal equal to the value,
/// or `{"exists": bool}`).
pub fn matches_filter(pattern: &Value, record: &Value) -> bool {
    let Some(pattern) = pattern.as_object() else {
        return false;
    };
    pattern.iter().all(|(key, sub)| {
        let value = record.get(key);
        match sub {
            Value::Object(_) => value.is_some_and(|v| matches_filter(sub, v)),
            Value::Array(alternatives) => alternatives.iter().any(|alt| match alt {
                Value::Object(o) if o.contains_key("exists") => {
                    o["exists"].as_bool() == Some(value.is_some())
                }
                literal => value.is_some_and(|v| v == literal),
            }),
            _ => false,
        }
    })
}

/// One record as Lambda delivers it (`aws_lambda_events::dynamodb::EventRecord`).
pub fn record_json(r: &Record, region: &str, stream_arn: &str) -> Value {
    let d = r.dynamodb.as_ref();
    let mut change = serde_json::Map::new();
    if let Some(t) = d.and_then(|d| d.approximate_creation_date_time) {
        change.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
    }
    if let Some(keys) = d.and_then(|d| d.keys.as_ref()) {
        change.insert("Keys".into(), item_json(keys));
    }
    if let Some(img) = d.and_then(|d| d.new_image.as_ref()) {
        change.insert("NewImage".into(), item_json(img));
    }
    if let Some(img) = d.and_then(|d| d.old_image.as_ref()) {
        change.insert("OldImage".into(), item_json(img));
    }
    if let Some(seq) = d.and_then(|d| d.sequence_number.clone()) {
        change.insert("SequenceNumber".into(), json!(seq));
    }
    change.insert(
        "SizeBytes".into(),
        json!(d.and_then(|d| d.size_bytes).unwrap_or(0)),
    );
    if let Some(v) = d.and_then(|d| d.stream_view_type.as_ref()) {
        change.insert("StreamViewType".into(), json!(v.as_str()));
    }
    json!({
        "eventID": r.event_id.clone().unwrap_or_default(),
        "eventName": r.event_name.as_ref().map(|n| n.as_str().to_string()).unwrap_or_default(),
        "eventVersion": r.event_version.clone().unwrap_or_else(|| "1.1".into()),
        "eventSource": "aws:dynamodb",
        "awsRegion": r.aws_region.clone().unwrap_or_else(|| region.to_string()),
        "dynamodb": Value::Object(change),
        "eventSourceARN": stream_arn,
    })
}

/// An item in DynamoDB's JSON wire format (`{"S": "..."}`, `{"N": "1"}`, ...).
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

fn attribute_json(v: &AttributeValue) -> Value {
    let b64 = |b: &aws_sdk_dynamodbstreams::primitives::Blob| {
        base64::engine::general_purpose::STANDARD.encode(b.as_ref())
    };
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::Bs(v) => json!({ "BS": v.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(v) => json!({ "L": v.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_json(m) }),
        _ => json!({ "NULL": true }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_events_only_filter_keeps_inserted_events_and_nothing_else() {
        let pattern: Value = serde_json::from_str(stack::EVENTS_ONLY_FILTER).unwrap();
        let record =
            |name: &str, image: Value| json!({"eventName": name, "dynamodb": {"NewImage": image}});
        let event =
            json!({"aggregate_id": {"S": "a"}, "version": {"N": "1"}, "event_type": {"S": "t"}});
        let head =
            json!({"aggregate_id": {"S": "a"}, "version": {"N": "0"}, "head_version": {"N": "1"}});
        assert!(matches_filter(&pattern, &record("INSERT", event.clone())));
        assert!(!matches_filter(&pattern, &record("MODIFY", event)));
        assert!(!matches_filter(&pattern, &record("INSERT", head.clone())));
        assert!(!matches_filter(&pattern, &record("MODIFY", head)));
        assert!(!matches_filter(
            &pattern,
            &json!({"eventName": "REMOVE", "dynamodb": {}})
        ));
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(seq_cmp("9", "10"), std::cmp::Ordering::Less);
        assert_eq!(seq_cmp("000100", "99"), std::cmp::Ordering::Greater);
    }
}
