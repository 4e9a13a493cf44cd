//! Rebuilding the domain's views from the event log, and switching reads to a new version once it has
//! caught up (blue/green, as Marten rebuilds projections).
//!
//! Why it exists: a view row is a function of one aggregate's state, written by the projector as events
//! arrive — for every version of the view the deployed code declares. A view that is new, or whose
//! `version` was raised, therefore starts empty for the aggregates that existed before: it must be filled
//! from the log before anyone reads it. [`rebuild`] folds every aggregate's log (the very fold the
//! projector uses), writes the view's rows for that version (each conditional on the aggregate version, so
//! the projector, writing the same rows concurrently, is never overwritten by an older state), and only
//! when every aggregate was folded without failure switches the view's live version
//! (`EventStore::set_view_live_version`, conditional on the version it read). Until then reads keep being
//! served from the previous version, so there is no window in which a reader sees a half-built view.
//! [`catch_up`] runs it after every deploy for each view whose live version is not the declared one; on a
//! fresh environment the log is empty and the switch is immediate. `cargo xtask replay --projection
//! <view>` runs it on demand.

use std::time::Instant;

use aws_sdk_dynamodb::Client;
use domain::registry::ViewDecl;
use futures::StreamExt as _;
use serde::Serialize;
use service::{DynamoStore, EventStore, StoreError};

use crate::error::{Error, Result};
use crate::replay::{ReplayFailure, fold_log, list_aggregates};
use crate::ui::Ui;

/// Where the log and the views live.
#[derive(Debug, Clone)]
pub struct ViewTables {
    pub events_table: String,
    pub projections_table: String,
    pub views_table: String,
}

/// What one rebuild did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ViewRebuild {
    pub view: String,
    pub version: u32,
    /// The live version before, if any.
    pub previous: Option<u32>,
    /// Whether reads now come from `version` (false when an aggregate failed: the old version stays live).
    pub switched: bool,
    pub aggregates_seen: u64,
    /// Aggregates of the view's aggregate type.
    pub aggregates_in_type: u64,
    pub rows_written: u64,
    pub failures: Vec<ReplayFailure>,
    pub elapsed_secs: f64,
}

impl std::fmt::Display for ViewRebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = self
            .previous
            .map_or("no version".to_string(), |v| format!("version {v}"));
        writeln!(
            f,
            "view `{}` version {}: {} aggregate(s) of {} folded, {} row(s) written in {:.2} s",
            self.view,
            self.version,
            self.aggregates_in_type,
            self.aggregates_seen,
            self.rows_written,
            self.elapsed_secs
        )?;
        if self.switched {
            writeln!(
                f,
                "  reads switched from {from} to version {}",
                self.version
            )?;
        } else {
            writeln!(
                f,
                "  NOT switched: {} aggregate(s) failed; reads stay on {from}",
                self.failures.len()
            )?;
        }
        for failure in &self.failures {
            writeln!(
                f,
                "  failed: `{}`: {}",
                failure.aggregate_id, failure.reason
            )?;
        }
        Ok(())
    }
}

fn store(client: &Client, tables: &ViewTables) -> DynamoStore {
    DynamoStore::new(
        client.clone(),
        service::Config {
            events_table: tables.events_table.clone(),
            projections_table: tables.projections_table.clone(),
        },
    )
    .with_views_table(Some(tables.views_table.clone()))
}

/// Fills `version` of `view` from the log and switches reads to it when every aggregate folded.
pub async fn rebuild(
    client: &Client,
    tables: &ViewTables,
    view: &ViewDecl,
    version: u32,
    concurrency: usize,
    ui: &dyn Ui,
) -> Result<ViewRebuild> {
    let began = Instant::now();
    let store = store(client, tables);
    ui.progress_start(&format!("rebuilding view `{}`", view.name));
    let ids = list_aggregates(
        client,
        &tables.events_table,
        crate::replay::DEFAULT_SEGMENTS,
    )
    .await?;
    let total = ids.len() as u64;
    ui.progress_position(0, total);
    let store = &store;
    let mut results = futures::stream::iter(ids.into_iter().map(|id| async move {
        let result = rebuild_aggregate(store, &id, view, version).await;
        (id, result)
    }))
    .buffer_unordered(concurrency.max(1));
    let mut outcome = ViewRebuild {
        view: view.name.clone(),
        version,
        previous: None,
        switched: false,
        aggregates_seen: total,
        aggregates_in_type: 0,
        rows_written: 0,
        failures: Vec::new(),
        elapsed_secs: 0.0,
    };
    let mut done = 0;
    while let Some((id, result)) = results.next().await {
        done += 1;
        ui.progress_position(done, total);
        match result {
            Ok((in_type, written)) => {
                outcome.aggregates_in_type += u64::from(in_type);
                outcome.rows_written += written;
            }
            Err(failure) => outcome.failures.push(ReplayFailure {
                aggregate_id: id,
                ..failure
            }),
        }
    }
    ui.progress_finish();
    outcome
        .failures
        .sort_by(|a, b| a.aggregate_id.cmp(&b.aggregate_id));
    let live = live_version(store, &view.name).await?;
    outcome.previous = live;
    if outcome.failures.is_empty() {
        if live != Some(version) {
            match store.set_view_live_version(&view.name, version, live).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    return Err(Error::Refused(format!(
                        "view `{}`'s live version changed while it was rebuilt (another deploy or replay?); run `cargo xtask replay --projection {}` again",
                        view.name, view.name
                    )));
                }
                Err(e) => {
                    return Err(Error::Aws {
                        context: format!("switching view `{}` to version {version}", view.name),
                        message: e.to_string(),
                    });
                }
            }
        }
        outcome.switched = true;
    }
    outcome.elapsed_secs = began.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Folds one aggregate and writes its row in `version` of `view` when it is of the view's type. Returns
/// (of the view's type, rows written).
async fn rebuild_aggregate<S: EventStore>(
    store: &S,
    aggregate_id: &str,
    view: &ViewDecl,
    version: u32,
) -> std::result::Result<(bool, u64), ReplayFailure> {
    let failed = |reason: String| ReplayFailure {
        aggregate_id: aggregate_id.to_string(),
        version: None,
        reason,
        events_not_applied: 0,
    };
    let folded = fold_log(store, aggregate_id)
        .await
        .map_err(|e| failed(format!("reading the events: {e}")))?;
    let Some(state) = folded.state.filter(|_| folded.version > 0) else {
        return match folded.failure {
            Some(f) => Err(f),
            None => Ok((false, 0)),
        };
    };
    if state.kind() != view.aggregate_type {
        return Ok((false, 0));
    }
    // A view row from a partly folded log would be a wrong answer: the aggregate fails the rebuild instead.
    if let Some(f) = folded.failure {
        return Err(f);
    }
    let written = service::views::write_rows(
        store,
        aggregate_id,
        state.as_ref(),
        folded.version,
        Some((&view.name, version)),
    )
    .await
    .map_err(|e| failed(format!("writing the view row: {e}")))?;
    Ok((true, written))
}

/// After a deploy: rebuilds every view whose live version is not the newest declared one, and switches it.
/// Views already live at their declared version cost one read each.
pub async fn catch_up(
    client: &Client,
    tables: Option<&ViewTables>,
    ui: &dyn Ui,
) -> Result<Vec<ViewRebuild>> {
    let views = domain::registry().views();
    let Some(tables) = tables.filter(|_| !views.is_empty()) else {
        return Ok(Vec::new());
    };
    let store = store(client, tables);
    let mut done = Vec::new();
    for view in &views {
        let live = live_version(&store, &view.name).await?;
        if live == Some(view.target()) {
            continue;
        }
        done.push(
            rebuild(
                client,
                tables,
                view,
                view.target(),
                crate::replay::DEFAULT_CONCURRENCY,
                ui,
            )
            .await?,
        );
    }
    Ok(done)
}

async fn live_version(store: &DynamoStore, view: &str) -> Result<Option<u32>> {
    store.view_live_version(view).await.map_err(|e| Error::Aws {
        context: format!("reading view `{view}`'s live version"),
        message: e.to_string(),
    })
}
