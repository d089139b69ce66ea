//! FHIR XML in and out, through fhirbolt's R4 model. JSON is the stored form;
//! XML is converted at the edge.

use fhirbolt::model::r4::Resource;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};
use serde_json::Value;

const STRICT: Option<DeserializationConfig> = Some(DeserializationConfig {
    mode: DeserializationMode::Strict,
});

/// Parses FHIR XML into FHIR JSON.
pub fn xml_to_json(xml: &[u8]) -> Result<Value, String> {
    let resource: Resource = fhirbolt::xml::from_slice(xml, STRICT).map_err(|e| e.to_string())?;
    let json = fhirbolt::json::to_vec(&resource, None).map_err(|e| e.to_string())?;
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

/// Renders FHIR JSON as FHIR XML.
pub fn json_to_xml(json: &[u8]) -> Result<String, String> {
    let resource: Resource = fhirbolt::json::from_slice(json, STRICT).map_err(|e| e.to_string())?;
    fhirbolt::xml::to_string(&resource, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_xml() {
        let json = br#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}"#;
        let xml = json_to_xml(json).unwrap();
        assert!(xml.contains(r#"<value value="1.50"/>"#), "{xml}");
        let back = xml_to_json(xml.as_bytes()).unwrap();
        let original: Value = serde_json::from_slice(json).unwrap();
        assert_eq!(back, original);
    }
}
