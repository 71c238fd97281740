//! The serde way to read a domain record: derive `Deserialize` on a struct and call
//! [`Image::decode`] (through `serde_dynamo`), instead of reading attributes one by one. Errors
//! still name the field and never carry its value. The accessor way (`Image::string` …) is
//! faster (no copy of the image); both may be mixed.

use serde::de::DeserializeOwned;

use crate::{ErrorKind, Image, MappingError};

impl Image<'_> {
    /// Deserializes the whole image into `T` with `serde_dynamo`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, MappingError> {
        let deserializer =
            serde_dynamo::Deserializer::from_attribute_value(serde_dynamo::AttributeValue::M(self.to_item().into()));
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            let message = error.inner().to_string();
            // serde's messages may quote the value (`invalid type: string "…"`): only the
            // name of a missing field is taken from them.
            if let Some(name) = message.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
                let field = if path == "." { name.to_owned() } else { format!("{path}.{name}") };
                return MappingError::missing(&field);
            }
            MappingError::new(
                &path,
                ErrorKind::WrongType,
                "the value does not have the type or format the domain struct declares",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Device {
        id: String,
        lot_number: Option<String>,
        owner: Owner,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Owner {
        name: String,
        count: u32,
    }

    #[test]
    fn decodes_a_domain_struct() {
        let image = Image::from_json(
            r#"{"id":{"S":"d1"},"owner":{"M":{"name":{"S":"Ward 4"},"count":{"N":"3"}}},"other":{"BOOL":true}}"#,
        )
        .unwrap();
        let device: Device = image.decode().unwrap();
        assert_eq!(
            device,
            Device { id: "d1".into(), lot_number: None, owner: Owner { name: "Ward 4".into(), count: 3 } }
        );
    }

    #[test]
    fn errors_name_the_field_and_not_the_value() {
        let missing = Image::from_json(r#"{"owner":{"M":{"name":{"S":"Ward 4"},"count":{"N":"3"}}}}"#).unwrap();
        let error = missing.decode::<Device>().unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("id", ErrorKind::MissingField));
        let nested = Image::from_json(r#"{"id":{"S":"d1"},"owner":{"M":{"name":{"S":"Ward 4"}}}}"#).unwrap();
        assert_eq!(nested.decode::<Device>().unwrap_err().field, "owner.count");
        let wrong =
            Image::from_json(r#"{"id":{"S":"d1"},"owner":{"M":{"name":{"S":"Secretvalue"},"count":{"S":"Quux"}}}}"#)
                .unwrap();
        let error = wrong.decode::<Device>().unwrap_err();
        assert_eq!((error.field.as_str(), error.kind), ("owner.count", ErrorKind::WrongType));
        assert!(!error.to_string().contains("Quux"), "{error}");
    }
}
