//! The OpenAPI document (`functions/openapi.yaml`), the functions' route table (`service::routes::routes()`)
//! and the plan's routes (`stack::default_routes()`, which the template and local gateway use) must list
//! the same routes, each served by the same function. The functions cannot depend on `stack`, so this test
//! is where the three are tied together.

use std::collections::BTreeSet;
use std::path::Path;

use service::routes::{Function, routes};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn openapi_routes() -> BTreeSet<(String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/openapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("openapi.yaml is YAML");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document"
    );
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (key, op) in item.as_mapping().expect("a path item") {
            let key = key.as_str().unwrap();
            if !METHODS.contains(&key) {
                continue;
            }
            let function = op["x-function"]
                .as_str()
                .unwrap_or_else(|| panic!("{key} {path:?} lacks x-function"));
            routes.insert((
                key.to_uppercase(),
                path.as_str().unwrap().to_string(),
                function.to_string(),
            ));
        }
    }
    routes
}

fn service_routes() -> BTreeSet<(String, String, String)> {
    routes()
        .iter()
        .map(|r| {
            let function = match r.function {
                Function::Command => "command",
                Function::Query => "query",
            };
            (
                r.method.to_string(),
                r.path.to_string(),
                function.to_string(),
            )
        })
        .collect()
}

fn plan_routes() -> BTreeSet<(String, String, String)> {
    stack::plan::default_routes()
        .into_iter()
        .map(|r| {
            (
                r.method.as_str().to_string(),
                r.path,
                r.function.as_str().to_string(),
            )
        })
        .collect()
}

#[test]
fn openapi_paths_and_methods_equal_the_router() {
    assert_eq!(openapi_routes(), service_routes());
}

#[test]
fn the_router_serves_exactly_the_planned_routes() {
    assert_eq!(service_routes(), plan_routes());
    assert_eq!(
        routes().len(),
        stack::plan::default_routes().len(),
        "no duplicate routes"
    );
}

/// The limits the document states are the ones `domain::validate` enforces.
#[test]
fn openapi_limits_equal_the_servers() {
    use domain::validate::{
        MAX_BATCH_EVENTS, MAX_DATA_DEPTH, MAX_ID_CHARS, MAX_PAGE_LIMIT, MAX_VERSION,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/openapi.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let schemas = &doc["components"]["schemas"];
    let id = &schemas["Id"];
    assert_eq!(id["minLength"].as_u64(), Some(1));
    assert_eq!(id["maxLength"].as_u64(), Some(MAX_ID_CHARS as u64));
    assert_eq!(
        id["pattern"].as_str(),
        Some(r"^[^\u0000-\u001F\u007F-\u009F]*$"),
        "the control characters of `char::is_control`"
    );
    assert_eq!(schemas["Version"]["maximum"].as_u64(), Some(MAX_VERSION));
    assert_eq!(
        schemas["AppendBatchRequest"]["properties"]["events"]["maxItems"].as_u64(),
        Some(MAX_BATCH_EVENTS as u64)
    );
    let limits: Vec<u64> = ["/events", "/aggregates/{aggregateId}/events"]
        .iter()
        .flat_map(|p| doc["paths"][*p]["get"]["parameters"].as_sequence().unwrap())
        .filter(|p| p["name"] == "limit")
        .map(|p| p["schema"]["maximum"].as_u64().unwrap())
        .collect();
    assert_eq!(limits, [MAX_PAGE_LIMIT as u64; 2]);
    assert!(
        schemas["EventData"]["description"]
            .as_str()
            .unwrap()
            .contains(&format!("at most {MAX_DATA_DEPTH} levels")),
        "EventData states the nesting limit"
    );
}

/// The committed document is exactly what the route table and the domain generate (a codegen test): an
/// aggregate or route changed without `cargo xtask openapi` fails here, naming the command to run.
#[test]
fn the_committed_openapi_document_is_generated_from_the_routes_and_the_domain() {
    let path = tests::repo_root().join(xtask::openapi::PATH);
    let committed = std::fs::read_to_string(&path).unwrap();
    assert!(
        committed == xtask::openapi::render(),
        "{} is stale: run `cargo xtask openapi` and commit the result",
        path.display()
    );
}

/// Every event type of the registry is in the document, with the schema derived from its Rust type, and an
/// unknown type is not: the document cannot drift from the domain.
#[test]
fn every_event_type_of_the_domain_is_stated_with_its_derived_schema() {
    let doc = service::openapi::document(domain::registry());
    let types = doc["components"]["schemas"]["EventType"]["enum"]
        .as_array()
        .unwrap();
    let options = doc["components"]["schemas"]["AppendEventRequest"]["oneOf"]
        .as_array()
        .unwrap();
    for kind in domain::registry().kinds() {
        for spec in kind.events() {
            assert!(
                types.contains(&serde_json::json!(spec.event_type)),
                "{}",
                spec.event_type
            );
            let option = options
                .iter()
                .find(|o| o["properties"]["eventType"]["enum"][0] == spec.event_type)
                .unwrap_or_else(|| panic!("no request shape for {}", spec.event_type));
            assert_eq!(
                option["properties"]["eventData"], spec.schema,
                "{}",
                spec.event_type
            );
            assert_eq!(
                option["properties"]["aggregateType"]["enum"][0],
                kind.name()
            );
        }
    }
    assert_eq!(types.len(), domain::registry().event_types().len());
}
