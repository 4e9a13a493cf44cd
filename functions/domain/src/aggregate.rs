//! The `Aggregate` trait: how a stream of events folds into state, and the rules that decide whether a new
//! event may be appended.
//!
//! Facts are folded, decisions are checked (cqrs-es: rules in `handle`, none in `apply`). Rules live in
//! `check` and judge only *new* events ([`Aggregate::step`]); stored events are facts and are folded with
//! [`Aggregate::fold`], which never consults the rules. Tightening a rule therefore never turns an old,
//! valid log into a "corrupt" one: the append's head, the projector, replay and `?consistent=true` all
//! rebuild state with `fold`.

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

    /// Decides: parses, checks and applies one *new* event. Only the command side calls it.
    fn step(&mut self, event_type: &str, data: &Map<String, Value>) -> Result<(), DomainError> {
        let event = Self::parse_event(event_type, data)?;
        self.check(&event)?;
        self.apply(event);
        Ok(())
    }

    /// Folds one *stored* event: parses and applies it without the rules, because it is a fact that was
    /// accepted when it was written. Fails only when the event cannot be read at all (unknown type).
    fn fold(&mut self, event_type: &str, data: &Map<String, Value>) -> Result<(), DomainError> {
        let event = Self::parse_event(event_type, data)?;
        self.apply(event);
        Ok(())
    }
}

/// Rebuilds an aggregate from its stored `(event_type, event_data)` log with [`Aggregate::fold`] (no rules).
pub fn replay<'a, A: Aggregate>(
    events: impl IntoIterator<Item = (&'a str, &'a Map<String, Value>)>,
) -> Result<A, DomainError> {
    let mut aggregate = A::default();
    for (event_type, data) in events {
        aggregate.fold(event_type, data)?;
    }
    Ok(aggregate)
}

#[cfg(test)]
mod tests {
    //! given/when/then with a test-only aggregate whose rule is a type parameter, so that a log written
    //! under a looser rule can be loaded under a tighter one.
    use super::*;

    /// Counts `incremented` events; the rule: the count may not exceed `MAX`.
    #[derive(Debug, Clone, Default, PartialEq)]
    struct Counter<const MAX: u64> {
        count: u64,
    }

    impl<const MAX: u64> Aggregate for Counter<MAX> {
        type Event = ();
        const KNOWN_EVENT_TYPES: &'static [&'static str] = &["incremented"];

        fn parse_event(event_type: &str, _: &Map<String, Value>) -> Result<(), DomainError> {
            match event_type {
                "incremented" => Ok(()),
                other => Err(DomainError::UnknownEventType {
                    event_type: other.into(),
                    known: vec!["incremented".into()],
                }),
            }
        }

        fn check(&self, _: &()) -> Result<(), DomainError> {
            if self.count >= MAX {
                return Err(DomainError::RuleViolation(format!("at most {MAX}")));
            }
            Ok(())
        }

        fn apply(&mut self, _: ()) {
            self.count += 1;
        }

        fn state(&self) -> Value {
            Value::from(self.count)
        }

        fn restore(state: &Value) -> Result<Self, String> {
            state
                .as_u64()
                .map(|count| Counter { count })
                .ok_or_else(|| "not a count".into())
        }
    }

    fn given<A: Aggregate>(n: usize) -> Result<A, DomainError> {
        let data = Map::new();
        replay(std::iter::repeat_n(("incremented", &data), n))
    }

    #[test]
    fn a_log_written_under_a_looser_rule_still_loads_under_a_tighter_one() {
        // Given five increments, written when the limit was 10.
        assert_eq!(given::<Counter<10>>(5).unwrap().count, 5);
        // When the limit is tightened to 3, the same log still folds: facts are not re-judged.
        let tightened = given::<Counter<3>>(5).unwrap();
        assert_eq!(tightened.state(), Value::from(5));
        // Then a new increment is judged by today's rule.
        let err = tightened
            .clone()
            .step("incremented", &Map::new())
            .unwrap_err();
        assert_eq!(err.code(), "rule_violation");
    }

    #[test]
    fn a_stored_event_of_an_unknown_type_still_fails_the_fold() {
        let data = Map::new();
        let err = replay::<Counter<3>>([("renamed", &data)]).unwrap_err();
        assert_eq!(err.code(), "unknown_event_type");
    }

    #[test]
    fn new_events_are_checked() {
        let mut counter = given::<Counter<1>>(0).unwrap();
        assert_eq!(counter.step("incremented", &Map::new()), Ok(()));
        assert!(counter.step("incremented", &Map::new()).is_err());
        assert_eq!(counter.count, 1, "a refused event is not applied");
    }
}
