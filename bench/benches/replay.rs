//! Benchmark: replaying an event log into state in-process through the registry (the work of
//! `?consistent=true`, of the projector's gap fills and of `cargo xtask replay`), for every registered aggregate
//! type: its `example()` history, its last event repeated up to the log's length. Reported as events per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value};
use std::hint::black_box;

fn log(kind: &dyn domain::Kind, len: usize) -> Vec<(&'static str, Map<String, Value>)> {
    let mut events = kind.example();
    let last = events.last().cloned().expect("examples are not empty");
    while events.len() < len {
        events.push(last.clone());
    }
    events.truncate(len.max(1));
    events
}

fn replay(c: &mut Criterion) {
    let registry = domain::registry();
    for kind in registry.kinds() {
        let mut group = c.benchmark_group(format!("replay/{}", kind.name()));
        for len in [10usize, 100, 1000] {
            let events = log(kind, len);
            group.throughput(Throughput::Elements(len as u64));
            group.bench_with_input(BenchmarkId::from_parameter(len), &events, |b, events| {
                b.iter(|| {
                    let state = registry
                        .replay(events.iter().map(|(t, d)| (*t, 1, d)))
                        .unwrap()
                        .unwrap();
                    black_box(state.state())
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, replay);
criterion_main!(benches);
