//! Helpers of the mappings' unit tests.

use serde_json::Value;

use crate::{Image, Mapping, MappingError};

/// `mapping` applied to the JSON image `image`, as JSON.
pub fn map_json<M: Mapping>(mapping: &M, image: &str) -> Result<Value, MappingError> {
    let image = Image::from_json(image).unwrap();
    mapping.map(&image).map(|resource| serde_json::to_value(resource).unwrap())
}

/// The JSON image `minimal` with the attributes of `extra` (`"name":{"S":"x"},…`, a leading
/// comma allowed) added or replaced.
pub fn image_with(minimal: &str, extra: &str) -> String {
    let mut image: Value = serde_json::from_str(minimal).unwrap();
    let extra: Value = serde_json::from_str(&format!("{{{}}}", extra.trim_start().trim_start_matches(','))).unwrap();
    image.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    image.to_string()
}
