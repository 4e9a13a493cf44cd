//! A structure-aware property run over the whole HTTP handler (both functions, in process, in-memory
//! store): arbitrary methods, paths (templates with odd segments, percent escapes that decode to invalid
//! UTF-8 or control characters, stray routes), query strings, headers (content types, correlation ids) and
//! bodies (request-shaped JSON with wrong types, extreme numbers and huge strings; invalid JSON; arbitrary
//! bytes, invalid UTF-8 included). Whatever arrives: the handler never panics, never answers 500 (the memory
//! store cannot fail, so a 500 could only be bad input let through), always answers JSON in the documented
//! shape, writes nothing when it refuses or reads, and writes exactly the events it answers for when it
//! accepts an append.
//!
//! Not every generated case reaches the handler: the `http` crate refuses some methods and header values
//! before any handler could see them. The run counts the cases that were checked, and how many of those were
//! accepted appends, and fails when either falls below its minimum, so a generator that drifts into cases
//! nothing checks cannot pass quietly.

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use service::MemoryStore;
use service::lambda_http::{Body, Request, RequestExt};

/// Cases per run: each is a fresh store and one request, so this is about a second of work.
const CASES: u32 = 768;
/// At least this many cases must reach the handler (about 70% do: the rest are requests `http` refuses).
const MIN_CHECKED: u32 = CASES / 2;
/// At least this many checked cases must be accepted appends (the write path's exact-count check).
const MIN_APPENDS: u32 = CASES / 20;

/// What one case came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// `http` refused the request's parts: nothing reached the handler.
    NotAHttpRequest,
    /// Checked, and refused or read.
    Checked,
    /// Checked, and an accepted append.
    Appended,
}

/// One generated request, kept as plain data so a failure prints it.
#[derive(Debug, Clone)]
struct Case {
    method: String,
    path: String,
    query: Option<String>,
    /// The gateway's decoded `pathParameters.aggregateId`, when the case mimics the gateway filling it.
    gateway_id: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("POST".to_string()),
        4 => Just("GET".to_string()),
        1 => prop::sample::select(vec!["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "get"])
            .prop_map(str::to_string),
        1 => "[A-Z]{1,12}",
    ]
}

/// An aggregate id segment as it appears in a path: plausible ids, the seeded one, edge lengths, and raw
/// percent escapes (control characters, invalid UTF-8, a half escape).
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("u1".to_string()),
        "[a-zA-Z0-9_.:-]{1,40}",
        Just("x".repeat(256)),
        Just("x".repeat(257)),
        Just("%C3%A9".repeat(257)),
        prop::sample::select(vec![
            "%0A", "%00", "%7F", "%C2%85", "%FF", "%C3", "%", "%G1", "%2F", "."
        ])
        .prop_map(|e| format!("a{e}b")),
        any::<String>().prop_map(|s| percent_encode(s.as_bytes())),
        prop::collection::vec(any::<u8>(), 1..24).prop_map(|b| percent_encode(&b)),
    ]
}

fn path() -> impl Strategy<Value = (String, Option<String>)> {
    let with_id = (
        segment(),
        prop::sample::select(vec!["/aggregates/{}/events", "/aggregates/{}"]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(seg, template, trailing, from_gateway)| {
            let mut path = template.replace("{}", &seg);
            if trailing {
                path.push('/');
            }
            let decoded = service::routes::percent_decode(&seg);
            (path, from_gateway.then_some(decoded))
        });
    prop_oneof![
        3 => with_id,
        2 => Just(("/events".to_string(), None)),
        1 => prop::sample::select(vec!["/health", "/", "/aggregates", "/aggregates//events", "/events/x", "//events"])
            .prop_map(|p| (p.to_string(), None)),
        1 => "(/[a-z%0-9]{0,8}){0,4}".prop_map(|p| (p, None)),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let key = prop::sample::select(vec![
        "type",
        "from",
        "to",
        "limit",
        "cursor",
        "after",
        "consistent",
        "other",
        "",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "user_created",
            "",
            "0",
            "1",
            "1000",
            "1001",
            "-1",
            "18446744073709551616",
            "9007199254740992",
            "true",
            "yes",
            "2024-01-01T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "1970-01-01T00:00:00.000%2B00:00",
            "%FF",
            "%0A",
            "not-a-cursor",
            "eyJ4IjoxfQ",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,30}".prop_map(|s| percent_encode(s.as_bytes())),
    ];
    prop::option::of(prop::collection::vec((key, value), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }))
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let content_type = prop_oneof![
        prop::sample::select(vec![
            "application/json",
            "application/JSON; charset=utf-8",
            "application/problem+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            ";;",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    let correlation = prop_oneof![
        "[a-z0-9-]{1,40}".prop_map(String::into_bytes),
        Just("x".repeat(300).into_bytes()),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    (
        prop::option::of(content_type),
        prop::option::of(correlation),
        prop::option::of(correlation_like()),
    )
        .prop_map(|(ct, corr, cause)| {
            let mut h = Vec::new();
            if let Some(v) = ct {
                h.push(("content-type".to_string(), v));
            }
            if let Some(v) = corr {
                h.push(("x-correlation-id".to_string(), v));
            }
            if let Some(v) = cause {
                h.push(("x-causation-id".to_string(), v));
            }
            h
        })
}

fn correlation_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,20}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Any JSON value, biased towards the awkward: extreme numbers, control characters, empty keys, nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            0.0, -0.0, 1e-130, 1e-131, 1.7e-246, 9.99e125, 1e126, -1e300, 0.5
        ])
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "user_created",
            "user_updated",
            "user_deleted",
            "u1",
            "a\nb",
            "\u{85}"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![Just(String::new()), "[a-zA-Z]{1,6}", any::<String>()],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body shaped like the API's requests: a random subset of the real fields, each either well formed
/// or any JSON value, sometimes with an unknown field or a batch.
fn request_json() -> impl Strategy<Value = Value> {
    let field = |good: BoxedStrategy<Value>| {
        prop::option::of(prop_oneof![3 => good, 1 => json_value().boxed()])
    };
    let id = prop_oneof![
        Just(json!("u1")),
        "[a-z0-9]{1,12}".prop_map(Value::from),
        Just(json!("")),
        Just(json!("x".repeat(257))),
    ]
    .boxed();
    let event_type = prop::sample::select(vec![
        "user_created",
        "user_updated",
        "user_deleted",
        "nope",
        "",
    ])
    .prop_map(Value::from)
    .boxed();
    let data = prop_oneof![
        Just(json!({})),
        Just(json!({"name": "Ann"})),
        json_value().prop_filter_map("an object", |v| v.as_object().map(|_| v.clone())),
        // A value near the item size limit, and one over it.
        prop::sample::select(vec![300 * 1024, 401 * 1024])
            .prop_map(|n| json!({ "blob": "x".repeat(n) })),
    ]
    .boxed();
    let version = prop_oneof![
        (0u64..4).prop_map(Value::from),
        Just(json!(9_007_199_254_740_991u64)),
        Just(json!(9_007_199_254_740_992u64)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!(1.0)),
    ]
    .boxed();
    let event = (field(event_type.clone()), field(data.clone())).prop_map(|(t, d)| {
        let mut m = Map::new();
        if let Some(t) = t {
            m.insert("eventType".into(), t);
        }
        if let Some(d) = d {
            m.insert("eventData".into(), d);
        }
        Value::Object(m)
    });
    let events = prop_oneof![
        prop::collection::vec(event, 0..4).prop_map(Value::from),
        prop::sample::select(vec![100usize, 101]).prop_map(|n| {
            Value::from(vec![
                json!({"eventType": "user_updated", "eventData": {}});
                n
            ])
        }),
    ]
    .boxed();
    (
        field(id.clone()),
        field(event_type),
        field(data),
        field(version),
        field(id),
        prop::option::of(events),
        prop::option::of(("[a-zA-Z]{1,10}", json_value())),
    )
        .prop_map(|(agg, ty, data, ver, cmd, events, extra)| {
            let mut m = Map::new();
            for (k, v) in [
                ("aggregateId", agg),
                ("eventType", ty),
                ("eventData", data),
                ("expectedVersion", ver),
                ("commandId", cmd),
                ("events", events),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop_oneof![
        6 => request_json().prop_map(|v| v.to_string().into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        // Valid JSON cut short, and JSON with a byte that makes it invalid UTF-8.
        1 => (request_json(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let s = v.to_string().into_bytes();
            s[..i.index(s.len() + 1)].to_vec()
        }),
        1 => (request_json(), any::<prop::sample::Index>(), 0x80u8..=0xff).prop_map(|(v, i, b)| {
            let mut s = v.to_string().into_bytes();
            s.insert(i.index(s.len() + 1), b);
            s
        }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => Just(b"   \n".to_vec()),
    ])
}

fn case() -> impl Strategy<Value = Case> {
    let arbitrary = (method(), path(), query(), headers(), body()).prop_map(
        |(method, (path, gateway_id), query, headers, body)| Case {
            method,
            path,
            query,
            gateway_id,
            headers,
            body,
        },
    );
    // Arbitrary requests almost never make a valid append (a run of them had none), so a share of the cases
    // are well-formed appends: the write path's exact-count check needs them.
    prop_oneof![9 => arbitrary, 1 => valid_append()]
}

/// A well-formed append of a registered aggregate's example events to a new aggregate: `POST /events` with
/// the first event, or `POST /aggregates/{id}/events` with the whole example, with or without a `commandId`.
fn valid_append() -> impl Strategy<Value = Case> {
    let kinds: Vec<&'static str> = domain::registry().kinds().map(|k| k.name()).collect();
    (
        prop::sample::select(kinds),
        "[a-z][a-z0-9]{0,11}",
        any::<bool>(),
        prop::option::of("[a-z0-9-]{1,20}"),
        any::<bool>(),
    )
        .prop_map(|(kind, id, batch, command_id, content_type)| {
            let example = domain::registry()
                .kind(kind)
                .expect("a registered kind")
                .example();
            let event =
                |(t, d): &(&str, Map<String, Value>)| json!({"eventType": t, "eventData": d});
            let id = format!("new-{id}");
            let (path, mut body) = if batch {
                (
                    format!("/aggregates/{id}/events"),
                    json!({"events": example.iter().map(event).collect::<Vec<_>>()}),
                )
            } else {
                let mut first = event(&example[0]);
                first["aggregateId"] = json!(id);
                ("/events".to_string(), first)
            };
            if let Some(c) = command_id {
                body["commandId"] = json!(c);
            }
            Case {
                method: "POST".into(),
                path,
                query: None,
                gateway_id: batch.then_some(id),
                headers: if content_type {
                    vec![("content-type".into(), b"application/json".to_vec())]
                } else {
                    Vec::new()
                },
                body: Some(body.to_string().into_bytes()),
            }
        })
}

fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Builds the request as the gateway would hand it over; `None` when `http` itself refuses the parts (a
/// method or header the HTTP layer cannot carry never reaches the handler).
fn build(case: &Case) -> Option<Request> {
    let uri = match &case.query {
        Some(q) => format!("{}?{q}", case.path),
        None => case.path.clone(),
    };
    let mut builder = service::lambda_http::http::Request::builder()
        .method(case.method.as_str())
        .uri(uri);
    for (name, value) in &case.headers {
        let value = service::lambda_http::http::HeaderValue::from_bytes(value).ok()?;
        builder = builder.header(name.as_str(), value);
    }
    let body = match &case.body {
        None => Body::Empty,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => Body::Text(text.to_string()),
            Err(_) => Body::Binary(b.clone()),
        },
    };
    let mut request = builder.body(body).ok()?;
    if let Some(id) = &case.gateway_id {
        request = request.with_path_parameters(std::collections::HashMap::from([(
            "aggregateId".to_string(),
            id.clone(),
        )]));
    }
    Some(request)
}

/// A store holding user `u1` at version 1, so appends can succeed, conflict and break rules.
async fn seeded() -> MemoryStore {
    let store = MemoryStore::new();
    let (status, body) = support::post(
        &store,
        "/events",
        &json!({"aggregateId": "u1", "eventType": "user_created", "eventData": {"name": "Ann"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    store
}

async fn check(case: Case) -> Result<Outcome, TestCaseError> {
    let Some(request) = build(&case) else {
        return Ok(Outcome::NotAHttpRequest);
    };
    let store = seeded().await;
    let before = store.all_events();
    let writes_before = store.read_model_writes();
    let is_get = case.method == "GET";
    let response = if is_get {
        service::http::handle_query(&store, request).await
    } else {
        service::http::handle_command(&store, request).await
    };
    let status = response.status().as_u16();
    prop_assert_ne!(status, 500, "a 500 for {:?}: {:?}", case, response.body());
    prop_assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{:?}",
        case
    );
    let body: Value = serde_json::from_slice(response.body().as_ref())
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}) for {case:?}")))?;
    if status >= 400 {
        prop_assert!(
            body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "error body {} for {:?}",
            body,
            case
        );
        prop_assert_eq!(
            store.all_events(),
            before,
            "a refused request wrote events: {:?}",
            case
        );
        prop_assert_eq!(store.read_model_writes(), writes_before);
        return Ok(Outcome::Checked);
    }
    if is_get {
        prop_assert_eq!(
            store.all_events(),
            before,
            "a read wrote events: {:?}",
            case
        );
        prop_assert_eq!(store.read_model_writes(), writes_before);
        return Ok(Outcome::Checked);
    }
    // An accepted append: `POST /events` answers 200 for its one event, `POST /aggregates/{id}/events` 201
    // with the events it wrote; exactly those are new in the store, at the versions answered.
    let after = store.all_events();
    let new: Vec<_> = after.iter().filter(|e| !before.contains(e)).collect();
    let answered: Vec<u64> = match body["events"].as_array() {
        Some(events) => {
            prop_assert_eq!(status, 201, "{} for {:?}", body, case);
            events
                .iter()
                .filter_map(|e| e["version"].as_u64())
                .collect()
        }
        None => {
            prop_assert_eq!(status, 200, "{} for {:?}", body, case);
            body["version"].as_u64().into_iter().collect()
        }
    };
    prop_assert!(
        !answered.is_empty(),
        "an append answered no version: {} for {:?}",
        body,
        case
    );
    prop_assert_eq!(
        new.iter().map(|e| e.version).collect::<Vec<_>>(),
        answered,
        "stored {:?} for the answer {} to {:?}",
        new,
        body,
        case
    );
    prop_assert_eq!(
        after.len(),
        before.len() + new.len(),
        "an append changed stored events: {:?}",
        case
    );
    prop_assert_eq!(store.read_model_writes(), writes_before);
    Ok(Outcome::Appended)
}

#[test]
fn any_request_is_answered_in_json_without_500_and_refusals_write_nothing() {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        // A failure is printed with its minimal case; nothing is written into the source tree.
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::RefCell::new(std::collections::BTreeMap::<String, u32>::new());
    let result = runner.run(&case(), |case| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let outcome = runtime.block_on(check(case))?;
        *counts
            .borrow_mut()
            .entry(format!("{outcome:?}"))
            .or_default() += 1;
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // Shrinking reruns failing cases; a passing run counts each generated case once.
    let counts = counts.into_inner();
    let count = |o: Outcome| counts.get(&format!("{o:?}")).copied().unwrap_or(0);
    let (appended, checked) = (count(Outcome::Appended), count(Outcome::Checked));
    eprintln!("handler_fuzz: {counts:?} of {CASES} cases");
    assert!(
        checked + appended >= MIN_CHECKED,
        "only {} of {CASES} cases reached the handler ({counts:?}); at least {MIN_CHECKED} must: the generator drifted into requests `http` refuses",
        checked + appended
    );
    assert!(
        appended >= MIN_APPENDS,
        "only {appended} of {CASES} cases were accepted appends ({counts:?}); at least {MIN_APPENDS} must, or the write path goes unchecked"
    );
}
