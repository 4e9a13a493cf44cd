//! The few template manipulations the deployer needs (the import of retained tables). The template is read
//! with [`stack::template::parse`] (short-form tags become their long forms) and written back as JSON, which
//! CloudFormation accepts as a template body like YAML.

use crate::error::{Error, Result};

/// The template with only the given resources and no outputs (an `IMPORT` change set may hold nothing else).
pub fn only_resources(body: &str, keep: &[&str]) -> Result<String> {
    let mut doc = stack::template::parse(body).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let map = doc
        .as_object_mut()
        .ok_or_else(|| Error::InvalidInput("the template is not a mapping".into()))?;
    map.remove("Outputs");
    if let Some(resources) = map.get_mut("Resources").and_then(|r| r.as_object_mut()) {
        resources.retain(|id, _| keep.contains(&id.as_str()));
    }
    serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::InvalidInput(format!("writing the import template: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_only_the_named_resources_and_their_references() {
        let body = "Parameters:\n  P:\n    Type: String\nResources:\n  A:\n    Type: X\n    Properties:\n      Name: !Ref P\n  B:\n    Type: Y\nOutputs:\n  O:\n    Value: !Ref A\n";
        let out = super::only_resources(body, &["A"]).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            doc["Resources"]["A"]["Properties"]["Name"]["Ref"], "P",
            "{out}"
        );
        assert!(doc["Resources"].get("B").is_none(), "{out}");
        assert!(doc.get("Outputs").is_none(), "{out}");
        assert_eq!(doc["Parameters"]["P"]["Type"], "String", "{out}");
    }
}
