//! The HealthLake stand-in itself (`tests/fhir-store/server.mjs`): it checks SigV4 signatures,
//! stores, updates and deletes like HealthLake, validates what it stores, injects faults and
//! logs every request in order — the other HealthLake tests rely on all of it.

use fhir_pipes_e2e::fhir_store::{FhirStore, SECRET_ACCESS_KEY, max_in_flight};
use serde_json::{Value, json};

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "female", "name": [{"family": family}]})
}

/// The first issue's code of an OperationOutcome body.
fn issue_code(body: &Value) -> &str {
    assert_eq!(body["resourceType"], "OperationOutcome", "not an OperationOutcome: {body}");
    body["issue"][0]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn rejects_requests_without_a_valid_signature() {
    let store = FhirStore::start();
    let body = patient("sig-1", "Unsigned");

    let unsigned = store.unsigned_request("PUT", "Patient/sig-1", Some(&body)).await;
    assert_eq!(unsigned.status, 403, "{}", unsigned.body);
    assert_eq!(issue_code(&unsigned.body), "security");
    assert!(unsigned.body.to_string().contains("missing Authorization header"), "{}", unsigned.body);

    let wrong_secret = store.signed_request("PUT", "Patient/sig-1", Some(&body), "not-the-secret").await;
    assert_eq!(wrong_secret.status, 403, "{}", wrong_secret.body);
    assert!(wrong_secret.body.to_string().contains("signature does not match"), "{}", wrong_secret.body);

    assert_eq!(store.resource("Patient", "sig-1").await, None, "a rejected PUT must not store anything");
    let log = store.requests().await;
    assert_eq!(log.len(), 2);
    assert!(log.iter().all(|r| !r.signed && r.status == Some(403)), "{log:#?}");

    // The same request signed with the right secret goes through.
    let signed = store.signed_request("PUT", "Patient/sig-1", Some(&body), SECRET_ACCESS_KEY).await;
    assert_eq!(signed.status, 201, "{}", signed.body);
    assert!(store.requests().await[2].signed);
}

#[tokio::test]
async fn stores_updates_validates_and_deletes_like_healthlake() {
    let store = FhirStore::start();
    let sign = |method: &'static str, path: &'static str, body: Option<Value>| {
        let store = &store;
        async move { store.signed_request(method, path, body.as_ref(), SECRET_ACCESS_KEY).await }
    };

    let created = sign("PUT", "Patient/p-1", Some(patient("p-1", "First"))).await;
    assert_eq!(created.status, 201, "a PUT of a new id creates it: {}", created.body);
    assert_eq!(created.body["id"], "p-1");
    assert_eq!(created.body["meta"]["versionId"], "1");

    let read = sign("GET", "Patient/p-1", None).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, created.body, "GET returns what the PUT stored");
    assert_eq!(read.body["name"][0]["family"], "First");

    let updated = sign("PUT", "Patient/p-1", Some(patient("p-1", "Second"))).await;
    assert_eq!(updated.status, 200, "a PUT of an existing id updates it: {}", updated.body);
    assert_eq!(updated.body["meta"]["versionId"], "2");
    assert_eq!(store.resource("Patient", "p-1").await.unwrap()["name"][0]["family"], "Second");

    let searched = sign("GET", "Patient?family=Second", None).await;
    assert_eq!(searched.status, 200);
    assert_eq!(searched.body["total"], 1, "{}", searched.body);

    // Invalid bodies: nothing stored, a 400 with an OperationOutcome.
    let mut robot = patient("p-2", "Robot");
    robot["gender"] = json!("robot");
    let invalid_code = sign("PUT", "Patient/p-2", Some(robot)).await;
    assert_eq!(invalid_code.status, 400, "{}", invalid_code.body);
    assert_eq!(issue_code(&invalid_code.body), "code-invalid");
    assert_eq!(invalid_code.body["issue"][0]["expression"][0], "Patient.gender");
    let mut unknown_field = patient("p-2", "Field");
    unknown_field["favouriteColour"] = json!("blue");
    assert_eq!(sign("PUT", "Patient/p-2", Some(unknown_field)).await.status, 400);
    let wrong_id = sign("PUT", "Patient/p-2", Some(patient("p-3", "Id"))).await;
    assert_eq!(wrong_id.status, 400, "{}", wrong_id.body);
    let mut no_id = patient("p-2", "NoId");
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(sign("PUT", "Patient/p-2", Some(no_id)).await.status, 400);
    let wrong_type = sign("PUT", "Observation/p-2", Some(patient("p-2", "Type"))).await;
    assert_eq!(wrong_type.status, 400, "{}", wrong_type.body);
    assert_eq!(store.resource("Patient", "p-2").await, None);

    let deleted = sign("DELETE", "Patient/p-1", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let gone = sign("GET", "Patient/p-1", None).await;
    assert_eq!(gone.status, 404, "Medplum answers 404 after a delete: {}", gone.body);
    assert_eq!(sign("DELETE", "Patient/p-1", None).await.status, 404, "deleting a missing resource");
    assert!(store.resources("Patient").await.is_empty());

    let log = store.requests().await;
    let summary: Vec<(&str, Option<&str>, Option<u16>)> =
        log.iter().map(|r| (r.method.as_str(), r.id.as_deref(), r.status)).collect();
    assert_eq!(
        summary,
        [
            ("PUT", Some("p-1"), Some(201)),
            ("GET", Some("p-1"), Some(200)),
            ("PUT", Some("p-1"), Some(200)),
            ("GET", None, Some(200)),
            ("PUT", Some("p-2"), Some(400)),
            ("PUT", Some("p-2"), Some(400)),
            ("PUT", Some("p-2"), Some(400)),
            ("PUT", Some("p-2"), Some(400)),
            ("PUT", Some("p-2"), Some(400)),
            ("DELETE", Some("p-1"), Some(200)),
            ("GET", Some("p-1"), Some(404)),
            ("DELETE", Some("p-1"), Some(404)),
        ]
    );
    assert!(log.iter().all(|r| r.signed && r.resource_type.is_some()));
    assert!(log.windows(2).all(|w| w[0].started_at <= w[1].started_at));
}

#[tokio::test]
async fn injected_faults_answer_in_order_without_touching_the_store() {
    let store = FhirStore::start();
    let put = |id: &'static str| {
        let store = &store;
        async move {
            store.signed_request("PUT", &format!("Patient/{id}"), Some(&patient(id, "F")), SECRET_ACCESS_KEY).await
        }
    };

    store.inject(503, 2, Some("PUT"), None).await;
    store.inject(429, 1, None, Some(("Patient", "f-2"))).await;
    let first = put("f-1").await;
    assert_eq!(first.status, 503, "{}", first.body);
    assert_eq!(issue_code(&first.body), "transient");
    assert_eq!(put("f-1").await.status, 503);
    assert_eq!(store.resource("Patient", "f-1").await, None, "a fault must not store anything");
    assert_eq!(put("f-1").await.status, 201, "the next request after the faults goes through");
    // The 429 rule only matches Patient/f-2.
    assert_eq!(put("f-3").await.status, 201);
    assert_eq!(put("f-2").await.status, 429);
    assert_eq!(put("f-2").await.status, 201);

    let statuses: Vec<_> = store.requests().await.iter().map(|r| (r.id.clone().unwrap(), r.status.unwrap())).collect();
    let expected = [("f-1", 503), ("f-1", 503), ("f-1", 201), ("f-3", 201), ("f-2", 429), ("f-2", 201)];
    assert_eq!(statuses, expected.map(|(id, status)| (id.to_owned(), status)));

    let mut body_with_version = patient("f-4", "V");
    body_with_version["meta"] = json!({"versionId": "7"});
    store.signed_request("PUT", "Patient/f-4", Some(&body_with_version), SECRET_ACCESS_KEY).await;
    assert_eq!(store.requests().await.last().unwrap().body_version.as_deref(), Some("7"));

    store.reset().await;
    assert!(store.requests().await.is_empty());
    assert!(store.resources("Patient").await.is_empty());
}

#[tokio::test]
async fn delayed_answers_let_concurrent_requests_overlap_in_the_log() {
    let store = FhirStore::start();
    store.set_delay(300).await;
    let read = || store.signed_request("GET", "Patient?family=None", None, SECRET_ACCESS_KEY);
    let (a, b, c) = tokio::join!(read(), read(), read());
    let answers = [a, b, c];
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    let log = store.requests().await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.ended_at.unwrap() - r.started_at >= 300.0), "{log:#?}");
    assert_eq!(max_in_flight(&log), 3, "{log:#?}");

    // One after the other, nothing overlaps.
    store.reset().await;
    for _ in 0..2 {
        store.signed_request("GET", "Patient?family=None", None, SECRET_ACCESS_KEY).await;
    }
    assert_eq!(max_in_flight(&store.requests().await), 1);
}
