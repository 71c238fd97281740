//! In-process throughput of the Patient enrichment on a 5,000-record batch (~5.4 MB, about the
//! largest Pipes sends), and of every registered resource on 5,000 copies of its
//! `fixtures/<name>/insert-full` record (`resources/<name>`). `cargo bench -p fhir-pipes-enrichers`; `bench/run.sh` adds the Lambda
//! figures (init, invocation, peak RSS, binary size).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_pipes_enrichers::{EnrichConfig, Enricher, resources::RESOURCES, sample};
use fhir_pipes_mappings::PatientMapping;

const RECORDS: usize = 5_000;

fn enrich_batch(c: &mut Criterion) {
    let batch = sample::patient_batch(RECORDS);
    let enricher = Enricher::new(PatientMapping::default(), EnrichConfig::default());
    let enriched = enricher.enrich(&batch).unwrap();
    assert_eq!(enriched.counts.failed, 0, "the generated batch must map cleanly");
    eprintln!("batch: {} records, {} bytes in, {} bytes out", RECORDS, batch.len(), enriched.counts.response_bytes);

    let mut group = c.benchmark_group("patient");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(30);
    group.bench_function("enrich_5000_records", |b| b.iter(|| enricher.enrich(std::hint::black_box(&batch)).unwrap()));
    group.bench_function("enrich_and_serialize_response_5000_records", |b| {
        b.iter(|| enricher.enrich(std::hint::black_box(&batch)).unwrap().to_json())
    });
    group.finish();
}

/// 5,000 copies of the first record of `fixtures/<name>/insert-full.input.json`, eventIDs made unique.
fn fixture_batch(name: &str) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/{name}/insert-full.input.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let records: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let batch: Vec<serde_json::Value> = (0..RECORDS)
        .map(|index| {
            let mut record = records[0].clone();
            record["eventID"] = format!("{index:032x}").into();
            record
        })
        .collect();
    serde_json::to_string(&batch).unwrap()
}

fn enrich_each_resource(c: &mut Criterion) {
    let mut group = c.benchmark_group("resources");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(20);
    for resource in RESOURCES {
        let batch = fixture_batch(resource.name);
        let enricher = (resource.build)(&|_| None).unwrap();
        let enriched = enricher.enrich(&batch).unwrap();
        assert_eq!(enriched.counts.failed, 0, "{}: insert-full must map cleanly", resource.name);
        eprintln!("{}: {} bytes in, {} bytes out", resource.name, batch.len(), enriched.counts.response_bytes);
        group.bench_function(resource.name, |b| b.iter(|| enricher.enrich(std::hint::black_box(&batch)).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, enrich_batch, enrich_each_resource);
criterion_main!(benches);
