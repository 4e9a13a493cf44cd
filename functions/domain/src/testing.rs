//! given/when/then for an aggregate's tests, through the registry exactly as the functions run it: given these
//! stored events (folded, no rules), when this new event is appended (schema check, rules, apply), then this
//! state or this error. For the shipped aggregates' tests and yours (see docs/domain.md).

use serde_json::{Map, Value};

use crate::aggregate::DomainError;
use crate::registry::{State, registry};

/// The state of an aggregate of type `aggregate` after `events` (stored facts, schema version 1).
///
/// Panics when the type is not registered or an event does not fold: the given events are the test's premise.
pub fn given(aggregate: &str, events: &[(&str, Value)]) -> Box<dyn State> {
    let owned: Vec<(String, Map<String, Value>)> = events
        .iter()
        .map(|(t, d)| (t.to_string(), object(d)))
        .collect();
    let state = registry()
        .replay(owned.iter().map(|(t, d)| (t.as_str(), 1, d)))
        .expect("the given events fold");
    state.unwrap_or_else(|| {
        registry()
            .kind(aggregate)
            .unwrap_or_else(|| panic!("aggregate type `{aggregate}` is not registered"))
            .initial()
    })
}

/// Appends one new event to `state` as the command side does and returns the new state, or why it was refused.
pub fn when(
    mut state: Box<dyn State>,
    event_type: &str,
    data: Value,
) -> Result<Value, DomainError> {
    let data = object(&data);
    registry().check_new("eventData", event_type, &data)?;
    state.decide(event_type, &data)?;
    Ok(state.state())
}

fn object(value: &Value) -> Map<String, Value> {
    value
        .as_object()
        .cloned()
        .expect("event data is a JSON object")
}
