//! An in-memory `EventStore` with the same conditional-write semantics as the DynamoDB one, for fast unit
//! tests and the projector's property tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use domain::StoredEvent;

use crate::store::{
    AppendWrite, CommandRecord, CursorKey, EventStore, Head, ReadModel, StoreError, TypeQuery,
    ViewItem, ViewQuery, decode_cursor, decode_view_cursor, encode_cursor, encode_view_cursor,
};

/// The in-memory store. Cloning is not supported; share it by reference.
#[derive(Debug, Default)]
pub struct MemoryStore {
    events: Mutex<BTreeMap<(String, u64), StoredEvent>>,
    /// Heads and command records, under the events' lock order (always taken after `events`).
    heads: Mutex<HashMap<String, Head>>,
    commands: Mutex<HashMap<(String, String), CommandRecord>>,
    read_models: Mutex<HashMap<String, ReadModel>>,
    read_model_writes: Mutex<u64>,
    log_reads: Mutex<u64>,
    /// (view, version, aggregate id) -> row.
    view_rows: Mutex<BTreeMap<(String, u32, String), ViewItem>>,
    live_views: Mutex<HashMap<String, u32>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts an event unconditionally, bypassing every rule (to plant poison events in tests).
    pub fn insert_raw(&self, event: StoredEvent) {
        self.events
            .lock()
            .unwrap()
            .insert((event.aggregate_id.clone(), event.version), event);
    }

    /// Every stored event, in key order.
    pub fn all_events(&self) -> Vec<StoredEvent> {
        self.events.lock().unwrap().values().cloned().collect()
    }

    /// How many reads of events (`read_events`) were made: an append on an aggregate with a head makes none.
    pub fn log_reads(&self) -> u64 {
        *self.log_reads.lock().unwrap()
    }

    /// How many read-model writes succeeded (the projector writes at most one per aggregate per batch).
    pub fn read_model_writes(&self) -> u64 {
        *self.read_model_writes.lock().unwrap()
    }
}

impl EventStore for MemoryStore {
    async fn read_events(
        &self,
        aggregate_id: &str,
        after: u64,
        limit: Option<usize>,
        _consistent: bool,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        *self.log_reads.lock().unwrap() += 1;
        let events = self.events.lock().unwrap();
        let mut out: Vec<StoredEvent> = events
            .range(
                (aggregate_id.to_string(), after.saturating_add(1))
                    ..=(aggregate_id.to_string(), u64::MAX),
            )
            .map(|(_, e)| e.clone())
            .collect();
        let more = limit.is_some_and(|l| out.len() > l);
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok((out, more))
    }

    async fn read_head(
        &self,
        aggregate_id: &str,
        command_id: Option<&str>,
    ) -> Result<(Option<Head>, Option<CommandRecord>), StoreError> {
        let head = self.heads.lock().unwrap().get(aggregate_id).cloned();
        let record = command_id.and_then(|c| {
            self.commands
                .lock()
                .unwrap()
                .get(&(aggregate_id.to_string(), c.to_string()))
                .cloned()
        });
        Ok((head, record))
    }

    async fn append(&self, write: &AppendWrite) -> Result<(), StoreError> {
        let mut events = self.events.lock().unwrap();
        let mut heads = self.heads.lock().unwrap();
        let mut commands = self.commands.lock().unwrap();
        let id = &write.aggregate_id;
        let command_key = write
            .command
            .as_ref()
            .map(|c| (id.clone(), c.command_id.clone()));
        if heads.get(id).map(|h| h.version) != write.previous_head
            || write
                .events
                .iter()
                .any(|e| events.contains_key(&(e.aggregate_id.clone(), e.version)))
            || command_key
                .as_ref()
                .is_some_and(|k| commands.contains_key(k))
        {
            return Err(StoreError::Conflict);
        }
        for e in &write.events {
            events.insert((e.aggregate_id.clone(), e.version), e.clone());
        }
        heads.insert(id.clone(), write.head.clone());
        if let (Some(k), Some(c)) = (command_key, &write.command) {
            commands.insert(k, c.clone());
        }
        Ok(())
    }

    async fn write_events(&self, new: &[StoredEvent]) -> Result<(), StoreError> {
        let mut events = self.events.lock().unwrap();
        if new
            .iter()
            .any(|e| events.contains_key(&(e.aggregate_id.clone(), e.version)))
        {
            return Err(StoreError::Conflict);
        }
        for e in new {
            events.insert((e.aggregate_id.clone(), e.version), e.clone());
        }
        Ok(())
    }

    async fn events_by_type(
        &self,
        q: &TypeQuery,
    ) -> Result<(Vec<StoredEvent>, Option<String>), StoreError> {
        let start = q
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, q))
            .transpose()?;
        let events = self.events.lock().unwrap();
        // Index order: timestamp, then (as DynamoDB does for equal GSI keys, in some stable order) the table key.
        let mut matching: Vec<&StoredEvent> = events
            .values()
            .filter(|e| e.event_type == q.event_type)
            .filter(|e| q.from.as_ref().is_none_or(|f| &e.timestamp >= f))
            .filter(|e| q.to.as_ref().is_none_or(|t| &e.timestamp <= t))
            .collect();
        matching.sort_by(|a, b| {
            (&a.timestamp, &a.aggregate_id, a.version).cmp(&(
                &b.timestamp,
                &b.aggregate_id,
                b.version,
            ))
        });
        let skip = match &start {
            None => 0,
            Some(k) => matching
                .iter()
                .position(|e| {
                    (&e.timestamp, &e.aggregate_id, e.version)
                        > (&k.timestamp, &k.aggregate_id, k.version)
                })
                .unwrap_or(matching.len()),
        };
        let page: Vec<StoredEvent> = matching[skip..]
            .iter()
            .take(q.limit)
            .map(|e| (*e).clone())
            .collect();
        let next = if matching.len() - skip > q.limit {
            page.last().map(|e| {
                encode_cursor(
                    &CursorKey {
                        aggregate_id: e.aggregate_id.clone(),
                        version: e.version,
                        event_type: e.event_type.clone(),
                        timestamp: e.timestamp.clone(),
                    },
                    q,
                )
            })
        } else {
            None
        };
        Ok((page, next))
    }

    async fn get_read_model(&self, aggregate_id: &str) -> Result<Option<ReadModel>, StoreError> {
        Ok(self.read_models.lock().unwrap().get(aggregate_id).cloned())
    }

    async fn put_read_model(
        &self,
        model: &ReadModel,
        previous: Option<&ReadModel>,
    ) -> Result<(), StoreError> {
        let mut models = self.read_models.lock().unwrap();
        let stored = models
            .get(&model.aggregate_id)
            .map(|m| (m.version, m.updated_at.clone()));
        if stored != previous.map(|m| (m.version, m.updated_at.clone())) {
            return Err(StoreError::Conflict);
        }
        models.insert(model.aggregate_id.clone(), model.clone());
        *self.read_model_writes.lock().unwrap() += 1;
        Ok(())
    }

    async fn put_view_row(&self, item: &ViewItem) -> Result<bool, StoreError> {
        let mut rows = self.view_rows.lock().unwrap();
        let id = (
            item.view.clone(),
            item.view_version,
            item.aggregate_id.clone(),
        );
        if rows
            .get(&id)
            .is_some_and(|r| r.aggregate_version > item.aggregate_version)
        {
            return Ok(false);
        }
        rows.insert(id, item.clone());
        Ok(true)
    }

    async fn view_live_version(&self, view: &str) -> Result<Option<u32>, StoreError> {
        Ok(self.live_views.lock().unwrap().get(view).copied())
    }

    async fn set_view_live_version(
        &self,
        view: &str,
        version: u32,
        previous: Option<u32>,
    ) -> Result<(), StoreError> {
        let mut live = self.live_views.lock().unwrap();
        if live.get(view).copied() != previous {
            return Err(StoreError::Conflict);
        }
        live.insert(view.to_string(), version);
        Ok(())
    }

    async fn query_view(
        &self,
        query: &ViewQuery,
    ) -> Result<(Vec<ViewItem>, Option<String>), StoreError> {
        let after = query
            .cursor
            .as_deref()
            .map(|c| decode_view_cursor(c, query))
            .transpose()?;
        let rows = self.view_rows.lock().unwrap();
        let mut page: Vec<ViewItem> = rows
            .values()
            .filter(|r| {
                r.view == query.view
                    && r.view_version == query.view_version
                    && r.key.as_deref() == Some(query.key.as_str())
                    && after.as_ref().is_none_or(|a| r.aggregate_id > *a)
            })
            .take(query.limit + 1)
            .cloned()
            .collect();
        let next = if page.len() > query.limit {
            page.truncate(query.limit);
            page.last()
                .map(|r| encode_view_cursor(query, &r.aggregate_id))
        } else {
            None
        };
        Ok((page, next))
    }
}
