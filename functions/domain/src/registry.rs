//! The one registry of the domain: every aggregate type, its event types with their schemas and versions,
//! and its views. The store, the functions, the API document and the deploy tool reach the domain only
//! through it: as trait objects ([`Kind`], [`State`]) to decide and fold, and as data ([`Description`]) to
//! derive contracts and to compare one release's events with the last deployed one's.
//!
//! How a request names its aggregate type: by its events. Every event type belongs to exactly one
//! aggregate type (the registry refuses duplicates), so `POST /events` with the seed's body names its
//! aggregate through `eventType`; the aggregate's head and every stored event record the type, and an
//! event of another type sent to an existing aggregate is refused (`wrong_aggregate_type`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aggregate::{Aggregate, DomainError, EventSpec, Events};

/// The registry of this build: the aggregates registered in [`crate::aggregates::register`].
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = crate::aggregates::register(Registry::new());
        if let Err(problems) = registry.check() {
            panic!(
                "the domain's registrations are inconsistent:\n  {}",
                problems.join("\n  ")
            );
        }
        registry
    })
}

/// One aggregate type, as the generic code sees it.
pub trait Kind: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn events(&self) -> &[EventSpec];
    fn views(&self) -> Vec<ViewInfo>;
    /// [`Aggregate::example`] as `(event_type, data)`.
    fn example(&self) -> Vec<(&'static str, Map<String, Value>)>;
    /// The state before any event.
    fn initial(&self) -> Box<dyn State>;
    /// The state from a stored [`State::state`] (a head or a read model).
    fn restore(&self, state: &Value) -> Result<Box<dyn State>, String>;
}

/// An aggregate's state, as the generic code sees it.
pub trait State: Send + Sync + Debug {
    /// The aggregate type's name.
    fn kind(&self) -> &'static str;
    /// Decides one *new* event: decodes it, checks the rules, applies it. Its data was checked against the
    /// schema before ([`Registry::check_new`]).
    fn decide(&mut self, event_type: &str, data: &Map<String, Value>) -> Result<(), DomainError>;
    /// Folds one *stored* event of schema version `version` (upcast first), without the rules.
    fn fold(
        &mut self,
        event_type: &str,
        version: u32,
        data: &Map<String, Value>,
    ) -> Result<(), DomainError>;
    /// The JSON state served by read models and replay.
    fn state(&self) -> Value;
    /// This aggregate's row in each of its views.
    fn view_rows(&self) -> Vec<ViewRow>;
    fn clone_box(&self) -> Box<dyn State>;
}

impl Clone for Box<dyn State> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// A view as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewInfo {
    pub name: String,
    pub version: u32,
    pub aggregate_type: String,
    pub description: String,
}

/// A view by name, with every version its aggregate type declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDecl {
    pub name: String,
    pub aggregate_type: String,
    /// The newest version's description.
    pub description: String,
    /// Ascending; the last one is the target version.
    pub versions: Vec<u32>,
}

impl ViewDecl {
    /// The version reads switch to once it has caught up: the highest declared.
    pub fn target(&self) -> u32 {
        *self.versions.last().expect("a declared view has a version")
    }
}

/// One aggregate's row in one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewRow {
    pub view: &'static str,
    pub version: u32,
    /// `None`: the aggregate is not in the view (any earlier row of it is removed).
    pub key: Option<String>,
    pub row: Value,
}

/// Every aggregate type of the build.
#[derive(Default)]
pub struct Registry {
    kinds: Vec<Box<dyn Kind>>,
    /// event type -> (kind index, spec index)
    by_event: HashMap<&'static str, (usize, usize)>,
    duplicates: Vec<String>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers an aggregate type (the one line a user adds per aggregate).
    pub fn with<A: Aggregate>(mut self) -> Registry {
        let index = self.kinds.len();
        let kind = KindOf::<A>::new();
        for (i, spec) in kind.specs.iter().enumerate() {
            if let Some((other, _)) = self.by_event.insert(spec.event_type, (index, i)) {
                self.duplicates.push(format!(
                    "event type `{}` is declared by both `{}` and `{}`; event types name their aggregate, so each must be unique",
                    spec.event_type,
                    self.kinds[other].name(),
                    A::NAME
                ));
            }
        }
        if self.kinds.iter().any(|k| k.name() == A::NAME) {
            self.duplicates
                .push(format!("aggregate type `{}` is registered twice", A::NAME));
        }
        self.kinds.push(Box::new(kind));
        self
    }

    /// Every problem with the registrations: duplicate names, schemas the server would not enforce,
    /// missing upcasters, names that are not identifiers.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = self.duplicates.clone();
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        for kind in &self.kinds {
            if !name_ok(kind.name()) {
                problems.push(format!(
                    "aggregate type `{}`: use lowercase letters, digits and `_` (at most 64)",
                    kind.name()
                ));
            }
            for spec in kind.events() {
                if !name_ok(spec.event_type) {
                    problems.push(format!(
                        "event type `{}`: use lowercase letters, digits and `_` (at most 64)",
                        spec.event_type
                    ));
                }
                if spec.version == 0 {
                    problems.push(format!(
                        "event type `{}`: versions start at 1",
                        spec.event_type
                    ));
                }
                for keyword in crate::schema::unsupported(&spec.schema) {
                    problems.push(format!(
                        "event type `{}`: its schema uses {keyword}, which the command side does not enforce; express the rule in the aggregate's `check` instead",
                        spec.event_type
                    ));
                }
                let froms: Vec<u32> = spec.upcasters.iter().map(|u| u.from).collect();
                let expected: Vec<u32> = (1..spec.version).collect();
                if froms != expected {
                    problems.push(format!(
                        "event type `{}` is at version {} and has upcasters from versions {froms:?}; it needs exactly one from each older version, oldest first: {expected:?}",
                        spec.event_type, spec.version
                    ));
                }
            }
            if let Err(e) = example_is_valid(kind.as_ref()) {
                problems.push(format!(
                    "aggregate type `{}`: its `example()` {e}",
                    kind.name()
                ));
            }
            for view in kind.views() {
                if !name_ok(&view.name) {
                    problems.push(format!(
                        "view `{}`: use lowercase letters, digits and `_` (at most 64)",
                        view.name
                    ));
                }
            }
        }
        // A view belongs to one aggregate type; it may be declared twice by it (old and new version, while a
        // changed view is rebuilt beside the old one), never twice with one version.
        let mut views: BTreeMap<String, (String, Vec<u32>)> = BTreeMap::new();
        for view in self.kinds.iter().flat_map(|k| k.views()) {
            let (owner, versions) = views
                .entry(view.name.clone())
                .or_insert_with(|| (view.aggregate_type.clone(), Vec::new()));
            if *owner != view.aggregate_type {
                problems.push(format!(
                    "view `{}` is declared by both `{owner}` and `{}`",
                    view.name, view.aggregate_type
                ));
            } else if versions.contains(&view.version) {
                problems.push(format!(
                    "view `{}` declares version {} twice; raise the new one's `version`",
                    view.name, view.version
                ));
            }
            versions.push(view.version);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Every view, one entry per name: its aggregate type and the versions declared (ascending). The last
    /// version is the one reads switch to once it has caught up.
    pub fn views(&self) -> Vec<ViewDecl> {
        let mut by_name: BTreeMap<String, ViewDecl> = BTreeMap::new();
        for view in self.kinds.iter().flat_map(|k| k.views()) {
            let decl = by_name
                .entry(view.name.clone())
                .or_insert_with(|| ViewDecl {
                    name: view.name.clone(),
                    aggregate_type: view.aggregate_type.clone(),
                    description: view.description.clone(),
                    versions: Vec::new(),
                });
            decl.versions.push(view.version);
            decl.versions.sort_unstable();
            if decl.versions.last() == Some(&view.version) {
                decl.description = view.description.clone();
            }
        }
        by_name.into_values().collect()
    }

    /// The view named `name`, if one is declared.
    pub fn view(&self, name: &str) -> Option<ViewDecl> {
        self.views().into_iter().find(|v| v.name == name)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &dyn Kind> {
        self.kinds.iter().map(|k| k.as_ref())
    }

    pub fn kind(&self, name: &str) -> Option<&dyn Kind> {
        self.kinds().find(|k| k.name() == name)
    }

    /// The aggregate type an event type belongs to.
    pub fn kind_of_event(&self, event_type: &str) -> Option<&dyn Kind> {
        self.by_event
            .get(event_type)
            .map(|(k, _)| self.kinds[*k].as_ref())
    }

    /// The spec of an event type.
    pub fn spec(&self, event_type: &str) -> Option<&EventSpec> {
        self.by_event
            .get(event_type)
            .map(|(k, i)| &self.kinds[*k].events()[*i])
    }

    /// Every event type, in registration order.
    pub fn event_types(&self) -> Vec<&'static str> {
        self.kinds
            .iter()
            .flat_map(|k| k.events().iter().map(|s| s.event_type))
            .collect()
    }

    fn unknown(&self, event_type: &str) -> DomainError {
        DomainError::UnknownEventType {
            event_type: event_type.to_string(),
            known: self.event_types().iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Which aggregate type a command's events belong to: all of them must belong to one type, and to
    /// `declared` when the request names it.
    pub fn kind_of_command<'a>(
        &self,
        declared: Option<&str>,
        event_types: impl IntoIterator<Item = &'a str>,
    ) -> Result<&dyn Kind, (usize, DomainError)> {
        let mut found: Option<&dyn Kind> = match declared {
            Some(name) => Some(self.kind(name).ok_or_else(|| {
                let known: Vec<&str> = self.kinds().map(|k| k.name()).collect();
                (
                    0,
                    DomainError::WrongAggregateType(format!(
                        "unknown aggregate type `{name}`; known aggregate types: {}",
                        known.join(", ")
                    )),
                )
            })?),
            None => None,
        };
        for (index, event_type) in event_types.into_iter().enumerate() {
            let kind = self
                .kind_of_event(event_type)
                .ok_or_else(|| (index, self.unknown(event_type)))?;
            match found {
                Some(f) if f.name() != kind.name() => {
                    return Err((
                        index,
                        DomainError::WrongAggregateType(format!(
                            "event type `{event_type}` belongs to aggregate type `{}`, not `{}`",
                            kind.name(),
                            f.name()
                        )),
                    ));
                }
                _ => found = Some(kind),
            }
        }
        found.ok_or_else(|| (0, DomainError::InvalidData("no events".into())))
    }

    /// Checks a new event's data against its type's schema; the message names the field.
    pub fn check_new(
        &self,
        field: &str,
        event_type: &str,
        data: &Map<String, Value>,
    ) -> Result<(), DomainError> {
        let spec = self
            .spec(event_type)
            .ok_or_else(|| self.unknown(event_type))?;
        crate::schema::validate(&spec.schema, field, &Value::Object(data.clone()))
            .map_err(|e| DomainError::InvalidData(format!("{e} (event type `{event_type}`)")))
    }

    /// Replays stored events (`(event_type, schema_version, data)`, version order) into a state; the
    /// aggregate type is the first event's. `Ok(None)` for no events.
    pub fn replay<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a str, u32, &'a Map<String, Value>)>,
    ) -> Result<Option<Box<dyn State>>, DomainError> {
        let mut state: Option<Box<dyn State>> = None;
        for (event_type, version, data) in events {
            let s = match &mut state {
                Some(s) => s,
                None => {
                    let kind = self
                        .kind_of_event(event_type)
                        .ok_or_else(|| self.unknown(event_type))?;
                    state.insert(kind.initial())
                }
            };
            s.fold(event_type, version, data)?;
        }
        Ok(state)
    }

    /// The registry as data: what the pipeline records and compares.
    pub fn describe(&self) -> Description {
        Description {
            aggregates: self
                .kinds()
                .map(|k| AggregateInfo {
                    name: k.name().to_string(),
                    description: k.description().to_string(),
                    events: k
                        .events()
                        .iter()
                        .map(|s| EventInfo {
                            event_type: s.event_type.to_string(),
                            version: s.version,
                            upcasts_from: s.upcasters.iter().map(|u| u.from).collect(),
                            schema: s.schema.clone(),
                        })
                        .collect(),
                    views: k.views(),
                    example: k
                        .example()
                        .into_iter()
                        .map(|(t, d)| (t.to_string(), d))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// An example must be non-empty, valid by the schemas and rules, and its last event repeatable.
fn example_is_valid(kind: &dyn Kind) -> Result<(), String> {
    let example = kind.example();
    let Some(last) = example.last().cloned() else {
        return Err("is empty; give a short valid history".into());
    };
    let mut state = kind.initial();
    for (i, (event_type, data)) in example.iter().chain([&last]).enumerate() {
        let spec = kind.events().iter().find(|s| s.event_type == *event_type);
        let spec = spec.ok_or_else(|| {
            format!("names event type `{event_type}`, which is not this aggregate's")
        })?;
        crate::schema::validate(&spec.schema, "eventData", &Value::Object(data.clone()))
            .map_err(|e| format!("event {i} does not match its schema: {e}"))?;
        state
            .decide(event_type, data)
            .map_err(|e| format!("event {i} is refused (the last one must be repeatable): {e}"))?;
    }
    Ok(())
}

/// The domain as data: aggregate types, event types with versions and schemas, views. Recorded with every
/// release (the release manifest) so that the next deploy can refuse a breaking change to stored events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Description {
    pub aggregates: Vec<AggregateInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateInfo {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub events: Vec<EventInfo>,
    #[serde(default)]
    pub views: Vec<ViewInfo>,
    /// A valid history whose last event may repeat (`Aggregate::example`).
    #[serde(default)]
    pub example: Vec<(String, Map<String, Value>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInfo {
    pub event_type: String,
    pub version: u32,
    /// The older versions that have an upcaster.
    #[serde(default)]
    pub upcasts_from: Vec<u32>,
    pub schema: Value,
}

impl Description {
    pub fn events(&self) -> impl Iterator<Item = (&AggregateInfo, &EventInfo)> {
        self.aggregates
            .iter()
            .flat_map(|a| a.events.iter().map(move |e| (a, e)))
    }

    pub fn views(&self) -> impl Iterator<Item = &ViewInfo> {
        self.aggregates.iter().flat_map(|a| a.views.iter())
    }
}

/// One change that stored events would not survive, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaking {
    pub event_type: String,
    /// The field's path in `eventData`, when the change is to a field.
    pub field: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Breaking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(
                f,
                "event `{}`, field `{field}`: {}; {}",
                self.event_type, self.problem, self.fix
            ),
            None => write!(
                f,
                "event `{}`: {}; {}",
                self.event_type, self.problem, self.fix
            ),
        }
    }
}

/// Compares the events of the last deployed release (`old`) with this build's (`new`), like `buf breaking`
/// for stored events: an event type removed while events of it may be stored, a schema version lowered, a
/// version raised without upcasters from the deployed one, or a field removed, retyped or newly required
/// under the same version.
pub fn breaking_changes(old: &Description, new: &Description) -> Vec<Breaking> {
    let new_events: HashMap<&str, &EventInfo> = new
        .events()
        .map(|(_, e)| (e.event_type.as_str(), e))
        .collect();
    let mut out = Vec::new();
    for (aggregate, before) in old.events() {
        let t = &before.event_type;
        let Some(after) = new_events.get(t.as_str()) else {
            out.push(Breaking {
                event_type: t.clone(),
                field: None,
                problem: format!(
                    "the event type of aggregate `{}` was removed, but events of it may be stored",
                    aggregate.name
                ),
                fix: "keep the type in the aggregate's events (it may refuse new ones in `check`)"
                    .into(),
            });
            continue;
        };
        if after.version < before.version {
            out.push(Breaking {
                event_type: t.clone(),
                field: None,
                problem: format!(
                    "its schema version went down from {} to {}",
                    before.version, after.version
                ),
                fix: format!("restore `VERSION` to at least {}", before.version),
            });
            continue;
        }
        if after.version > before.version {
            let missing: Vec<u32> = (before.version..after.version)
                .filter(|v| !after.upcasts_from.contains(v))
                .collect();
            if !missing.is_empty() {
                out.push(Breaking {
                    event_type: t.clone(),
                    field: None,
                    problem: format!(
                        "its schema version went from {} to {} without upcasters from {missing:?}",
                        before.version, after.version
                    ),
                    fix: "add an upcaster from each of those versions in the event's `upcasters()`"
                        .into(),
                });
            }
            continue;
        }
        let mut fields = Vec::new();
        compare_schema("eventData", &before.schema, &after.schema, &mut fields);
        for (field, problem) in fields {
            out.push(Breaking {
                event_type: t.clone(),
                field: Some(field),
                problem,
                fix: format!(
                    "stored events of version {v} would no longer fold: raise the event's `VERSION` to {next} and add an upcaster from version {v} that turns the old data into the new shape (docs/domain.md, \"Changing an event\")",
                    v = before.version,
                    next = before.version + 1,
                ),
            });
        }
    }
    out
}

fn compare_schema(path: &str, old: &Value, new: &Value, out: &mut Vec<(String, String)>) {
    let get = |s: &Value, k: &str| s.get(k).cloned();
    if get(old, "$ref") != get(new, "$ref") || get(old, "type") != get(new, "type") {
        let show = |s: &Value| {
            s.get("$ref")
                .or_else(|| s.get("type"))
                .map_or_else(|| "any".to_string(), |v| v.to_string())
        };
        out.push((
            path.to_string(),
            format!("its type changed from {} to {}", show(old), show(new)),
        ));
        return;
    }
    if old.get("nullable") == Some(&Value::Bool(true))
        && new.get("nullable") != Some(&Value::Bool(true))
    {
        out.push((
            path.to_string(),
            "it may no longer be null, but stored events may hold null".into(),
        ));
    }
    if let (Some(Value::Array(before)), Some(Value::Array(after))) =
        (old.get("enum"), new.get("enum"))
    {
        for v in before.iter().filter(|v| !after.contains(v)) {
            out.push((
                path.to_string(),
                format!("the value {v} was removed, but stored events may hold it"),
            ));
        }
    }
    let props = |s: &Value| {
        s.get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let required = |s: &Value| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_props, new_props) = (props(old), props(new));
    let closed = new.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, before) in &old_props {
        let field = format!("{path}.{name}");
        match new_props.get(name) {
            Some(after) => compare_schema(&field, before, after, out),
            None if closed => out.push((
                field,
                "it was removed, but stored events hold it and the new type refuses unknown fields"
                    .into(),
            )),
            None => {}
        }
    }
    let old_required = required(old);
    for name in required(new) {
        if !old_required.contains(&name) {
            out.push((
                format!("{path}.{name}"),
                "it is now required, but stored events may lack it".into(),
            ));
        }
    }
    if let (Some(before), Some(after)) = (old.get("items"), new.get("items")) {
        compare_schema(&format!("{path}[*]"), before, after, out);
    }
}

/// The generic implementation of [`Kind`] for an [`Aggregate`]; the specs are derived once.
struct KindOf<A: Aggregate> {
    specs: Vec<EventSpec>,
    _aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<A: Aggregate> KindOf<A> {
    fn new() -> Self {
        KindOf {
            specs: A::Event::specs(),
            _aggregate: std::marker::PhantomData,
        }
    }
}

impl<A: Aggregate> Kind for KindOf<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn description(&self) -> &'static str {
        A::DESCRIPTION
    }

    fn events(&self) -> &[EventSpec] {
        &self.specs
    }

    fn views(&self) -> Vec<ViewInfo> {
        A::views()
            .into_iter()
            .map(|v| ViewInfo {
                name: v.name.to_string(),
                version: v.version,
                aggregate_type: A::NAME.to_string(),
                description: v.description.to_string(),
            })
            .collect()
    }

    fn example(&self) -> Vec<(&'static str, Map<String, Value>)> {
        A::example()
            .iter()
            .map(|e| (e.event_type(), e.data()))
            .collect()
    }

    fn initial(&self) -> Box<dyn State> {
        Box::new(StateOf(A::default()))
    }

    fn restore(&self, state: &Value) -> Result<Box<dyn State>, String> {
        A::restore(state).map(|a| Box::new(StateOf(a)) as Box<dyn State>)
    }
}

#[derive(Debug, Clone)]
struct StateOf<A: Aggregate>(A);

impl<A: Aggregate> State for StateOf<A> {
    fn kind(&self) -> &'static str {
        A::NAME
    }

    fn decide(&mut self, event_type: &str, data: &Map<String, Value>) -> Result<(), DomainError> {
        let event = A::Event::decode(event_type, data)?;
        self.0.check(&event)?;
        self.0.apply(event);
        Ok(())
    }

    fn fold(
        &mut self,
        event_type: &str,
        version: u32,
        data: &Map<String, Value>,
    ) -> Result<(), DomainError> {
        let event = decode_stored::<A>(event_type, version, data)?;
        self.0.apply(event);
        Ok(())
    }

    fn state(&self) -> Value {
        self.0.state()
    }

    fn view_rows(&self) -> Vec<ViewRow> {
        A::views()
            .into_iter()
            .map(|v| ViewRow {
                view: v.name,
                version: v.version,
                key: (v.key)(&self.0),
                row: (v.row)(&self.0),
            })
            .collect()
    }

    fn clone_box(&self) -> Box<dyn State> {
        Box::new(self.clone())
    }
}

/// Upcasts a stored event's data from its schema `version` to the current one, then decodes it.
fn decode_stored<A: Aggregate>(
    event_type: &str,
    version: u32,
    data: &Map<String, Value>,
) -> Result<A::Event, DomainError> {
    // An event type this aggregate does not know: `decode` reports it with the known ones.
    let Some((current, upcasters)) = A::Event::evolution(event_type) else {
        return A::Event::decode(event_type, data);
    };
    if version == current {
        return A::Event::decode(event_type, data);
    }
    if version > current {
        return Err(DomainError::InvalidData(format!(
            "a stored `{event_type}` event has schema version {version}, newer than this code's {current}; deploy the code that wrote it"
        )));
    }
    let mut upcast = data.clone();
    for step in upcasters.iter().filter(|u| u.from >= version) {
        upcast = (step.up)(upcast).map_err(|e| {
            DomainError::InvalidData(format!(
                "upcasting a stored `{event_type}` event from version {}: {e}",
                step.from
            ))
        })?;
    }
    A::Event::decode(event_type, &upcast)
}

#[cfg(test)]
mod tests {
    //! Evolution, tested against events written by the *previous* shape of the code: `v1::Counted` is how
    //! an event looked when it was stored, `v2::Counted` how it looks now.
    use super::*;
    use crate::aggregate::{Aggregate, Event, Upcaster};
    use schemars::JsonSchema;
    use serde_json::json;

    mod v1 {
        use super::*;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct Counted {
            pub by: u32,
        }
        impl Event for Counted {
            const TYPE: &'static str = "counted";
        }
        crate::events! { pub enum CounterEvent { Counted(Counted) } }
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Counter {
            pub total: u64,
        }
        impl Aggregate for Counter {
            const NAME: &'static str = "counter";
            type Event = CounterEvent;
            fn check(&self, _: &CounterEvent) -> Result<(), DomainError> {
                Ok(())
            }
            fn apply(&mut self, CounterEvent::Counted(c): CounterEvent) {
                self.total += u64::from(c.by);
            }
            fn example() -> Vec<CounterEvent> {
                vec![CounterEvent::Counted(Counted { by: 1 })]
            }
        }
    }

    /// Version 2 renames `by` to `amount` and adds a required `reason`.
    mod v2 {
        use super::*;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct Counted {
            pub amount: u32,
            pub reason: String,
        }
        impl Event for Counted {
            const TYPE: &'static str = "counted";
            const VERSION: u32 = 2;
            fn upcasters() -> Vec<Upcaster> {
                vec![Upcaster {
                    from: 1,
                    up: |mut data| {
                        let by = data.remove("by").ok_or("`by` is missing")?;
                        data.insert("amount".into(), by);
                        data.insert("reason".into(), json!("unknown"));
                        Ok(data)
                    },
                }]
            }
        }
        crate::events! { pub enum CounterEvent { Counted(Counted) } }
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Counter {
            pub total: u64,
            pub reasons: Vec<String>,
        }
        impl Aggregate for Counter {
            const NAME: &'static str = "counter";
            type Event = CounterEvent;
            fn check(&self, _: &CounterEvent) -> Result<(), DomainError> {
                Ok(())
            }
            fn apply(&mut self, CounterEvent::Counted(c): CounterEvent) {
                self.total += u64::from(c.amount);
                self.reasons.push(c.reason);
            }
            fn example() -> Vec<CounterEvent> {
                vec![CounterEvent::Counted(Counted {
                    amount: 1,
                    reason: "x".into(),
                })]
            }
        }
    }

    /// Version 2's shape without raising the version: what a user does by mistake.
    mod v2_unversioned {
        use super::*;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct Counted {
            pub amount: u32,
            pub reason: String,
        }
        impl Event for Counted {
            const TYPE: &'static str = "counted";
        }
        crate::events! { pub enum CounterEvent { Counted(Counted) } }
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        pub struct Counter;
        impl Aggregate for Counter {
            const NAME: &'static str = "counter";
            type Event = CounterEvent;
            fn check(&self, _: &CounterEvent) -> Result<(), DomainError> {
                Ok(())
            }
            fn apply(&mut self, _: CounterEvent) {}
            fn example() -> Vec<CounterEvent> {
                vec![CounterEvent::Counted(Counted {
                    amount: 1,
                    reason: "x".into(),
                })]
            }
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_shipped_registry_is_consistent() {
        assert_eq!(crate::aggregates::register(Registry::new()).check(), Ok(()));
        assert!(registry().kind("user").is_some() && registry().kind("account").is_some());
    }

    #[test]
    fn events_stored_by_the_previous_shape_fold_through_the_upcaster() {
        // Stored by the old code, as it wrote them.
        let old = serde_json::to_value(v1::Counted { by: 3 }).unwrap();
        let new = serde_json::to_value(v2::Counted {
            amount: 4,
            reason: "gift".into(),
        })
        .unwrap();
        let registry = Registry::new().with::<v2::Counter>();
        assert_eq!(registry.check(), Ok(()));
        let log = [("counted", 1, obj(old)), ("counted", 2, obj(new))];
        let state = registry
            .replay(log.iter().map(|(t, v, d)| (*t, *v, d)))
            .unwrap()
            .unwrap();
        assert_eq!(
            state.state(),
            json!({"total": 7, "reasons": ["unknown", "gift"]})
        );
    }

    #[test]
    fn a_stored_version_newer_than_the_code_is_refused() {
        let registry = Registry::new().with::<v1::Counter>();
        let data = obj(json!({"by": 1}));
        let err = registry.replay([("counted", 2, &data)]).unwrap_err();
        assert!(
            err.to_string().contains("newer than this code's 1"),
            "{err}"
        );
    }

    #[test]
    fn a_breaking_change_without_an_upcaster_is_refused_naming_event_field_and_fix() {
        let deployed = Registry::new().with::<v1::Counter>().describe();
        let changed = Registry::new().with::<v2_unversioned::Counter>().describe();
        let breaking = breaking_changes(&deployed, &changed);
        let lines: Vec<String> = breaking.iter().map(ToString::to_string).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("event `counted`, field `eventData.by`: it was removed")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("event `counted`, field `eventData.reason`: it is now required")),
            "{lines:#?}"
        );
        assert!(
            lines[0]
                .contains("raise the event's `VERSION` to 2 and add an upcaster from version 1"),
            "{}",
            lines[0]
        );
        // With the version raised and the upcaster written, the same change is accepted.
        let evolved = Registry::new().with::<v2::Counter>().describe();
        assert_eq!(breaking_changes(&deployed, &evolved), vec![]);
        // Removing the event type while events of it may be stored is refused too.
        let removed = Registry::new()
            .with::<crate::aggregates::account::Account>()
            .describe();
        let breaking = breaking_changes(&deployed, &removed);
        assert_eq!(breaking.len(), 1);
        assert!(
            breaking[0]
                .to_string()
                .contains("was removed, but events of it may be stored")
        );
    }

    #[test]
    fn retyping_a_field_is_breaking() {
        let old = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false});
        let new = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false});
        let mut out = Vec::new();
        compare_schema("eventData", &old, &new, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "eventData.a");
        assert!(
            out[0].1.contains("\"integer\" to \"string\""),
            "{}",
            out[0].1
        );
        // An optional field added is not.
        let added = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "additionalProperties": false});
        out.clear();
        compare_schema("eventData", &old, &added, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_command_names_one_aggregate_type() {
        let r = registry();
        assert_eq!(
            r.kind_of_command(None, ["user_created", "user_updated"])
                .map(|k| k.name())
                .ok(),
            Some("user")
        );
        let (index, err) = r
            .kind_of_command(None, ["account_opened", "user_updated"])
            .err()
            .unwrap();
        assert_eq!((index, err.code()), (1, "wrong_aggregate_type"));
        let (_, err) = r
            .kind_of_command(Some("user"), ["account_opened"])
            .err()
            .unwrap();
        assert_eq!(err.code(), "wrong_aggregate_type");
        let (_, err) = r.kind_of_command(None, ["nope"]).err().unwrap();
        assert_eq!(err.code(), "unknown_event_type");
        assert!(err.to_string().contains("money_deposited"), "{err}");
    }

    #[test]
    fn duplicate_event_types_are_refused() {
        let problems = Registry::new()
            .with::<v1::Counter>()
            .with::<v2::Counter>()
            .check()
            .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("declared by both")),
            "{problems:?}"
        );
    }
}
