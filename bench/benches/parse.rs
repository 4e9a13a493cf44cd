//! Benchmark: parsing and validating request bodies (the seed's `POST /events` and the largest batch one append
//! takes, `MAX_BATCH_EVENTS`), the per-request work of the command function before any I/O.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::validate::MAX_BATCH_EVENTS;
use serde_json::json;
use std::hint::black_box;

fn parse(c: &mut Criterion) {
    let single = json!({"aggregateId": "user-123", "eventType": "user_created",
        "eventData": {"name": "Ann", "email": "ann@example.test"}, "commandId": "cmd-1"})
    .to_string();
    let mut events = vec![json!({"eventType": "user_created", "eventData": {"name": "Ann"}})];
    events.extend(
        (1..MAX_BATCH_EVENTS)
            .map(|i| json!({"eventType": "user_updated", "eventData": {"n": i, "city": "Oslo"}})),
    );
    let batch = json!({ "events": events, "expectedVersion": 0 }).to_string();

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(single.len() as u64));
    group.bench_function("post_events_seed_request", |b| {
        b.iter(|| black_box(domain::api::parse_append_event(black_box(single.as_bytes())).unwrap()))
    });
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("post_aggregate_events_largest_batch", |b| {
        b.iter(|| {
            black_box(
                domain::api::parse_append_to_aggregate("user-123", black_box(batch.as_bytes()))
                    .unwrap(),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
