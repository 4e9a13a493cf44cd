//! What the inspector reads, and only reads: the events table (an aggregate's timeline a page at a time, the
//! heads that list the aggregates, the `EventTypeTimestampIndex` GSI), the projections table (read models),
//! the dead-letter queue (received with a visibility timeout of 0, so no message is hidden or deleted), and
//! the engine's own files in the state directory (function logs, poller checkpoints and dead-letter notes,
//! the hotswap history) and the release manifest.
//!
//! Every DynamoDB call here is a Query, Scan or GetItem: a test greps this file for writing calls. The domain
//! is reached only through `domain::registry()`, so a user's new aggregate type is shown without a change here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::StoredEvent;
use serde::Serialize;
use serde_json::{Map, Value};
use service::ReadModel;

use crate::poller::DeadLetterNote;

type Item = HashMap<String, AttributeValue>;

/// Events shown per timeline page.
pub const TIMELINE_PAGE: i32 = 50;
/// Aggregates listed per page of the overview.
pub const AGGREGATES_PAGE: usize = 100;
/// Events per page of the by-type view.
pub const TYPE_PAGE: usize = 50;
/// How much of a function log's end is read for its recent invocations.
const LOG_TAIL_BYTES: u64 = 512 * 1024;

/// A failed read, shown on the page instead of the data.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

fn aws_err<E: std::error::Error + 'static>(what: &str) -> impl FnOnce(E) -> ReadError + '_ {
    move |e| {
        ReadError(format!(
            "{what}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        ))
    }
}

/// One row of the aggregate list: from the aggregate's head (version 0) and its last event.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateRow {
    pub aggregate_id: String,
    pub aggregate_type: String,
    pub version: u64,
    pub last_event_at: String,
}

/// One page of aggregates, and the key to continue the scan after it.
#[derive(Debug, Clone, Serialize)]
pub struct AggregatePage {
    pub rows: Vec<AggregateRow>,
    pub next: Option<String>,
}

/// One event of a timeline, or a stored item that does not parse as an event (shown raw, since a broken
/// item is exactly what a user debugging a projection needs to see).
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEvent {
    pub version: String,
    pub event_type: String,
    pub schema_version: u32,
    pub timestamp: String,
    pub data: String,
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub event_id: String,
    /// Why the item is not a readable event, when it is not.
    pub broken: Option<String>,
}

/// One page of an aggregate's events (`version > after`, at most [`TIMELINE_PAGE`]).
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePage {
    pub events: Vec<TimelineEvent>,
    /// The version to continue after, when more events follow.
    pub next_after: Option<u64>,
}

impl Folded {
    fn replayed(&self, events_read: u64) -> Replayed {
        Replayed {
            aggregate_type: self.state.as_ref().map(|s| s.kind().to_string()),
            version: self.version,
            state: self.state.as_ref().map(|s| s.state()),
            failure: self.failure.clone(),
            events_read,
        }
    }
}

/// The state replay computes from the whole log.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub aggregate_type: Option<String>,
    pub version: u64,
    pub state: Option<Value>,
    /// The event replay stopped at, and why.
    pub failure: Option<String>,
    /// Events read from the table for this answer (the rest came from the cache).
    pub events_read: u64,
}

/// Replay as the page shows it: done, or still folding a long log in the background.
#[derive(Debug, Clone)]
pub enum ReplayView {
    Done(Replayed),
    /// Events folded so far; the page says so and reloads until replay is done.
    Running {
        folded: u64,
    },
}

/// How long a page waits for a replay before it is shown without it (and reloads to pick it up).
pub const REPLAY_BUDGET: std::time::Duration = std::time::Duration::from_millis(700);

/// The reads of one local environment. Cheap to clone (clients and the replay cache are shared).
#[derive(Clone)]
pub struct Reader {
    pub dynamo: Client,
    pub sqs: aws_sdk_sqs::Client,
    pub events_table: String,
    pub projections_table: String,
    pub dead_letter_queue_url: Option<String>,
    /// Folded states by aggregate id: the next open of an aggregate reads only the events after it.
    replay_cache: Arc<Mutex<HashMap<String, Folded>>>,
    /// Replays folding in the background: aggregate id -> events folded so far.
    running: Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>,
    /// The error of a background replay that failed to read, shown once.
    errors: Arc<Mutex<HashMap<String, String>>>,
}

#[derive(Debug, Clone)]
struct Folded {
    version: u64,
    state: Option<Box<dyn domain::State>>,
    failure: Option<String>,
}

impl Reader {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        events_table: String,
        projections_table: String,
        dead_letter_queue_url: Option<String>,
    ) -> Reader {
        Reader {
            dynamo: Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            events_table,
            projections_table,
            dead_letter_queue_url,
            replay_cache: Arc::new(Mutex::new(HashMap::new())),
            running: Arc::new(Mutex::new(HashMap::new())),
            errors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Aggregates, from their heads: a Scan of the events table filtered on `version = 0`, continued until a
    /// page holds [`AGGREGATES_PAGE`] of them or the table ends, then one Query per aggregate for its last
    /// event's time.
    pub async fn aggregates(&self, start: Option<&str>) -> Result<AggregatePage, ReadError> {
        let mut rows = Vec::new();
        let mut key: Option<Item> = start.map(|id| {
            HashMap::from([
                (
                    "aggregate_id".to_string(),
                    AttributeValue::S(id.to_string()),
                ),
                ("version".to_string(), AttributeValue::N("0".into())),
            ])
        });
        let mut next = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.events_table)
                .filter_expression("#v = :zero")
                .projection_expression("aggregate_id, head_version, aggregate_type")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .set_exclusive_start_key(key.take())
                .send()
                .await
                .map_err(aws_err("scanning the events table for aggregates"))?;
            for item in out.items.unwrap_or_default() {
                let s = |n: &str| item.get(n).and_then(|v| v.as_s().ok()).cloned();
                rows.push(AggregateRow {
                    aggregate_id: s("aggregate_id").unwrap_or_default(),
                    aggregate_type: s("aggregate_type").unwrap_or_else(|| "?".into()),
                    version: item
                        .get("head_version")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    last_event_at: String::new(),
                });
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => {
                    if rows.len() >= AGGREGATES_PAGE {
                        next = k.get("aggregate_id").and_then(|v| v.as_s().ok()).cloned();
                        break;
                    }
                    key = Some(k);
                }
                _ => break,
            }
        }
        rows.sort_by(|a, b| a.aggregate_id.cmp(&b.aggregate_id));
        let times = futures::future::join_all(
            rows.iter()
                .map(|r| self.last_event_time(&r.aggregate_id, r.version)),
        )
        .await;
        for (row, time) in rows.iter_mut().zip(times) {
            row.last_event_at = time.unwrap_or_default();
        }
        Ok(AggregatePage { rows, next })
    }

    /// The `timestamp` of an aggregate's event `version` (its last one): one GetItem.
    async fn last_event_time(&self, aggregate_id: &str, version: u64) -> Option<String> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.events_table)
            .key("aggregate_id", AttributeValue::S(aggregate_id.to_string()))
            .key("version", AttributeValue::N(version.to_string()))
            .projection_expression("#t")
            .expression_attribute_names("#t", "timestamp")
            .send()
            .await
            .ok()?;
        out.item?.get("timestamp")?.as_s().ok().cloned()
    }

    /// One page of an aggregate's events after `after`: a Query with `Limit` whose `ExclusiveStartKey` is the
    /// last event shown, so a page costs the same at any depth of a long history.
    pub async fn timeline(
        &self,
        aggregate_id: &str,
        after: u64,
    ) -> Result<TimelinePage, ReadError> {
        let start = (after > 0).then(|| {
            HashMap::from([
                (
                    "aggregate_id".to_string(),
                    AttributeValue::S(aggregate_id.to_string()),
                ),
                ("version".to_string(), AttributeValue::N(after.to_string())),
            ])
        });
        let out = self
            .dynamo
            .query()
            .table_name(&self.events_table)
            .key_condition_expression("aggregate_id = :a AND #v > :zero")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":a", AttributeValue::S(aggregate_id.to_string()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .limit(TIMELINE_PAGE)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(aws_err("querying the aggregate's events"))?;
        let events: Vec<TimelineEvent> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(timeline_event)
            .collect();
        let next_after = match out.last_evaluated_key {
            Some(k) if !k.is_empty() => k
                .get("version")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse().ok()),
            _ => None,
        };
        Ok(TimelinePage { events, next_after })
    }

    /// The aggregate's head version (what the command side holds), if it has a head.
    pub async fn head_version(&self, aggregate_id: &str) -> Result<Option<u64>, ReadError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.events_table)
            .key("aggregate_id", AttributeValue::S(aggregate_id.to_string()))
            .key("version", AttributeValue::N("0".into()))
            .projection_expression("head_version")
            .send()
            .await
            .map_err(aws_err("reading the aggregate's head"))?;
        Ok(out
            .item
            .and_then(|i| i.get("head_version").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok()))
    }

    /// The read model as the projector wrote it.
    pub async fn read_model(&self, aggregate_id: &str) -> Result<Option<ReadModel>, ReadError> {
        let out = self
            .dynamo
            .get_item()
            .table_name(&self.projections_table)
            .key("aggregate_id", AttributeValue::S(aggregate_id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_err("reading the read model"))?;
        out.item
            .map(|item| {
                serde_dynamo::from_item(item)
                    .map_err(|e| ReadError(format!("the read model does not parse: {e}")))
            })
            .transpose()
    }

    /// The state replay computes, folding the aggregate's log through the registry as `cargo xtask replay`
    /// does. The folded state is kept: when the head says nothing was written since, no event is read; else
    /// only the events after it are. A fold that takes longer than [`REPLAY_BUDGET`] (a long history on the
    /// local endpoint) goes on in the background and the page is shown without it, with its progress.
    pub async fn replay(
        &self,
        aggregate_id: &str,
        head_version: Option<u64>,
    ) -> Result<ReplayView, ReadError> {
        if let Some(why) = self.errors.lock().expect("errors").remove(aggregate_id) {
            return Err(ReadError(why));
        }
        let current = |reader: &Reader| {
            let cache = reader.replay_cache.lock().expect("replay cache");
            cache.get(aggregate_id).and_then(|f| {
                let fresh = f.failure.is_some() || head_version.is_some_and(|h| f.version >= h);
                fresh.then(|| f.clone())
            })
        };
        if let Some(f) = current(self) {
            return Ok(ReplayView::Done(f.replayed(0)));
        }
        let progress = {
            let mut running = self.running.lock().expect("running replays");
            match running.get(aggregate_id) {
                Some(p) => p.clone(),
                None => {
                    let p = Arc::new(AtomicU64::new(0));
                    running.insert(aggregate_id.to_string(), p.clone());
                    let (reader, id, p2) = (self.clone(), aggregate_id.to_string(), p.clone());
                    tokio::spawn(async move {
                        let result = reader.fold_log(&id, &p2).await;
                        if let Err(e) = result {
                            reader
                                .errors
                                .lock()
                                .expect("errors")
                                .insert(id.clone(), e.0);
                        }
                        reader.running.lock().expect("running replays").remove(&id);
                    });
                    p
                }
            }
        };
        let deadline = tokio::time::Instant::now() + REPLAY_BUDGET;
        loop {
            let done = !self
                .running
                .lock()
                .expect("running replays")
                .contains_key(aggregate_id);
            if done {
                if let Some(why) = self.errors.lock().expect("errors").remove(aggregate_id) {
                    return Err(ReadError(why));
                }
                let folded = self
                    .replay_cache
                    .lock()
                    .expect("replay cache")
                    .get(aggregate_id)
                    .cloned();
                return Ok(ReplayView::Done(
                    folded
                        .unwrap_or(Folded {
                            version: 0,
                            state: None,
                            failure: None,
                        })
                        .replayed(progress.load(Ordering::Relaxed)),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(ReplayView::Running {
                    folded: progress.load(Ordering::Relaxed),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Folds the events after the cached state, a 1 MB Query page at a time (never the whole log in memory),
    /// and caches the result.
    async fn fold_log(&self, aggregate_id: &str, progress: &AtomicU64) -> Result<(), ReadError> {
        let cached = self
            .replay_cache
            .lock()
            .expect("replay cache")
            .get(aggregate_id)
            .cloned();
        let mut folded = cached.unwrap_or(Folded {
            version: 0,
            state: None,
            failure: None,
        });
        let mut start: Option<Item> = None;
        'pages: loop {
            let out = self
                .dynamo
                .query()
                .table_name(&self.events_table)
                .key_condition_expression("aggregate_id = :a AND #v > :after")
                .projection_expression("#v, event_type, schema_version, event_data")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":a", AttributeValue::S(aggregate_id.to_string()))
                .expression_attribute_values(
                    ":after",
                    AttributeValue::N(folded.version.to_string()),
                )
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(aws_err("querying the aggregate's events for replay"))?;
            for item in out.items.unwrap_or_default() {
                progress.fetch_add(1, Ordering::Relaxed);
                if let Err(why) = fold_item(&mut folded, &item) {
                    folded.failure = Some(why);
                    break 'pages;
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        self.replay_cache
            .lock()
            .expect("replay cache")
            .insert(aggregate_id.to_string(), folded);
        Ok(())
    }

    /// One page of one event type from the GSI, in time order (the API's own query and cursor).
    pub async fn events_by_type(
        &self,
        query: &service::TypeQuery,
    ) -> Result<(Vec<StoredEvent>, Option<String>), ReadError> {
        use service::EventStore as _;
        let store = service::DynamoStore::new(
            self.dynamo.clone(),
            service::Config {
                events_table: self.events_table.clone(),
                projections_table: self.projections_table.clone(),
            },
        );
        store
            .events_by_type(query)
            .await
            .map_err(|e| ReadError(e.to_string()))
    }

    /// The messages of the dead-letter queue, received with a visibility timeout of 0 (none is hidden from
    /// another reader, none is deleted), at most `max`.
    pub async fn dead_letters(&self, max: usize) -> Result<Vec<(String, Value)>, ReadError> {
        let Some(url) = &self.dead_letter_queue_url else {
            return Ok(Vec::new());
        };
        let mut seen: BTreeMap<String, Value> = BTreeMap::new();
        // SQS returns a sample of the queue per call; a few calls collect the messages of a small queue.
        for _ in 0..5 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .wait_time_seconds(0)
                .send()
                .await
                .map_err(|e| {
                    ReadError(format!(
                        "reading the dead-letter queue: {}",
                        aws_sdk_sqs::error::DisplayErrorContext(e)
                    ))
                })?;
            let before = seen.len();
            for m in out.messages.unwrap_or_default() {
                let body = m.body.as_deref().unwrap_or_default();
                let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
                seen.insert(m.message_id.unwrap_or_default(), value);
            }
            if seen.len() == before || seen.len() >= max {
                break;
            }
        }
        Ok(seen.into_iter().take(max).collect())
    }
}

/// Folds one stored item into `folded`; the reason replay stops otherwise.
fn fold_item(folded: &mut Folded, item: &Item) -> Result<(), String> {
    let version: u64 = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .ok_or("an item without a numeric version")?;
    if version != folded.version + 1 {
        return Err(format!(
            "the log has a hole at version {}",
            folded.version + 1
        ));
    }
    let at = |why: String| format!("version {version}: {why}");
    let event_type = item
        .get("event_type")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| at("no event_type".into()))?;
    let schema_version = item
        .get("schema_version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let data: Map<String, Value> = match item.get("event_data") {
        Some(v) => serde_dynamo::from_attribute_value(v.clone())
            .map_err(|e| at(format!("event_data does not parse: {e}")))?,
        None => return Err(at("no event_data".into())),
    };
    let result = match &mut folded.state {
        Some(s) => s.fold(event_type, schema_version, &data),
        None => domain::registry()
            .replay([(event_type.as_str(), schema_version, &data)])
            .map(|s| folded.state = s),
    };
    result.map_err(|e| at(e.to_string()))?;
    folded.version = version;
    Ok(())
}

/// A stored item as a timeline row; an item that is not a readable event is shown raw with the reason.
fn timeline_event(item: Item) -> TimelineEvent {
    let raw: Value = serde_dynamo::from_item(item.clone()).unwrap_or(Value::Null);
    match serde_dynamo::from_item::<_, StoredEvent>(item) {
        Ok(e) => TimelineEvent {
            version: e.version.to_string(),
            schema_version: e.schema_version(),
            event_type: e.event_type,
            timestamp: e.timestamp,
            data: serde_json::to_string_pretty(&e.event_data).unwrap_or_default(),
            command_id: e.command_id.unwrap_or_default(),
            correlation_id: e.metadata.correlation_id.unwrap_or_default(),
            causation_id: e.metadata.causation_id.unwrap_or_default(),
            event_id: e.event_id,
            broken: None,
        },
        Err(why) => TimelineEvent {
            version: raw["version"].to_string(),
            event_type: raw["event_type"].as_str().unwrap_or("?").to_string(),
            schema_version: 0,
            timestamp: raw["timestamp"].as_str().unwrap_or_default().to_string(),
            data: serde_json::to_string_pretty(&raw).unwrap_or_default(),
            command_id: String::new(),
            correlation_id: String::new(),
            causation_id: String::new(),
            event_id: String::new(),
            broken: Some(format!("not a readable event: {why}")),
        },
    }
}

/// The poller's notes of dead-lettered batches, by request id.
pub fn dead_letter_notes(path: &Path) -> HashMap<String, DeadLetterNote> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<DeadLetterNote>(l).ok())
        .map(|n| (n.request_id.clone(), n))
        .collect()
}

/// The projector's last logged error about `aggregate_id` (its JSON tracing line: message and the error or
/// reason), read from the end of its log: the cause behind a dead-lettered record.
pub fn projector_error(log: &Path, aggregate_id: &str) -> Option<String> {
    let needle = format!("\"aggregate_id\":\"{aggregate_id}\"");
    tail(log)
        .lines()
        .rev()
        .filter(|l| l.contains(&needle) && l.contains("ERROR"))
        .find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            let fields = v.get("fields").unwrap_or(&v);
            let message = fields["message"].as_str().unwrap_or("error");
            let cause = fields
                .get("error")
                .or_else(|| fields.get("reason"))
                .and_then(|c| c.as_str());
            Some(match cause {
                Some(c) => format!("{message}: {c}"),
                None => message.to_string(),
            })
        })
}

/// The end of a log file (at most [`LOG_TAIL_BYTES`]).
fn tail(path: &Path) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One invocation, from a function log's `REPORT` line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invocation {
    pub request_id: String,
    pub duration_ms: String,
    pub memory_size_mb: String,
    pub max_memory_used_mb: String,
    pub cold_start: bool,
    /// `timeout`, or the error type, when the invocation failed.
    pub error: Option<String>,
}

/// Parses a host `REPORT` line (tab-separated `Key: value` fields, as CloudWatch shows Lambda's).
pub fn parse_report(line: &str) -> Option<Invocation> {
    let rest = line.strip_prefix("REPORT ")?;
    let fields: HashMap<&str, &str> = rest
        .split('\t')
        .filter_map(|f| f.split_once(": "))
        .collect();
    let status = fields.get("Status").copied();
    Some(Invocation {
        request_id: fields.get("RequestId")?.to_string(),
        duration_ms: fields
            .get("Duration")
            .map(|d| d.trim_end_matches(" ms").to_string())
            .unwrap_or_default(),
        memory_size_mb: fields
            .get("Memory Size")
            .map(|d| d.trim_end_matches(" MB").to_string())
            .unwrap_or_default(),
        max_memory_used_mb: fields
            .get("Max Memory Used")
            .map(|d| d.trim_end_matches(" MB").to_string())
            .unwrap_or_default(),
        cold_start: fields.get("Cold start") == Some(&"yes"),
        error: match status {
            Some("timeout") => Some("timeout".into()),
            Some("error") => Some(
                fields
                    .get("Error Type")
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "error".into()),
            ),
            _ => None,
        },
    })
}

/// The last `max` invocations of a function log, newest first (only the log's end is read).
pub fn recent_invocations(path: &Path, max: usize) -> Vec<Invocation> {
    let mut found: Vec<Invocation> = tail(path).lines().filter_map(parse_report).collect();
    found.reverse();
    found.truncate(max);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_parse_as_the_host_writes_them() {
        let ok = "REPORT RequestId: r1\tDuration: 3.25 ms\tBilled Duration: 4 ms\tMemory Size: 128 MB\tMax Memory Used: 12 MB\tCold start: yes";
        let inv = parse_report(ok).unwrap();
        assert_eq!(inv.request_id, "r1");
        assert_eq!(inv.duration_ms, "3.25");
        assert_eq!(inv.memory_size_mb, "128");
        assert_eq!(inv.max_memory_used_mb, "12");
        assert!(inv.cold_start);
        assert_eq!(inv.error, None);
        let failed = "REPORT RequestId: r2\tDuration: 1.00 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tStatus: error\tError Type: Runtime.ExitError (killed)";
        assert_eq!(
            parse_report(failed).unwrap().error.as_deref(),
            Some("Runtime.ExitError (killed)")
        );
        assert_eq!(parse_report("START RequestId: r3"), None);
    }

    #[test]
    fn the_projector_error_about_an_aggregate_is_found_in_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("projector.log");
        std::fs::write(
            &log,
            concat!(
                "{\"level\":\"ERROR\",\"fields\":{\"message\":\"the aggregate's type is unknown\",\"aggregate_id\":\"p-1\",\"error\":\"unknown event type `x`\"}}\n",
                "REPORT RequestId: r\tDuration: 1.00 ms\n",
                "{\"level\":\"ERROR\",\"fields\":{\"message\":\"other\",\"aggregate_id\":\"p-2\"}}\n",
            ),
        )
        .unwrap();
        assert_eq!(
            projector_error(&log, "p-1").as_deref(),
            Some("the aggregate's type is unknown: unknown event type `x`")
        );
        assert_eq!(projector_error(&log, "p-3"), None);
    }

    #[test]
    fn a_hole_or_an_unknown_event_stops_replay_with_the_version() {
        let mut folded = Folded {
            version: 0,
            state: None,
            failure: None,
        };
        let item = |v: u64, t: &str| -> Item {
            HashMap::from([
                ("version".into(), AttributeValue::N(v.to_string())),
                ("event_type".into(), AttributeValue::S(t.into())),
                ("event_data".into(), AttributeValue::M(HashMap::new())),
            ])
        };
        let err = fold_item(&mut folded, &item(2, "x")).unwrap_err();
        assert!(err.contains("hole at version 1"), "{err}");
        let err = fold_item(&mut folded, &item(1, "not_an_event")).unwrap_err();
        assert!(err.starts_with("version 1:"), "{err}");
    }
}
