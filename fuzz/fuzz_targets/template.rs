//! The CloudFormation template resolver (`fhir_pipes::template`): YAML text, then, after an
//! optional NUL byte, one `Key=Value` parameter per line. Parses the template and resolves
//! every pipe it declares (and the default one) with those parameters. Never a panic; `Err`
//! is fine.

#![no_main]

use fhir_pipes::template::{PipeSource, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (yaml, parameters) = text.split_once('\0').unwrap_or((text, ""));
    let parameters: Vec<String> = parameters.lines().map(str::to_owned).collect();
    let Ok(template) = Template::parse(yaml) else { return };
    let mut ids: Vec<Option<String>> = template.pipe_ids().into_iter().map(Some).collect();
    ids.push(None);
    for id in &ids {
        let Ok(pipe) = template.pipe(id.as_deref(), &parameters) else { continue };
        let _ = pipe.stream.maximum_record_age();
        let _ = pipe.stream.local_retry_attempts();
        if let PipeSource::SqsQueue(queue) = &pipe.source {
            let _ = queue.batching();
        }
        assert_eq!(pipe.filters.patterns().len(), pipe.filter_patterns.len());
    }
});
