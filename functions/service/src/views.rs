//! The domain's cross-aggregate views, as the projector and replay write them and the query function reads
//! them.
//!
//! Why it exists: a view row is a function of one aggregate's state (`domain::View::key` and `row`), so the
//! one place that turns a folded state into rows is shared by the projector (as events arrive) and by the
//! rebuild (`cargo xtask replay --projection <view>`, and deploy when a view's version changed). Every
//! declared version of a view is written, so a new version fills up beside the old one while reads stay
//! on the live version; the switch (`EventStore::set_view_live_version`) happens only once the new one
//! has caught up.

use domain::registry::State;

use crate::store::{EventStore, StoreError, ViewItem};

/// Writes `state`'s row in every declared version of every view of its aggregate type (or only in `only`:
/// `(view, version)`), each conditional on no later aggregate version being stored. Returns the rows
/// written.
pub async fn write_rows<S: EventStore>(
    store: &S,
    aggregate_id: &str,
    state: &dyn State,
    aggregate_version: u64,
    only: Option<(&str, u32)>,
) -> Result<u64, StoreError> {
    let updated_at = domain::now_timestamp();
    let mut written = 0;
    for row in state.view_rows() {
        if only.is_some_and(|(view, version)| view != row.view || version != row.version) {
            continue;
        }
        let item = ViewItem {
            view: row.view.to_string(),
            view_version: row.version,
            aggregate_id: aggregate_id.to_string(),
            aggregate_type: state.kind().to_string(),
            aggregate_version,
            key: row.key,
            row: row.row,
            updated_at: updated_at.clone(),
        };
        if store.put_view_row(&item).await? {
            written += 1;
        }
    }
    Ok(written)
}
