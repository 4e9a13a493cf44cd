//! The `Aggregate` trait: how a stream of events folds into state, and the rules that decide whether a new
//! event may be appended.
//!
//! Rules live in `check`, never in `apply`: `apply` must accept every event that `check` allowed, so that
//! replay (query side, `?consistent=true`) and the projector reach the same state from the same log.

use serde_json::{Map, Value};

/// Why an event cannot be appended to (or applied on top of) an aggregate's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The event type is not one the aggregate knows.
    ///
    /// ### Handling
    /// HTTP 422 `unknown_event_type`; the projector reports the record as a batch item failure.
    #[error("unknown event type `{event_type}`; known event types: {}", known.join(", "))]
    UnknownEventType {
        event_type: String,
        known: Vec<String>,
    },
    /// The event is known but not allowed in the aggregate's current state.
    ///
    /// ### Handling
    /// HTTP 422 `rule_violation`; the projector reports the record as a batch item failure.
    #[error("{0}")]
    RuleViolation(String),
}

impl DomainError {
    /// The machine-readable error code used in HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::UnknownEventType { .. } => "unknown_event_type",
            DomainError::RuleViolation(_) => "rule_violation",
        }
    }
}

/// An event-sourced aggregate: state built only from its events.
pub trait Aggregate: Default + Clone + Send + Sync + 'static {
    /// The typed event, parsed from the stored `event_type` + `event_data`.
    type Event;

    /// Every event type this aggregate accepts (listed in `unknown_event_type` errors).
    const KNOWN_EVENT_TYPES: &'static [&'static str];

    /// Parses a stored or requested event; unknown types are refused here.
    fn parse_event(event_type: &str, data: &Map<String, Value>)
    -> Result<Self::Event, DomainError>;

    /// The business rules: may `event` happen now?
    fn check(&self, event: &Self::Event) -> Result<(), DomainError>;

    /// Folds an allowed event into the state. Must not fail and holds no rules.
    fn apply(&mut self, event: Self::Event);

    /// The JSON state served by the read model and by replay.
    fn state(&self) -> Value;

    /// Rebuilds the aggregate from a stored `state()` (the projector continues from the read model
    /// instead of replaying the whole log).
    fn restore(state: &Value) -> Result<Self, String>;

    /// Parses, checks and applies one event: the single step shared by the command side (deciding),
    /// replay and the projector.
    fn step(&mut self, event_type: &str, data: &Map<String, Value>) -> Result<(), DomainError> {
        let event = Self::parse_event(event_type, data)?;
        self.check(&event)?;
        self.apply(event);
        Ok(())
    }
}

/// Replays a sequence of `(event_type, event_data)` into a fresh aggregate.
pub fn replay<'a, A: Aggregate>(
    events: impl IntoIterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> Result<A, DomainError> {
    let mut aggregate = A::default();
    for (event_type, data) in events {
        aggregate.step(event_type, data)?;
    }
    Ok(aggregate)
}
