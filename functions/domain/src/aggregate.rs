//! What a user writes to declare an aggregate: its state ([`Aggregate`]), its events as Rust types
//! ([`Event`], gathered into one enum by [`events!`](crate::events)), its rules and its read models.
//!
//! Facts are folded, decisions are checked (cqrs-es: rules in `handle`, none in `apply`). Rules live in
//! [`Aggregate::check`] and judge only *new* events; stored events are facts and are folded with
//! [`Aggregate::apply`] alone, after their data has been upcast to the event's current schema version.
//! Tightening a rule therefore never turns an old, valid log into a "corrupt" one: the append's head, the
//! projector, replay and `?consistent=true` all rebuild state without the rules.
//!
//! Everything else (the store, the functions, the routes, the deploy tool) reaches an aggregate only through
//! [`crate::registry`], as data and trait objects: no code outside this crate names an aggregate type.

use std::fmt::Debug;

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Why an event cannot be appended to (or folded into) an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The event type is not one the aggregate (or any registered aggregate) knows.
    ///
    /// ### Handling
    /// HTTP 422 `unknown_event_type`; the projector reports the record as a batch item failure.
    #[error("unknown event type `{event_type}`; known event types: {}", known.join(", "))]
    UnknownEventType {
        event_type: String,
        known: Vec<String>,
    },
    /// The event's data does not match its type's schema (a missing or mistyped field).
    ///
    /// ### Handling
    /// HTTP 400 `invalid_request`, the message naming the field; for a stored event, the projector reports
    /// the record as a batch item failure.
    #[error("{0}")]
    InvalidData(String),
    /// The event belongs to another aggregate type than the aggregate it is sent to.
    ///
    /// ### Handling
    /// HTTP 422 `wrong_aggregate_type`.
    #[error("{0}")]
    WrongAggregateType(String),
    /// The event is known but not allowed in the aggregate's current state.
    ///
    /// ### Handling
    /// HTTP 422 `rule_violation`; the projector never sees it (stored events are not re-judged).
    #[error("{0}")]
    RuleViolation(String),
}

impl DomainError {
    /// The machine-readable error code used in HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            DomainError::UnknownEventType { .. } => "unknown_event_type",
            DomainError::InvalidData(_) => "invalid_request",
            DomainError::WrongAggregateType(_) => "wrong_aggregate_type",
            DomainError::RuleViolation(_) => "rule_violation",
        }
    }

    /// A rule violation with a message, for `check` implementations.
    pub fn rule(message: impl Into<String>) -> DomainError {
        DomainError::RuleViolation(message.into())
    }
}

/// Turns a stored event's data of schema version `from` into the data of version `from + 1`.
pub type UpcastFn = fn(Map<String, Value>) -> Result<Map<String, Value>, String>;

/// One step of an event's evolution: data written at version `from` becomes version `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    pub from: u32,
    pub up: UpcastFn,
}

/// One event type: a Rust type whose serde form is the stored `event_data` and whose JSON Schema (derived
/// with schemars) is the contract of `eventData` for this type.
///
/// Changing the shape of an event in a way that breaks stored data (a field removed, added as required, or
/// retyped) means raising [`Event::VERSION`] and adding an [`Upcaster`] from the previous version; `cargo
/// xtask validate` and `deploy` refuse the change otherwise (see `crate::registry::breaking_changes`).
pub trait Event:
    Serialize + DeserializeOwned + JsonSchema + Debug + Clone + PartialEq + Send
{
    /// The stored `event_type`, unique across every registered aggregate (e.g. `money_deposited`).
    const TYPE: &'static str;
    /// The schema version of this shape; events are stored with it and upcast from older ones.
    const VERSION: u32 = 1;
    /// The upcasters from every older version still stored, oldest first (`from` 1, 2, ... `VERSION - 1`).
    fn upcasters() -> Vec<Upcaster> {
        Vec::new()
    }
}

/// An aggregate's events as one enum; written with the [`events!`](crate::events) macro.
pub trait Events: Debug + Clone + PartialEq + Send + Sized {
    /// Every event type of the aggregate.
    fn specs() -> Vec<EventSpec>;
    /// Builds the typed event from data of the *current* schema version of `event_type`.
    fn decode(event_type: &str, data: &Map<String, Value>) -> Result<Self, DomainError>;
    /// The stored `event_type` of this event.
    fn event_type(&self) -> &'static str;
    /// The event's `eventData` as stored.
    fn data(&self) -> Map<String, Value>;
    /// The current schema version of `event_type` and its upcasters (cheap: no schema is derived).
    fn evolution(event_type: &str) -> Option<(u32, Vec<Upcaster>)>;
}

/// What the registry knows of one event type.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub event_type: &'static str,
    pub version: u32,
    /// The JSON Schema of `eventData` (OpenAPI 3.0 flavour, subschemas inlined).
    pub schema: Value,
    pub upcasters: Vec<Upcaster>,
}

impl EventSpec {
    /// The spec of one event type, its schema derived from the type.
    pub fn of<E: Event>() -> EventSpec {
        EventSpec {
            event_type: E::TYPE,
            version: E::VERSION,
            schema: crate::schema::derive::<E>(),
            upcasters: E::upcasters(),
        }
    }
}

/// Deserializes the data of one event type (used by [`events!`](crate::events)); an error names the field.
/// New events are checked against the type's schema before (`crate::registry`), so this fails only for
/// stored data that no longer fits and has no upcaster.
pub fn decode<E: Event>(data: &Map<String, Value>) -> Result<E, DomainError> {
    let value = Value::Object(data.clone());
    serde_path_to_error::deserialize::<_, E>(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "eventData".to_string()
        } else {
            format!("eventData.{path}")
        };
        DomainError::InvalidData(format!(
            "`{field}` does not fit event type `{}`: {}",
            E::TYPE,
            e.into_inner()
        ))
    })
}

/// A cross-aggregate read model the aggregate feeds: one row per aggregate, found by `key`.
///
/// The projector keeps one row per (view, aggregate); `GET /views/{view}/{key}` lists the rows whose key is
/// `key`. Changing what a view computes means raising `version`: the new version is rebuilt from the log
/// beside the old one, and reads switch to it once it has caught up.
#[derive(Debug, Clone, Copy)]
pub struct View<A> {
    /// The view's name in routes and tables (e.g. `accounts_by_owner`): lowercase letters, digits, `_`.
    pub name: &'static str,
    /// What the view computes; raise it to rebuild the view.
    pub version: u32,
    /// A sentence for the API document.
    pub description: &'static str,
    /// The key the row is listed under, or `None` for an aggregate not (or no longer) in the view.
    pub key: fn(&A) -> Option<String>,
    /// The row served for the aggregate.
    pub row: fn(&A) -> Value,
}

/// An event-sourced aggregate: state built only from its events.
pub trait Aggregate:
    Default + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The aggregate type's name (e.g. `account`): stored with its events and read models.
    const NAME: &'static str;
    /// A sentence for the API document.
    const DESCRIPTION: &'static str = "";
    /// The aggregate's events.
    type Event: Events;

    /// The business rules: may `event` happen now?
    fn check(&self, event: &Self::Event) -> Result<(), DomainError>;

    /// Folds an event into the state. Must not fail and holds no rules.
    fn apply(&mut self, event: Self::Event);

    /// The cross-aggregate read models this aggregate feeds.
    fn views() -> Vec<View<Self>> {
        Vec::new()
    }

    /// A short valid history, first event first, whose *last* event may be appended again and again. The
    /// tool uses it where it needs events of your domain without knowing it: `cargo xtask smoke` after a
    /// deploy, the benchmarks, the API document's examples. Required (the registry refuses an empty one).
    fn example() -> Vec<Self::Event>;

    /// The JSON state served by the read model and by replay (by default the serde form).
    fn state(&self) -> Value {
        serde_json::to_value(self).expect("an aggregate's state serializes to JSON")
    }

    /// Rebuilds the aggregate from a stored [`Aggregate::state`] (the projector and the append's head continue
    /// from it instead of replaying the whole log).
    fn restore(state: &Value) -> Result<Self, String> {
        serde_json::from_value(state.clone())
            .map_err(|e| format!("a stored `{}` state does not parse: {e}", Self::NAME))
    }
}

/// Declares an aggregate's event enum from its event types: `events! { pub enum AccountEvent {
/// Opened(AccountOpened), Deposited(MoneyDeposited) } }`. Each payload type implements [`Event`].
#[macro_export]
macro_rules! events {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident($ty:ty)),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name { $($variant($ty)),+ }

        impl $crate::aggregate::Events for $name {
            fn specs() -> ::std::vec::Vec<$crate::aggregate::EventSpec> {
                ::std::vec![$($crate::aggregate::EventSpec::of::<$ty>()),+]
            }
            fn decode(
                event_type: &str,
                data: &$crate::serde_json::Map<::std::string::String, $crate::serde_json::Value>,
            ) -> ::std::result::Result<Self, $crate::aggregate::DomainError> {
                $(
                    if event_type == <$ty as $crate::aggregate::Event>::TYPE {
                        return $crate::aggregate::decode::<$ty>(data).map($name::$variant);
                    }
                )+
                Err($crate::aggregate::DomainError::UnknownEventType {
                    event_type: event_type.to_string(),
                    known: ::std::vec![$(<$ty as $crate::aggregate::Event>::TYPE.to_string()),+],
                })
            }
            fn event_type(&self) -> &'static str {
                match self { $($name::$variant(_) => <$ty as $crate::aggregate::Event>::TYPE),+ }
            }
            fn data(&self) -> $crate::serde_json::Map<::std::string::String, $crate::serde_json::Value> {
                let value = match self {
                    $($name::$variant(e) => $crate::serde_json::to_value(e)),+
                };
                match value {
                    ::std::result::Result::Ok($crate::serde_json::Value::Object(map)) => map,
                    other => panic!("an event's data must serialize to a JSON object, got {other:?}"),
                }
            }
            fn evolution(
                event_type: &str,
            ) -> ::std::option::Option<(u32, ::std::vec::Vec<$crate::aggregate::Upcaster>)> {
                $(
                    if event_type == <$ty as $crate::aggregate::Event>::TYPE {
                        return ::std::option::Option::Some((
                            <$ty as $crate::aggregate::Event>::VERSION,
                            <$ty as $crate::aggregate::Event>::upcasters(),
                        ));
                    }
                )+
                ::std::option::Option::None
            }
        }
    };
}
