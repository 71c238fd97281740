//! The shipped mappings, listed once: the CLI (`fhir-pipes enrich <name>`), the local pipe
//! runtime (which finds a template function's resource by its binary) and the fixture tests
//! all look resources up here. A new mapping is one more [`Resource`] in [`RESOURCES`].

use fhir_pipes_mappings::{ConditionMapping, Mapping, ObservationMapping, OrganizationMapping, PractitionerMapping};

use std::{future::Future, pin::Pin};

use crate::{EnrichError, Enriched, Enricher, Fetcher, dynamodb_lookup::DynamoDbLookup, lambda};

/// A batch enrichment whose mapping type is chosen at run time.
pub trait BatchEnricher: Send + Sync {
    /// The FHIR resource type produced, e.g. `Patient`.
    fn resource_type(&self) -> &'static str;
    /// Whether the mapping, as configured, declares lookups (see [`Mapping::uses_lookups`]).
    fn uses_lookups(&self) -> bool;
    /// See [`Enricher::enrich`].
    fn enrich(&self, batch: &str) -> Result<Enriched, EnrichError>;
    /// See [`Enricher::enrich_with_lookups`].
    fn enrich_with_lookups<'a>(
        &'a self,
        batch: &'a str,
        fetcher: &'a Fetcher<DynamoDbLookup>,
    ) -> Pin<Box<dyn Future<Output = Result<Enriched, EnrichError>> + Send + 'a>>;
}

impl<M: Mapping> BatchEnricher for Enricher<M> {
    fn resource_type(&self) -> &'static str {
        M::RESOURCE_TYPE
    }

    fn uses_lookups(&self) -> bool {
        self.mapping().uses_lookups()
    }

    fn enrich(&self, batch: &str) -> Result<Enriched, EnrichError> {
        Enricher::enrich(self, batch)
    }

    fn enrich_with_lookups<'a>(
        &'a self,
        batch: &'a str,
        fetcher: &'a Fetcher<DynamoDbLookup>,
    ) -> Pin<Box<dyn Future<Output = Result<Enriched, EnrichError>> + Send + 'a>> {
        Box::pin(Enricher::enrich_with_lookups(self, batch, fetcher))
    }
}

/// Reads one setting (an environment variable of the Lambda) by name.
pub type Settings<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One shipped mapping.
#[derive(Debug)]
pub struct Resource {
    /// Short name used by the CLI and as the fixture folder, e.g. `patient`.
    pub name: &'static str,
    /// The FHIR resource type, e.g. `Patient`.
    pub resource_type: &'static str,
    /// The Lambda binary (`cargo lambda build --bin <binary>`), e.g. `patient-enricher`.
    pub binary: &'static str,
    /// Builds the enricher from the Lambda's environment variables, read through `settings`.
    pub build: fn(Settings<'_>) -> Result<Box<dyn BatchEnricher>, String>,
}

/// Every shipped mapping.
pub static RESOURCES: &[Resource] = &[
    Resource {
        name: "patient",
        resource_type: "Patient",
        binary: "patient-enricher",
        build: |settings| boxed(lambda::patient_mapping(settings), settings),
    },
    Resource {
        name: "practitioner",
        resource_type: "Practitioner",
        binary: "practitioner-enricher",
        build: |settings| boxed(PractitionerMapping, settings),
    },
    Resource {
        name: "organization",
        resource_type: "Organization",
        binary: "organization-enricher",
        build: |settings| boxed(OrganizationMapping, settings),
    },
    Resource {
        name: "encounter",
        resource_type: "Encounter",
        binary: "encounter-enricher",
        build: |settings| boxed(lambda::encounter_mapping(settings), settings),
    },
    Resource {
        name: "observation",
        resource_type: "Observation",
        binary: "observation-enricher",
        build: |settings| boxed(ObservationMapping, settings),
    },
    Resource {
        name: "condition",
        resource_type: "Condition",
        binary: "condition-enricher",
        build: |settings| boxed(ConditionMapping, settings),
    },
    // `fhir-pipes new mapping` adds entries above this line.
];

fn boxed<M: Mapping + 'static>(mapping: M, settings: Settings<'_>) -> Result<Box<dyn BatchEnricher>, String> {
    let config = lambda::config_from_env(M::RESOURCE_TYPE, settings)?;
    Ok(Box::new(Enricher::new(mapping, config)))
}

/// The resource called `name`: its short name, FHIR type or binary, in any case.
pub fn find(name: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name) || r.resource_type.eq_ignore_ascii_case(name) || r.binary == name)
}

/// The short names, for error messages and `--help`.
pub fn names() -> Vec<&'static str> {
    RESOURCES.iter().map(|r| r.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_type_or_binary() {
        for key in ["patient", "Patient", "PATIENT", "patient-enricher"] {
            assert_eq!(find(key).map(|r| r.resource_type), Some("Patient"), "{key}");
        }
        assert!(find("encounter-enricher-x").is_none());
    }

    #[test]
    fn every_entry_is_consistent_and_has_its_binary() {
        let bins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
        for resource in RESOURCES {
            // Kebab case of the type (`MedicationRequest` → `medication-request`), as the scaffold names it.
            let kebab: String = resource
                .resource_type
                .char_indices()
                .flat_map(|(i, c)| {
                    (i > 0 && c.is_ascii_uppercase()).then_some('-').into_iter().chain([c.to_ascii_lowercase()])
                })
                .collect();
            assert_eq!(resource.name, kebab);
            assert_eq!(resource.binary, format!("{}-enricher", resource.name));
            assert!(bins.join(format!("{}.rs", resource.binary)).exists(), "no src/bin/{}.rs", resource.binary);
            let enricher = (resource.build)(&|_| None).unwrap();
            assert_eq!(enricher.resource_type(), resource.resource_type);
            assert_eq!(find(resource.name).map(|r| r.binary), Some(resource.binary));
        }
    }

    #[test]
    fn builds_with_the_lambda_settings() {
        let patient = find("patient").unwrap();
        let settings = |name: &str| (name == lambda::ENV_SOURCE).then(|| "Clinic".to_owned());
        let enricher = (patient.build)(&settings).unwrap();
        assert_eq!(enricher.resource_type(), "Patient");
        let batch = r#"[{"eventID":"e1","eventName":"REMOVE","dynamodb":{"Keys":{"id":{"S":"p1"}}}}]"#;
        let event = enricher.enrich(batch).unwrap().to_json();
        assert!(String::from_utf8(event).unwrap().contains(r#""source":"Clinic""#));
        let bad = |name: &str| (name == lambda::ENV_ERROR_POLICY).then(|| "drop".to_owned());
        assert!((patient.build)(&bad).is_err());
    }
}
