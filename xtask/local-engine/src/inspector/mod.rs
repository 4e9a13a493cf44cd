//! The local inspector: a read-only web page over a running local environment, served by the engine beside
//! the gateway, so a user looks at streams and read models instead of reading JSON from `curl`.
//!
//! Pages (server-rendered with the handlebars the stack already uses; a few lines of vanilla JavaScript
//! filter the lists and refresh the pipeline page; the lag chart is an SVG drawn here):
//! - `/`: the domain as the registry declares it (aggregate types, event types with schema versions, views)
//!   and a searchable list of aggregates with type, version and last event time;
//! - `/aggregates/{id}`: the timeline, a page of events at a time, beside the read model and the state replay
//!   computes, with every difference highlighted;
//! - `/events`: events of one type in a time range (the GSI), paged;
//! - `/pipeline`: projection lag now and over the last ten minutes, the poller's position, dead letters;
//! - `/functions`: recent invocations from the `REPORT` lines, the deployed release and its digests, and
//!   the hotswap history `cargo xtask dev` records.
//!
//! **Read-only, local only.** It binds 127.0.0.1; it answers `GET` only; every DynamoDB call is a Query,
//! Scan or GetItem and the dead-letter queue is received with a visibility timeout of 0 (see `data.rs`, which
//! a unit test greps for writing calls). Only `cargo xtask serve`, which runs for local environments only,
//! starts it: no AWS environment renders or exposes it.

pub mod data;
pub mod view;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use handlebars::Handlebars;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::poller::PollerStats;
use crate::state::StatePaths;
use data::Reader;
use view::LagHistory;

/// What the inspector reads.
#[derive(Debug, Clone)]
pub struct InspectorConfig {
    pub env: String,
    pub endpoint_url: String,
    pub region: String,
    pub events_table: String,
    pub projections_table: String,
    pub dead_letter_queue_url: Option<String>,
    pub stream_arn: Option<String>,
    pub state_dir: PathBuf,
    /// The release the engine serves (its `manifest.json`), if known.
    pub dist: Option<PathBuf>,
}

impl InspectorConfig {
    /// The inspector of what `engine` serves: the table names come from the functions' environment (the
    /// query function reads both tables), the queue and stream from the poller's settings.
    pub fn of_engine(
        engine: &crate::EngineConfig,
        dist: Option<PathBuf>,
    ) -> Option<InspectorConfig> {
        let table = |name: &str| {
            engine
                .functions
                .iter()
                .find_map(|f| f.environment.get(name).filter(|v| !v.is_empty()).cloned())
        };
        Some(InspectorConfig {
            env: engine.env.clone(),
            endpoint_url: engine.endpoint_url.clone(),
            region: engine.region.clone(),
            events_table: table("EVENTS_TABLE")?,
            projections_table: table("PROJECTIONS_TABLE")?,
            dead_letter_queue_url: engine
                .stream
                .as_ref()
                .and_then(|s| s.dead_letter_queue_url.clone()),
            stream_arn: engine.stream.as_ref().map(|s| s.stream_arn.clone()),
            state_dir: engine.state_dir.clone(),
            dist,
        })
    }
}

/// Errors starting the inspector.
///
/// ### Handling
/// `PortInUse`: another program holds the configured port; the message says how to free it or pick another.
#[derive(Debug, thiserror::Error)]
pub enum InspectorError {
    #[error(
        "the inspector cannot listen on 127.0.0.1:{port}: {source}; stop what uses it (`ss -ltnp`) or change local.inspector_port in the config (leave it out for a free port)"
    )]
    PortInUse { port: u16, source: std::io::Error },
    #[error("state file {path}: {source}")]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds the inspector's port on 127.0.0.1 (0 picks a free one).
pub async fn bind(port: u16) -> Result<tokio::net::TcpListener, InspectorError> {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| InspectorError::PortInUse { port, source })
}

/// Where the running engine's inspector is: written by `serve` before the gateway answers, read by
/// `inspect`, `deploy` and `dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub url: String,
    /// The engine process serving it: a record whose engine is gone is stale.
    pub pid: u32,
}

/// Records the inspector's URL for this state directory.
pub fn record(paths: &StatePaths, url: &str) -> Result<(), InspectorError> {
    let rec = Recorded {
        url: url.to_string(),
        pid: std::process::id(),
    };
    crate::state::write_atomic(
        &paths.inspector(),
        &serde_json::to_vec_pretty(&rec).expect("json"),
    )
    .map_err(|source| InspectorError::State {
        path: paths.inspector(),
        source,
    })
}

/// The inspector URL of the background engine of this state directory, if that engine runs.
pub fn recorded_url(paths: &StatePaths) -> Option<String> {
    let rec: Recorded = serde_json::from_slice(&std::fs::read(paths.inspector()).ok()?).ok()?;
    (crate::daemon::running_pid(paths) == Some(rec.pid)).then_some(rec.url)
}

/// One `cargo xtask dev` code swap, as the hotswap history records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotswapEntry {
    /// RFC 3339 UTC.
    pub at: String,
    pub release_digest: String,
    pub functions: Vec<SwappedEntry>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwappedEntry {
    pub function: String,
    pub code_key: String,
    /// `CodeSha256` after the swap (base64).
    pub code_sha256: String,
}

impl HotswapEntry {
    /// The history's entry for a hotswap that swapped code (`dev`, or `deploy --hotswap` of a local environment).
    pub fn of(outcome: &deployer::hotswap::HotswapOutcome) -> HotswapEntry {
        HotswapEntry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            release_digest: outcome.release_digest.clone(),
            functions: outcome
                .swapped
                .iter()
                .map(|s| SwappedEntry {
                    function: s.function.as_str().to_string(),
                    code_key: s.code_key.clone(),
                    code_sha256: s.code_sha256.clone(),
                })
                .collect(),
            elapsed_ms: outcome.elapsed_ms,
        }
    }
}

/// Appends one swap to the state directory's hotswap history.
pub fn record_hotswap(paths: &StatePaths, entry: &HotswapEntry) -> std::io::Result<()> {
    crate::state::append_json_line(&paths.hotswaps(), entry)
}

/// The hotswap history, newest first.
pub fn hotswap_history(paths: &StatePaths) -> Vec<HotswapEntry> {
    let mut all: Vec<HotswapEntry> = std::fs::read_to_string(paths.hotswaps())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    all.reverse();
    all
}

struct Inspector {
    cfg: InspectorConfig,
    reader: Reader,
    pages: Handlebars<'static>,
    lag: Arc<Mutex<LagHistory>>,
    stats: Option<watch::Receiver<PollerStats>>,
}

/// Serves the inspector on `listener` until `shutdown` completes. `stats` are the poller's counters, from
/// which a background task samples the projection lag once a second.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: InspectorConfig,
    stats: Option<watch::Receiver<PollerStats>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sdk = crate::endpoint::sdk_config_in(&cfg.endpoint_url, &cfg.region).await;
    let reader = Reader::new(
        &sdk,
        cfg.events_table.clone(),
        cfg.projections_table.clone(),
        cfg.dead_letter_queue_url.clone(),
    );
    let lag = Arc::new(Mutex::new(LagHistory::default()));
    let sampler = stats
        .clone()
        .map(|s| tokio::spawn(sample_lag(s, lag.clone())));
    let state = Arc::new(Inspector {
        cfg,
        reader,
        pages: templates(),
        lag,
        stats,
    });
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    if let Some(s) = sampler {
        s.abort();
    }
    served
}

fn router(state: Arc<Inspector>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/aggregates/{id}", get(aggregate))
        .route("/events", get(events_by_type))
        .route("/pipeline", get(pipeline))
        .route("/functions", get(functions))
        .route("/health", get(|| async { "inspector ok" }))
        .route(
            "/static/inspector.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css")],
                    include_str!("static/inspector.css"),
                )
            }),
        )
        .route(
            "/static/inspector.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript")],
                    include_str!("static/inspector.js"),
                )
            }),
        )
        .with_state(state)
}

/// Every second: the lag of a batch in flight (its oldest event's age), else of the last batch delivered
/// during the past second, else 0 (caught up).
async fn sample_lag(mut stats: watch::Receiver<PollerStats>, lag: Arc<Mutex<LagHistory>>) {
    let mut last_ok = stats.borrow().batches_ok;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = chrono::Utc::now().timestamp_millis();
        let s = stats.borrow_and_update().clone();
        let value = match s.in_flight_since_ms {
            Some(since) => (now - since).max(0) as u64,
            None if s.batches_ok != last_ok => s.last_lag_ms.unwrap_or(0),
            None => 0,
        };
        last_ok = s.batches_ok;
        lag.lock().expect("lag history").push(now, value);
    }
}

/// The page templates, embedded (handlebars strict mode: a template naming a missing field fails to render
/// instead of showing a blank).
fn templates() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    for (name, text) in [
        ("layout", include_str!("templates/layout.html.hbs")),
        ("overview", include_str!("templates/overview.html.hbs")),
        ("aggregate", include_str!("templates/aggregate.html.hbs")),
        ("events", include_str!("templates/events.html.hbs")),
        ("pipeline", include_str!("templates/pipeline.html.hbs")),
        ("functions", include_str!("templates/functions.html.hbs")),
    ] {
        hb.register_template_string(name, text)
            .unwrap_or_else(|e| panic!("inspector template `{name}` does not parse: {e}"));
    }
    hb
}

impl Inspector {
    /// Renders `page` with `data` inside the layout.
    fn page(&self, page: &str, title: &str, data: Value) -> Response {
        let body = match self.pages.render(page, &data) {
            Ok(b) => b,
            Err(e) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the inspector's `{page}` template failed to render: {e}"),
                )
                    .into_response();
            }
        };
        let layout = json!({
            "title": title,
            "env": self.cfg.env,
            "nav": page,
            "body": body,
        });
        match self.pages.render("layout", &layout) {
            Ok(html) => Html(html).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the inspector's layout failed to render: {e}"),
            )
                .into_response(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    start: Option<String>,
}

async fn overview(State(s): State<Arc<Inspector>>, Query(q): Query<ListQuery>) -> Response {
    let description = domain::registry().describe();
    let kinds: Vec<Value> = description
        .aggregates
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "description": a.description,
                "events": a.events.iter().map(|e| json!({
                    "event_type": e.event_type,
                    "version": e.version,
                    "upcasts_from": e.upcasts_from.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "),
                    "schema": serde_json::to_string_pretty(&e.schema).unwrap_or_default(),
                })).collect::<Vec<_>>(),
                "views": a.views.iter().map(|v| json!({"name": v.name, "version": v.version})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (rows, next, error) = match s.reader.aggregates(q.start.as_deref()).await {
        Ok(p) => (p.rows, p.next, None),
        Err(e) => (Vec::new(), None, Some(e.to_string())),
    };
    s.page(
        "overview",
        "Aggregates",
        json!({
            "kinds": kinds,
            "aggregates": rows,
            "count": rows.len(),
            "next": next,
            "error": error,
            "events_table": s.cfg.events_table,
        }),
    )
}

#[derive(Debug, Deserialize)]
struct TimelineQuery {
    after: Option<u64>,
}

async fn aggregate(
    State(s): State<Arc<Inspector>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<TimelineQuery>,
) -> Response {
    let after = q.after.unwrap_or(0);
    let mut errors = Vec::new();
    // The head first: it tells replay whether anything was written since its cached fold.
    let head = s
        .reader
        .head_version(&id)
        .await
        .map_err(|e| errors.push(e.to_string()))
        .ok()
        .flatten();
    let (page, read_model, replayed) = tokio::join!(
        s.reader.timeline(&id, after),
        s.reader.read_model(&id),
        s.reader.replay(&id, head),
    );
    let page = page.map_err(|e| errors.push(e.to_string())).ok();
    let read_model = read_model
        .map_err(|e| errors.push(e.to_string()))
        .ok()
        .flatten();
    let replayed = replayed.map_err(|e| errors.push(e.to_string())).ok();
    let replay_running = match &replayed {
        Some(data::ReplayView::Running { folded }) => Some(*folded),
        _ => None,
    };
    let replayed = match replayed {
        Some(data::ReplayView::Done(r)) => Some(r),
        _ => None,
    };
    let rm = read_model
        .as_ref()
        .map(|m| (m.version, m.aggregate_type.as_deref(), &m.state));
    let rp = replayed.as_ref().and_then(|r| {
        r.state
            .as_ref()
            .map(|st| (r.version, r.aggregate_type.as_deref(), st))
    });
    let failed = replayed.as_ref().is_some_and(|r| r.failure.is_some());
    let mut comparison = view::compare(rm, rp, failed);
    if replay_running.is_some() {
        comparison = view::pending(rm);
    }
    let events = page.as_ref().map(|p| p.events.clone()).unwrap_or_default();
    let first = events
        .first()
        .map(|e| e.version.clone())
        .unwrap_or_default();
    let last = events.last().map(|e| e.version.clone()).unwrap_or_default();
    s.page(
        "aggregate",
        &id,
        json!({
            "id": id,
            "errors": errors,
            "events": events,
            "first": first,
            "last": last,
            "after": after,
            "previous": (after > 0).then(|| after.saturating_sub(data::TIMELINE_PAGE as u64)),
            "next_after": page.as_ref().and_then(|p| p.next_after),
            "head_version": head,
            "aggregate_type": replayed.as_ref().and_then(|r| r.aggregate_type.clone())
                .or_else(|| read_model.as_ref().and_then(|m| m.aggregate_type.clone())),
            "read_model": read_model.as_ref().map(|m| json!({
                "version": m.version,
                "updated_at": m.updated_at,
                "state": serde_json::to_string_pretty(&m.state).unwrap_or_default(),
            })),
            "replay": replayed.as_ref().map(|r| json!({
                "version": r.version,
                "state": r.state.as_ref().map(|st| serde_json::to_string_pretty(st).unwrap_or_default()),
                "failure": r.failure,
                "events_read": r.events_read,
            })),
            "comparison": comparison,
            "replay_running": replay_running,
        }),
    )
}

#[derive(Debug, Deserialize)]
struct TypeParams {
    #[serde(rename = "type")]
    event_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

async fn events_by_type(State(s): State<Arc<Inspector>>, Query(q): Query<TypeParams>) -> Response {
    let types = domain::registry()
        .kinds()
        .flat_map(|k| {
            k.events()
                .iter()
                .map(move |e| json!({"aggregate_type": k.name(), "event_type": e.event_type}))
        })
        .collect::<Vec<_>>();
    let blank = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let (event_type, from, to, cursor) = (
        blank(&q.event_type),
        blank(&q.from),
        blank(&q.to),
        blank(&q.cursor),
    );
    let mut error = None;
    let mut rows = Vec::new();
    let mut next = None;
    if let Some(t) = &event_type {
        let norm = |v: &Option<String>, what: &str| match v {
            None => Ok(None),
            Some(v) => domain::event::normalize_timestamp(v)
                .map(Some)
                .map_err(|e| format!("`{what}`: {e}")),
        };
        match (norm(&from, "from"), norm(&to, "to")) {
            (Ok(f), Ok(tt)) => {
                let query = service::TypeQuery {
                    event_type: t.clone(),
                    from: f,
                    to: tt,
                    limit: data::TYPE_PAGE,
                    cursor: cursor.clone(),
                };
                match s.reader.events_by_type(&query).await {
                    Ok((events, c)) => {
                        rows = events
                            .into_iter()
                            .map(|e| {
                                json!({
                                    "aggregate_id": e.aggregate_id,
                                    "version": e.version,
                                    "timestamp": e.timestamp,
                                    "data": serde_json::to_string(&e.event_data).unwrap_or_default(),
                                })
                            })
                            .collect();
                        next = c;
                    }
                    Err(e) => error = Some(e.to_string()),
                }
            }
            (Err(e), _) | (_, Err(e)) => error = Some(e),
        }
    }
    s.page(
        "events",
        "Events by type",
        json!({
            "types": types,
            "event_type": event_type,
            "from": from,
            "to": to,
            "rows": rows,
            "count": rows.len(),
            "next": next,
            "error": error,
        }),
    )
}

async fn pipeline(State(s): State<Arc<Inspector>>) -> Response {
    let paths = StatePaths::new(&s.cfg.state_dir);
    let (svg, now, max, samples) = {
        let lag = s.lag.lock().expect("lag history");
        (lag.svg(), lag.now(), lag.max(), lag.samples.len())
    };
    let stats = s.stats.as_ref().map(|r| r.borrow().clone());
    let checkpoints = s
        .cfg
        .stream_arn
        .as_deref()
        .map(|arn| crate::poller::Checkpoints::load(&paths.checkpoints(), arn));
    let shards: Vec<Value> = checkpoints
        .map(|c| {
            c.shards
                .into_iter()
                .map(|(shard, seq)| json!({"shard": shard, "sequence_number": seq}))
                .collect()
        })
        .unwrap_or_default();
    let notes = data::dead_letter_notes(&paths.dead_letters());
    let (letters, error) = match s.reader.dead_letters(100).await {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let letters: Vec<Value> = letters
        .into_iter()
        .map(|(message_id, body)| {
            let request_id = body["requestContext"]["requestId"].as_str().unwrap_or_default();
            let note = notes.get(request_id);
            let batch = &body["DDBStreamBatchInfo"];
            json!({
                "message_id": message_id,
                "condition": body["requestContext"]["condition"].as_str().unwrap_or("?"),
                "attempts": body["requestContext"]["approximateInvokeCount"].to_string(),
                "timestamp": body["timestamp"].as_str().unwrap_or_default(),
                "shard": batch["shardId"].as_str().unwrap_or_default(),
                "first_sequence": batch["startSequenceNumber"].as_str().unwrap_or_default(),
                "last_sequence": batch["endSequenceNumber"].as_str().unwrap_or_default(),
                "batch_size": batch["batchSize"].to_string(),
                "error": note.map(|n| {
                    // The projector's own words about the records, when it logged them, then the poller's.
                    let causes: Vec<String> = n.records.iter()
                        .filter_map(|r| r.aggregate_id.as_deref())
                        .filter_map(|id| data::projector_error(&paths.function_log(stack::FunctionName::Projector), id))
                        .collect();
                    let poller = n.error.clone().unwrap_or_else(|| n.condition.clone());
                    if causes.is_empty() { poller } else { format!("{} ({poller})", causes.join("; ")) }
                }).unwrap_or_else(|| "(not noted by this engine)".into()),
                "records": note.map(|n| n.records.iter().map(|r| json!({
                    "aggregate_id": r.aggregate_id,
                    "version": r.version.map(|v| v.to_string()).unwrap_or_default(),
                    "event_type": r.event_type.clone().unwrap_or_default(),
                })).collect::<Vec<_>>()).unwrap_or_default(),
                "body": serde_json::to_string_pretty(&body).unwrap_or_default(),
            })
        })
        .collect();
    s.page(
        "pipeline",
        "Pipeline",
        json!({
            "lag_svg": svg,
            "lag_now": now.map(|v| v.to_string()).unwrap_or_else(|| "—".into()),
            "lag_max": max,
            "lag_samples": samples,
            "stats": stats.map(|st| json!({
                "batches_ok": st.batches_ok,
                "batches_failed": st.batches_failed,
                "records_delivered": st.records_delivered,
                "records_sent_to_dlq": st.records_sent_to_dlq,
            })),
            "stream_arn": s.cfg.stream_arn,
            "shards": shards,
            "dead_letters": letters,
            "dead_letter_count": letters.len(),
            "queue": s.cfg.dead_letter_queue_url,
            "error": error,
        }),
    )
}

async fn functions(State(s): State<Arc<Inspector>>) -> Response {
    let paths = StatePaths::new(&s.cfg.state_dir);
    let functions: Vec<Value> = stack::FunctionName::ALL
        .into_iter()
        .map(|f| {
            let inv = data::recent_invocations(&paths.function_log(f), 20);
            json!({"name": f.as_str(), "invocations": inv, "count": inv.len()})
        })
        .collect();
    let manifest = s
        .cfg
        .dist
        .as_deref()
        .and_then(|d| deployer::build::read_manifest(d).ok());
    let release = manifest.as_ref().map(|m| {
        json!({
            "digest": m.digest(),
            "git_revision": m.git_revision,
            "git_dirty": m.git_dirty,
            "rustc": m.rustc,
            "template_sha256": m.template_sha256,
            "functions": m.functions.iter().map(|(name, a)| json!({
                "name": name.as_str(),
                "zip_sha256": a.zip_sha256,
                "binary_sha256": a.binary_sha256,
                "zip_size": a.zip_size,
                "glibc_floor": a.glibc_floor.clone().unwrap_or_default(),
            })).collect::<Vec<_>>(),
        })
    });
    let history = hotswap_history(&paths);
    s.page(
        "functions",
        "Functions",
        json!({
            "functions": functions,
            "release": release,
            "manifest_path": s.cfg.dist.as_deref().map(|d| deployer::build::manifest_path(d).display().to_string()),
            "hotswaps": history,
            "hotswap_count": history.len(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inspector never writes: the reading module makes no call that writes a table or changes a queue.
    #[test]
    fn the_reader_makes_no_writing_call() {
        let source = include_str!("data.rs");
        let code: String = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for call in [
            ".put_item(",
            ".update_item(",
            ".delete_item(",
            ".transact_write_items(",
            ".batch_write_item(",
            ".send_message(",
            ".delete_message(",
            ".purge_queue(",
            ".change_message_visibility(",
            "put_read_model(",
            "append(",
            "write_events(",
        ] {
            assert!(
                !code.contains(call),
                "the inspector's reader calls `{call}`"
            );
        }
        assert!(code.contains(".visibility_timeout(0)"));
    }

    #[test]
    fn the_hotswap_history_reads_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let paths = StatePaths::new(dir.path());
        assert!(hotswap_history(&paths).is_empty());
        for digest in ["a", "b"] {
            let entry = HotswapEntry {
                at: "2026-12-03T00:00:00.000Z".into(),
                release_digest: digest.into(),
                functions: vec![SwappedEntry {
                    function: "query".into(),
                    code_key: "functions/query/x.zip".into(),
                    code_sha256: "c2hh".into(),
                }],
                elapsed_ms: 5,
            };
            record_hotswap(&paths, &entry).unwrap();
        }
        let read: Vec<String> = hotswap_history(&paths)
            .into_iter()
            .map(|e| e.release_digest)
            .collect();
        assert_eq!(read, ["b", "a"]);
    }

    #[test]
    fn every_page_renders_with_empty_data() {
        let hb = templates();
        for (page, data) in [
            (
                "overview",
                json!({"kinds": [], "aggregates": [], "count": 0, "next": null, "error": null, "events_table": "t"}),
            ),
            (
                "aggregate",
                json!({"id": "a", "errors": [], "events": [], "first": "", "last": "", "after": 0, "previous": null,
                    "next_after": null, "head_version": null, "aggregate_type": null, "read_model": null, "replay": null,
                    "comparison": view::compare(None, None, false), "replay_running": 5}),
            ),
            (
                "events",
                json!({"types": [], "event_type": null, "from": null, "to": null, "rows": [], "count": 0, "next": null, "error": null}),
            ),
            (
                "pipeline",
                json!({"lag_svg": "", "lag_now": "—", "lag_max": 0, "lag_samples": 0, "stats": null, "stream_arn": null,
                    "shards": [], "dead_letters": [], "dead_letter_count": 0, "queue": null, "error": null}),
            ),
            (
                "functions",
                json!({"functions": [], "release": null, "manifest_path": null, "hotswaps": [], "hotswap_count": 0}),
            ),
        ] {
            hb.render(page, &data)
                .unwrap_or_else(|e| panic!("page `{page}`: {e}"));
        }
        hb.render(
            "layout",
            &json!({"title": "t", "env": "local", "nav": "overview", "body": "<p>x</p>"}),
        )
        .unwrap();
    }
}
