//! An event store on a local AWS endpoint of its own, and the calls the store-level tests make on it (append
//! through the service's own code, a query route's JSON answer), so each test states only its scenario.

use domain::Metadata;
use domain::api::{AppendCommand, NewEvent};
use local_engine::endpoint::Endpoint;
use serde_json::Value;
use service::aws_sdk_dynamodb::Client;
use service::lambda_http::Body;
use service::{Config, DynamoStore};

/// A fresh local endpoint with an events and a projections table named `<prefix>-events` and
/// `<prefix>-projections`, and the service's store over them (with its views table). The endpoint stops when
/// this is dropped.
pub struct FreshStore {
    pub client: Client,
    pub config: Config,
    pub store: DynamoStore,
    endpoint: Endpoint,
    _dir: tempfile::TempDir,
}

impl FreshStore {
    pub async fn start(prefix: &str) -> FreshStore {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = Endpoint::start_fresh(dir.path())
            .await
            .expect("the local AWS endpoint starts");
        let client = Client::new(&endpoint.sdk_config().await);
        let config = Config {
            events_table: format!("{prefix}-events"),
            projections_table: format!("{prefix}-projections"),
        };
        service::testing::create_tables(&client, &config.events_table, &config.projections_table)
            .await
            .expect("the tables are created");
        let store = service::testing::store(client.clone(), config.clone());
        FreshStore {
            client,
            config,
            store,
            endpoint,
            _dir: dir,
        }
    }

    /// Stops the endpoint now (dropping does it too).
    pub fn stop(self) {
        self.endpoint.stop();
    }
}

/// The append command of `events` (type, data) to `aggregate`, with an optional expected version and command id.
pub fn command(
    aggregate: &str,
    events: Vec<(&str, Value)>,
    expected: Option<u64>,
    command_id: Option<&str>,
) -> AppendCommand {
    AppendCommand {
        aggregate_id: aggregate.into(),
        aggregate_type: None,
        events: events
            .into_iter()
            .map(|(t, d)| NewEvent {
                event_type: t.into(),
                event_data: d.as_object().expect("event data is an object").clone(),
            })
            .collect(),
        expected_version: expected,
        command_id: command_id.map(str::to_string),
    }
}

/// Appends `events` (type, data) to `aggregate` through the service's own append, as the command function does.
pub async fn append(store: &DynamoStore, aggregate: &str, events: Vec<(&str, Value)>) {
    service::append::append(
        store,
        &command(aggregate, events, None, None),
        Metadata::default(),
    )
    .await
    .expect("the append succeeds");
}

/// The status and JSON body (`null` when empty) the query function answers to `GET path`.
pub async fn query(store: &DynamoStore, path: &str) -> (u16, Value) {
    let response =
        service::http::handle_query(store, service::testing::request("GET", path, None)).await;
    let status = response.status().as_u16();
    let body = match response.body() {
        Body::Text(t) => serde_json::from_str(t).expect("a JSON body"),
        Body::Binary(b) => serde_json::from_slice(b).expect("a JSON body"),
        _ => Value::Null,
    };
    (status, body)
}
