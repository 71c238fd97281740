//! CloudTrail records of HealthLake's FHIR calls, as EventBridge delivers them.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::json::{self, Fault};
use super::{ChangeSignal, Event, NotAChange, Operation, Signal, SignalErrorKind, SignalOrigin};
use crate::ids::{is_valid_fhir_id, is_valid_resource_type};
use crate::time::Timestamp;

/// The `detail-type` of CloudTrail records on a bus.
pub(super) const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";

/// HealthLake's `eventSource` in CloudTrail.
const EVENT_SOURCE: &str = "healthlake.amazonaws.com";

/// What CloudTrail writes in `additionalEventData.resourceId` when it hides the id.
const HIDDEN_RESOURCE_ID: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

#[derive(Deserialize)]
struct DetailFields<'a> {
    #[serde(rename = "eventSource", borrow)]
    event_source: Option<&'a RawValue>,
    #[serde(rename = "eventName", borrow)]
    event_name: Option<&'a RawValue>,
    #[serde(rename = "eventTime", borrow)]
    event_time: Option<&'a RawValue>,
    #[serde(rename = "eventID", borrow)]
    event_id: Option<&'a RawValue>,
    #[serde(rename = "errorCode", borrow)]
    error_code: Option<&'a RawValue>,
    #[serde(rename = "requestParameters", borrow)]
    request_parameters: Option<&'a RawValue>,
    #[serde(rename = "responseElements", borrow)]
    response_elements: Option<&'a RawValue>,
    #[serde(rename = "additionalEventData", borrow)]
    additional_event_data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RequestParameterFields<'a> {
    #[serde(rename = "datastoreId", borrow)]
    datastore_id: Option<&'a RawValue>,
    #[serde(rename = "resourceType", borrow)]
    resource_type: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ResponseElementFields<'a> {
    #[serde(rename = "statusCode", borrow)]
    status_code: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct AdditionalEventDataFields<'a> {
    #[serde(rename = "resourceId", borrow)]
    resource_id: Option<&'a RawValue>,
}

/// The signal of one CloudTrail record.
pub(super) fn parse(event: &Event<'_>) -> Result<Signal, Fault> {
    let detail: DetailFields<'_> = json::object(event.detail, "body.detail")?;
    let event_source = json::required_string(detail.event_source, "body.detail.eventSource")?;
    if event_source != EVENT_SOURCE {
        return Err(Fault::new("body.detail.eventSource", SignalErrorKind::Unsupported { accepted: EVENT_SOURCE }));
    }
    let event_name = json::required_string(detail.event_name, "body.detail.eventName")?;
    let operation = match event_name.as_str() {
        "CreateResource" => Operation::Create,
        "UpdateResource" => Operation::Update,
        "DeleteResource" => Operation::Delete,
        _ => return Ok(Signal::NotAChange { reason: NotAChange::NotAWriteCall { event_name } }),
    };

    let status_code = status_code(detail.response_elements)?;
    let failed_status = status_code.is_some_and(|status| !(200..=299).contains(&status));
    if detail.error_code.is_some() || failed_status {
        return Ok(Signal::NotAChange { reason: NotAChange::FailedCall { status_code } });
    }
    if status_code.is_none() && operation != Operation::Delete {
        return Err(Fault::new("body.detail.responseElements.statusCode", SignalErrorKind::Missing));
    }

    let signal_id = json::required_string(detail.event_id, "body.detail.eventID")?;
    let event_time = json::required_string(detail.event_time, "body.detail.eventTime")?;
    let event_time = Timestamp::parse_rfc3339(&event_time)
        .ok_or_else(|| Fault::new("body.detail.eventTime", SignalErrorKind::InvalidTime))?;

    let request_parameters = json::required(detail.request_parameters, "body.detail.requestParameters")?;
    let request_parameters: RequestParameterFields<'_> =
        json::object(request_parameters, "body.detail.requestParameters")?;
    let resource_type =
        json::required_string(request_parameters.resource_type, "body.detail.requestParameters.resourceType")?;
    if !is_valid_resource_type(&resource_type) {
        return Err(Fault::new("body.detail.requestParameters.resourceType", SignalErrorKind::InvalidResourceType));
    }
    let datastore_id =
        super::optional_datastore_id(request_parameters.datastore_id, "body.detail.requestParameters.datastoreId")?
            .or_else(|| event.datastore_from_resources.clone());

    Ok(Signal::Change(ChangeSignal {
        origin: SignalOrigin::CloudTrail,
        signal_id,
        datastore_id,
        resource_type,
        resource_id: resource_id(detail.additional_event_data)?,
        operation: Some(operation),
        event_time: Some(event_time),
        resource: None,
        version_id: None,
        last_updated: None,
    }))
}

/// `responseElements.statusCode`, when present.
fn status_code(response_elements: Option<&RawValue>) -> Result<Option<i64>, Fault> {
    let Some(response_elements) = response_elements else { return Ok(None) };
    let response_elements: ResponseElementFields<'_> = json::object(response_elements, "body.detail.responseElements")?;
    response_elements
        .status_code
        .map(|status| json::integer(status, "body.detail.responseElements.statusCode"))
        .transpose()
}

/// `additionalEventData.resourceId`: `None` when absent or hidden, else a checked FHIR id.
fn resource_id(additional_event_data: Option<&RawValue>) -> Result<Option<String>, Fault> {
    let Some(additional_event_data) = additional_event_data else { return Ok(None) };
    let additional_event_data: AdditionalEventDataFields<'_> =
        json::object(additional_event_data, "body.detail.additionalEventData")?;
    let path = "body.detail.additionalEventData.resourceId";
    match json::optional_string(additional_event_data.resource_id, path)? {
        None => Ok(None),
        Some(id) if id == HIDDEN_RESOURCE_ID => Ok(None),
        Some(id) if is_valid_fhir_id(&id) => Ok(Some(id)),
        Some(_) => Err(Fault::new(path, SignalErrorKind::InvalidId)),
    }
}
