//! Benchmark: replaying a user's event log into state in-process (the work of `?consistent=true` and of
//! every append, which validates against the replayed state). Reported as events per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use domain::{Aggregate, User};
use serde_json::{Map, Value, json};
use std::hint::black_box;

fn log(len: usize) -> Vec<(String, Map<String, Value>)> {
    let mut events = vec![(
        "user_created".to_string(),
        json!({"name": "Ann", "email": "ann@example.test", "age": 30})
            .as_object()
            .unwrap()
            .clone(),
    )];
    events.extend((1..len).map(|i| {
        (
            "user_updated".to_string(),
            json!({"age": 30 + i, "city": format!("city-{}", i % 7)})
                .as_object()
                .unwrap()
                .clone(),
        )
    }));
    events
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay");
    for len in [10usize, 100, 1000] {
        let events = log(len);
        group.throughput(Throughput::Elements(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &events, |b, events| {
            b.iter(|| {
                let user: User =
                    domain::replay(events.iter().map(|(t, d)| (t.as_str(), d))).unwrap();
                black_box(user.state())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
