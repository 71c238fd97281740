//! Generated Patient stream batches for benchmarks and load tests (deterministic, fake data).

use std::fmt::Write;

/// A JSON array of `count` Patient INSERT and MODIFY records, every fourth a MODIFY that
/// changes the FHIR resource. Each record carries the kind of extra attributes real tables
/// have (audit fields, a version), about 1.1 kB per record as Pipes would send it.
pub fn patient_batch(count: usize) -> String {
    let mut out = String::with_capacity(count * 1200 + 2);
    out.push('[');
    for index in 0..count {
        if index > 0 {
            out.push(',');
        }
        let modify = index % 4 == 3;
        let new_image = patient_image(index, if modify { "Updated" } else { "" });
        let old_image = if modify { format!(r#","OldImage":{}"#, patient_image(index, "")) } else { String::new() };
        let _ = write!(
            out,
            r#"{{"eventID":"{index:032x}","eventName":"{name}","eventVersion":"1.1","eventSource":"aws:dynamodb","awsRegion":"us-east-1","eventSourceARN":"arn:aws:dynamodb:us-east-1:111122223333:table/Patients/stream/2026-11-01T00:00:00.000","dynamodb":{{"ApproximateCreationDateTime":1763800000,"Keys":{{"id":{{"S":"pat-{index:07}"}}}},"NewImage":{new_image}{old_image},"SequenceNumber":"{seq:024}","SizeBytes":{size},"StreamViewType":"NEW_AND_OLD_IMAGES"}}}}"#,
            name = if modify { "MODIFY" } else { "INSERT" },
            seq = 100_000_000 + index,
            size = 300 + index % 200,
        );
    }
    out.push(']');
    out
}

const FIRST: [&str; 8] = ["Quennell", "Marisol", "Thaddeus", "Ingrid", "Oluwaseun", "Zoë", "Bartholomew", "Yuki"];
const LAST: [&str; 8] =
    ["Vasquez-Ortega", "Lindqvist", "Okonkwo", "Fairweather", "Nakamura", "Delacroix", "Brennan", "Szymański"];
const CITIES: [&str; 4] = ["Pemberton Falls", "Ashgrove", "Port Halcyon", "Merrivale"];

fn patient_image(index: usize, suffix: &str) -> String {
    let pick = |list: &[&'static str], salt: usize| list[(index * 7 + salt) % list.len()];
    let gender = ["F", "male", "O", "unknown"][index % 4];
    let (year, month, day) = (1930 + index % 90, 1 + index % 12, 1 + index % 28);
    let birth_date = if index.is_multiple_of(2) {
        format!("{year}-{month:02}-{day:02}")
    } else {
        format!("{month:02}-{day:02}-{year}")
    };
    let zip = if index.is_multiple_of(3) {
        format!(r#"{{"N":"{}"}}"#, 10000 + index % 89999)
    } else {
        format!(r#"{{"S":"{:05}"}}"#, index % 99999)
    };
    format!(
        r#"{{"id":{{"S":"pat-{index:07}"}},"firstName":{{"S":"{first}"}},"middleName":{{"S":"{middle}"}},"lastName":{{"S":"{last}{suffix}"}},"birthDate":{{"S":"{birth_date}"}},"gender":{{"S":"{gender}"}},"phone":{{"S":"+1-555-{phone:04}"}},"email":{{"S":"patient{index}@example.org"}},"mrn":{{"S":"MRN-{mrn:08}"}},"active":{{"BOOL":true}},"address":{{"M":{{"address1":{{"S":"{street} Larkspur Lane"}},"address2":{{"S":"Apt {apt}"}},"city":{{"S":"{city}"}},"state":{{"S":"MA"}},"zip":{zip},"country":{{"S":"US"}}}}}},"updatedAt":{{"S":"2026-11-02T09:30:00.000Z"}},"version":{{"N":"{version}"}}}}"#,
        first = pick(&FIRST, 0),
        middle = pick(&FIRST, 3),
        last = pick(&LAST, 1),
        phone = index % 10000,
        mrn = index * 13 + 7,
        street = 100 + index % 9000,
        apt = index % 300,
        city = pick(&CITIES, 2),
        version = 1 + index % 5,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_a_valid_array_of_the_requested_size() {
        let batch = patient_batch(40);
        let records: Vec<serde_json::Value> = serde_json::from_str(&batch).unwrap();
        assert_eq!(records.len(), 40);
        assert_eq!(records[3]["eventName"], "MODIFY");
        assert!(records[3]["dynamodb"]["OldImage"].is_object());
    }
}
