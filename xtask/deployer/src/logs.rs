//! Reading the functions' logs back from CloudWatch Logs, for `cargo xtask logs --env <aws env>`: on AWS a
//! function's stdout/stderr and the runtime's `START`/`END`/`REPORT` lines only exist in its log group
//! `/aws/lambda/<physical function name>`, so this is the AWS twin of the files the local function host writes.
//!
//! One [`Reader`] per command run: [`Reader::read`] fetches a window (FilterLogEvents, every page), keeps the last
//! lines of each group and merges the groups by timestamp; [`Reader::poll`] (for `--follow`) returns only what was
//! not returned before. A log group that does not exist yet (the function was never invoked, or its group was
//! deleted) is reported in [`Batch::no_logs_yet`], not as an error. Throttling is retried by the SDK's standard
//! retry mode configured in [`crate::aws::retry_config`], never by sleeps here.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata as _;
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;
use stack::{FunctionName, Plan};

use crate::error::{Error, Result};

/// How far back a first read looks when the caller gives no start: one hour. FilterLogEvents reads forward from a
/// start time, so "the last N lines" needs a bounded window to scan; an hour covers a normal debugging session.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

/// How often `--follow` polls (FilterLogEvents is limited to a few calls per second per account and region).
pub const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// How far before the newest event already seen a poll starts again. Events are indexed by their own timestamp
/// but become searchable only after ingestion, so an event stamped earlier than the newest one seen can still
/// arrive (a slow function, another log stream, several events in the same millisecond). Re-reading this
/// overlap and dropping event ids already returned catches them without printing anything twice.
pub const FOLLOW_LOOKBACK: Duration = Duration::from_secs(10);

/// One function's log group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroup {
    pub function: FunctionName,
    /// `/aws/lambda/<physical function name>`.
    pub name: String,
}

impl LogGroup {
    /// The log group Lambda writes `function` of `plan` to (the template creates it with a retention).
    pub fn of(plan: &Plan, function: FunctionName) -> Self {
        LogGroup {
            function,
            name: stack::function_log_group_name(&plan.function(function).function_name),
        }
    }
}

/// One log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub function: FunctionName,
    /// Milliseconds since the Unix epoch (the event's own time, not its ingestion time).
    pub timestamp_ms: i64,
    /// The log stream (one per function instance).
    pub stream: String,
    /// The message as written, usually ending with a newline.
    pub message: String,
    /// Unique within the log group; used to return each event once.
    pub event_id: String,
}

impl LogLine {
    /// The event's time, for display.
    pub fn time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_millis(self.timestamp_ms)
    }
}

/// What one read or poll returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Ordered by timestamp; events with the same timestamp keep the groups' order, then the API's order.
    pub lines: Vec<LogLine>,
    /// Groups that do not exist: their function has no logs yet.
    pub no_logs_yet: Vec<LogGroup>,
    /// FilterLogEvents calls made (every page of every group).
    pub requests: usize,
}

/// Reads a set of log groups, remembering per group what it already returned.
#[derive(Debug, Clone)]
pub struct Reader {
    groups: Vec<LogGroup>,
    cursors: Vec<Cursor>,
    start_ms: i64,
    page_size: Option<i32>,
    lookback_ms: i64,
}

/// Per group: the newest timestamp seen, and the ids of the events seen within the lookback before it.
#[derive(Debug, Clone, Default)]
struct Cursor {
    newest_ms: Option<i64>,
    recent: HashMap<String, i64>,
}

impl Reader {
    pub fn new(groups: Vec<LogGroup>) -> Self {
        let cursors = vec![Cursor::default(); groups.len()];
        Reader {
            groups,
            cursors,
            start_ms: 0,
            page_size: None,
            lookback_ms: FOLLOW_LOOKBACK.as_millis() as i64,
        }
    }

    /// The log groups of `functions` in `plan`.
    pub fn for_plan(plan: &Plan, functions: &[FunctionName]) -> Self {
        Reader::new(functions.iter().map(|f| LogGroup::of(plan, *f)).collect())
    }

    /// Events per FilterLogEvents page (the service's default is up to 10,000 or 1 MB). Tests make it small to
    /// exercise pagination.
    pub fn page_size(mut self, limit: i32) -> Self {
        self.page_size = Some(limit);
        self
    }

    /// How far before the newest event seen a poll starts again ([`FOLLOW_LOOKBACK`] by default).
    pub fn lookback(mut self, lookback: Duration) -> Self {
        self.lookback_ms = lookback.as_millis() as i64;
        self
    }

    pub fn groups(&self) -> &[LogGroup] {
        &self.groups
    }

    /// The events since `start_ms` (inclusive), every page, at most the last `tail` of each group, merged by
    /// timestamp. Later [`Reader::poll`]s continue from here.
    pub async fn read(
        &mut self,
        client: &aws_sdk_cloudwatchlogs::Client,
        start_ms: i64,
        tail: Option<usize>,
    ) -> Result<Batch> {
        self.start_ms = start_ms;
        self.cursors = vec![Cursor::default(); self.groups.len()];
        self.next(client, tail).await
    }

    /// The events not returned yet (for `--follow`): each group is read again from [`FOLLOW_LOOKBACK`] before its
    /// newest event seen (from the first read's start for a group with none), and known event ids are dropped.
    pub async fn poll(&mut self, client: &aws_sdk_cloudwatchlogs::Client) -> Result<Batch> {
        self.next(client, None).await
    }

    async fn next(
        &mut self,
        client: &aws_sdk_cloudwatchlogs::Client,
        tail: Option<usize>,
    ) -> Result<Batch> {
        let (start_ms, page_size, lookback_ms) = (self.start_ms, self.page_size, self.lookback_ms);
        // The groups are independent: read them concurrently (three at most), each into its own cursor.
        let reads = self
            .groups
            .iter()
            .zip(self.cursors.iter_mut())
            .map(|(group, cursor)| {
                let from = cursor
                    .newest_ms
                    .map_or(start_ms, |n| (n - lookback_ms).max(start_ms));
                read_group(client, group, from, page_size, tail, lookback_ms, cursor)
            });
        let results = futures::future::try_join_all(reads).await?;
        let mut batch = Batch::default();
        for (group, (lines, requests)) in self.groups.iter().zip(results) {
            batch.requests += requests;
            match lines {
                Some(lines) => batch.lines.extend(lines),
                None => batch.no_logs_yet.push(group.clone()),
            }
        }
        // Stable: equal timestamps keep the groups' order and, within a group, the order read.
        batch.lines.sort_by_key(|l| l.timestamp_ms);
        Ok(batch)
    }
}

/// Reads one group from `from_ms`, following `nextToken` to the end. `None` when the group does not exist.
/// Returns the lines not in `cursor` yet (the last `tail` of them when given, sorted by timestamp) and the
/// number of requests made.
async fn read_group(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &LogGroup,
    from_ms: i64,
    page_size: Option<i32>,
    tail: Option<usize>,
    lookback_ms: i64,
    cursor: &mut Cursor,
) -> Result<(Option<Vec<LogLine>>, usize)> {
    let mut lines: Vec<LogLine> = Vec::new();
    let mut token: Option<String> = None;
    let mut requests = 0;
    loop {
        requests += 1;
        let page = match client
            .filter_log_events()
            .log_group_name(&group.name)
            .start_time(from_ms)
            .set_limit(page_size)
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(err) => match err.as_service_error() {
                Some(FilterLogEventsError::ResourceNotFoundException(_)) => {
                    return Ok((None, requests));
                }
                service => {
                    let code = service.and_then(|e| e.code()).map(str::to_string);
                    return Err(filter_error(client, group, code.as_deref(), err));
                }
            },
        };
        for event in page.events() {
            let (Some(id), Some(ts)) = (event.event_id(), event.timestamp()) else {
                continue;
            };
            if cursor.recent.contains_key(id) {
                continue;
            }
            if cursor.newest_ms.is_none_or(|n| ts > n) {
                cursor.newest_ms = Some(ts);
                let keep_from = ts - lookback_ms;
                cursor.recent.retain(|_, t| *t >= keep_from);
            }
            if ts >= cursor.newest_ms.unwrap_or(ts) - lookback_ms {
                cursor.recent.insert(id.to_string(), ts);
            }
            lines.push(LogLine {
                function: group.function,
                timestamp_ms: ts,
                stream: event.log_stream_name().unwrap_or_default().to_string(),
                message: event.message().unwrap_or_default().to_string(),
                event_id: id.to_string(),
            });
        }
        // Pages are not ordered by timestamp across streams, so the tail is cut from what is sorted so far;
        // what is dropped here can never be among the last `tail` of the whole group. This bounds memory on a
        // busy hour to about one page plus twice the tail.
        if let Some(n) = tail.filter(|n| lines.len() > 2 * n) {
            keep_last(&mut lines, n);
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    match tail {
        Some(n) => keep_last(&mut lines, n),
        None => lines.sort_by_key(|l| l.timestamp_ms),
    }
    Ok((Some(lines), requests))
}

fn keep_last(lines: &mut Vec<LogLine>, n: usize) {
    lines.sort_by_key(|l| l.timestamp_ms);
    let cut = lines.len().saturating_sub(n);
    lines.drain(..cut);
}

/// A failed FilterLogEvents as an error that says which group and what to do; access denied names the permission.
fn filter_error<E: std::error::Error>(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &LogGroup,
    code: Option<&str>,
    err: E,
) -> Error {
    if matches!(code, Some("AccessDeniedException" | "AccessDenied")) {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "<region>".into());
        return Error::aws(format!(
            "reading the {} logs: access denied to log group {}; the credentials need logs:FilterLogEvents on \
             arn:aws:logs:{region}:<account>:log-group:{}:* (add it to the role you use, e.g. the deploy role)",
            group.function.as_str(),
            group.name,
            group.name
        ))(err);
    }
    Error::aws(format!(
        "reading the {} logs from log group {} (logs:FilterLogEvents)",
        group.function.as_str(),
        group.name
    ))(err)
}

/// Failure paths the local endpoint cannot produce, replayed from recorded CloudWatch Logs exchanges
/// (`StaticReplayClient`), asserting the exact requests sent. The happy paths run against the local endpoint in
/// `tests/tests/logs_cloudwatch.rs`.
#[cfg(test)]
mod tests {
    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::Credentials;
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const GROUP: &str = "/aws/lambda/cqrs-dev-command";

    fn exchange(
        request: serde_json::Value,
        status: u16,
        response: serde_json::Value,
    ) -> ReplayEvent {
        ReplayEvent::new(
            http::Request::builder()
                .method("POST")
                .uri("https://logs.us-east-1.amazonaws.com/")
                .header("x-amz-target", "Logs_20140328.FilterLogEvents")
                .header("content-type", "application/x-amz-json-1.1")
                .body(SdkBody::from(request.to_string()))
                .unwrap(),
            http::Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.1")
                .body(SdkBody::from(response.to_string()))
                .unwrap(),
        )
    }

    async fn client(replay: &StaticReplayClient) -> aws_sdk_cloudwatchlogs::Client {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKID", "SECRET", None, None, "test"))
            .http_client(replay.clone())
            // Our retry policy, with a tiny backoff so the throttling test does not wait.
            .retry_config(crate::aws::retry_config().with_initial_backoff(Duration::from_millis(1)))
            .load()
            .await;
        crate::aws::Clients::from_sdk_config(&sdk).logs
    }

    fn reader() -> Reader {
        Reader::new(vec![LogGroup {
            function: FunctionName::Command,
            name: GROUP.into(),
        }])
    }

    fn event(id: &str, ts: i64, message: &str) -> serde_json::Value {
        serde_json::json!({"eventId": id, "timestamp": ts, "ingestionTime": ts + 5,
            "logStreamName": "2026/01/01/[$LATEST]abc", "message": message})
    }

    #[tokio::test]
    async fn throttling_is_retried_by_the_sdk_and_every_page_is_read() {
        let first = serde_json::json!({"logGroupName": GROUP, "startTime": 1000});
        let throttled =
            serde_json::json!({"__type": "ThrottlingException", "message": "Rate exceeded"});
        let replay = StaticReplayClient::new(vec![
            exchange(first.clone(), 400, throttled.clone()),
            exchange(first.clone(), 400, throttled),
            exchange(
                first,
                200,
                serde_json::json!({"events": [event("2", 2000, "b\n"), event("1", 1500, "a\n")],
                    "nextToken": "page-2", "searchedLogStreams": []}),
            ),
            exchange(
                serde_json::json!({"logGroupName": GROUP, "startTime": 1000, "nextToken": "page-2"}),
                200,
                serde_json::json!({"events": [event("3", 2500, "c\n")], "searchedLogStreams": []}),
            ),
        ]);
        let client = client(&replay).await;
        let batch = reader()
            .read(&client, 1000, None)
            .await
            .expect("throttling is retried");
        let got: Vec<(i64, &str)> = batch
            .lines
            .iter()
            .map(|l| (l.timestamp_ms, l.message.as_str()))
            .collect();
        assert_eq!(got, [(1500, "a\n"), (2000, "b\n"), (2500, "c\n")]);
        assert_eq!(batch.requests, 2, "two pages (the retries are the SDK's)");
        assert!(batch.no_logs_yet.is_empty());
        replay.relaxed_requests_match();
        assert_eq!(replay.actual_requests().count(), 4);
    }

    #[tokio::test]
    async fn access_denied_names_the_log_group_and_the_missing_permission() {
        let replay = StaticReplayClient::new(vec![exchange(
            serde_json::json!({"logGroupName": GROUP, "startTime": 1000}),
            400,
            serde_json::json!({"__type": "AccessDeniedException",
                "message": "User: arn:aws:sts::111111111111:assumed-role/ci/x is not authorized to perform: logs:FilterLogEvents"}),
        )]);
        let client = client(&replay).await;
        let err = reader()
            .read(&client, 1000, None)
            .await
            .expect_err("access denied is an error");
        assert!(matches!(err, Error::Aws { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "reading the command logs: access denied to log group {GROUP}; the credentials need logs:FilterLogEvents on arn:aws:logs:us-east-1:<account>:log-group:{GROUP}:*"
            )),
            "{msg}"
        );
        assert!(msg.contains("is not authorized to perform"), "{msg}");
        // Not retried: a permission does not appear by itself.
        replay.relaxed_requests_match();
        assert_eq!(replay.actual_requests().count(), 1);
    }

    #[tokio::test]
    async fn a_missing_log_group_is_no_logs_yet() {
        let replay = StaticReplayClient::new(vec![exchange(
            serde_json::json!({"logGroupName": GROUP, "startTime": 1000}),
            400,
            serde_json::json!({"__type": "ResourceNotFoundException",
                "message": "The specified log group does not exist."}),
        )]);
        let client = client(&replay).await;
        let batch = reader().read(&client, 1000, Some(5)).await.unwrap();
        assert!(batch.lines.is_empty());
        assert_eq!(batch.no_logs_yet.len(), 1);
        assert_eq!(batch.no_logs_yet[0].name, GROUP);
        replay.relaxed_requests_match();
    }
}
