//! In-process throughput of the Patient enrichment on a 5,000-record batch (~5.4 MB, about the
//! largest Pipes sends). `cargo bench -p fhir-pipes-enrichers`; `bench/run.sh` adds the Lambda
//! figures (init, invocation, peak RSS, binary size).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fhir_pipes_enrichers::{EnrichConfig, Enricher, sample};
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

criterion_group!(benches, enrich_batch);
criterion_main!(benches);
