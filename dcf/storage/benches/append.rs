//! Append + sync latency: one entry per sync, and a group commit of 64.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dcf_core::{Entry, EntryKind};
use dcf_storage::{StreamLog, StreamLogOptions};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_sync");
    for batch in [1u64, 64] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = StreamLog::open(dir.path(), StreamLogOptions::default()).unwrap();
        let data = vec![0xabu8; 256];
        g.throughput(Throughput::Elements(batch));
        g.bench_function(BenchmarkId::from_parameter(batch), |b| {
            b.iter(|| {
                let next = log.last_index() + 1;
                let es: Vec<Entry> = (next..next + batch)
                    .map(|index| Entry {
                        term: 1,
                        index,
                        key: index,
                        kind: EntryKind::Data,
                        data: data.clone(),
                    })
                    .collect();
                log.append(&es).unwrap();
                log.sync().unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
