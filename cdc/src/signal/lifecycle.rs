//! HealthLake's own events: import and export jobs, data stores.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Fault};
use super::{Event, LifecycleEventType, LifecycleSignal, Signal, SignalErrorKind};

#[derive(Deserialize)]
struct DetailFields<'a> {
    #[serde(rename = "datastoreId", borrow)]
    datastore_id: Option<&'a RawValue>,
    #[serde(rename = "jobId", borrow)]
    job_id: Option<&'a RawValue>,
    #[serde(rename = "submitTime", borrow)]
    submit_time: Option<&'a RawValue>,
    #[serde(rename = "inputDataConfig", borrow)]
    input_data_config: Option<&'a RawValue>,
    #[serde(rename = "outputDataConfig", borrow)]
    output_data_config: Option<&'a RawValue>,
    #[serde(rename = "datastoreName", borrow)]
    datastore_name: Option<&'a RawValue>,
    #[serde(rename = "datastoreEndpoint", borrow)]
    datastore_endpoint: Option<&'a RawValue>,
    #[serde(rename = "datastoreTypeVersion", borrow)]
    datastore_type_version: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DataConfigFields<'a> {
    #[serde(rename = "s3Uri", borrow)]
    s3_uri: Option<&'a RawValue>,
}

/// The signal of one lifecycle event.
pub(super) fn parse(event: &Event<'_>, event_type: LifecycleEventType) -> Result<Signal, Fault> {
    let detail: DetailFields<'_> = json::object(event.detail, "body.detail")?;
    let datastore_id = super::optional_datastore_id(detail.datastore_id, "body.detail.datastoreId")?
        .ok_or_else(|| Fault::new("body.detail.datastoreId", SignalErrorKind::Missing))?;
    let submit_time = detail
        .submit_time
        .map(|submit_time| json::string_or_number(submit_time, "body.detail.submitTime"))
        .transpose()?;
    Ok(Signal::Lifecycle(LifecycleSignal {
        event_type,
        signal_id: event.id.clone(),
        datastore_id,
        job_id: json::optional_string(detail.job_id, "body.detail.jobId")?,
        submit_time,
        input_s3_uri: s3_uri(detail.input_data_config, "body.detail.inputDataConfig")?,
        output_s3_uri: s3_uri(detail.output_data_config, "body.detail.outputDataConfig")?,
        datastore_name: json::optional_string(detail.datastore_name, "body.detail.datastoreName")?,
        datastore_endpoint: json::optional_string(detail.datastore_endpoint, "body.detail.datastoreEndpoint")?,
        datastore_type_version: json::optional_string(
            detail.datastore_type_version,
            "body.detail.datastoreTypeVersion",
        )?,
        event_time: event.event_time,
        detail: event.detail.to_owned(),
    }))
}

/// `<config>.s3Uri`, when the config and its `s3Uri` are present.
fn s3_uri(config: Option<&RawValue>, path: &str) -> Result<Option<String>, Fault> {
    let Some(config) = config else { return Ok(None) };
    let config: DataConfigFields<'_> = json::object(config, path)?;
    json::optional_string(config.s3_uri, &json::child(path, "s3Uri"))
}
