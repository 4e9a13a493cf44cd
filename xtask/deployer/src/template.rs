//! The few template manipulations the deployer needs (the import of retained tables). Parsing is serde_yaml's
//! `Value`, which keeps short-form tags (`!Ref`, `!Sub`, `!GetAtt`) as tagged values and writes them back.

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// The template with only the given resources and no outputs (an `IMPORT` change set may hold nothing else).
pub fn only_resources(body: &str, keep: &[&str]) -> Result<String> {
    let mut doc: Value = serde_yaml::from_str(body)
        .map_err(|e| Error::InvalidInput(format!("the template is not valid YAML: {e}")))?;
    let map = doc
        .as_mapping_mut()
        .ok_or_else(|| Error::InvalidInput("the template is not a mapping".into()))?;
    map.remove("Outputs");
    if let Some(Value::Mapping(resources)) = map.get_mut("Resources") {
        let filtered: Mapping = resources
            .iter()
            .filter(|(k, _)| k.as_str().is_some_and(|k| keep.contains(&k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        *resources = filtered;
    }
    serde_yaml::to_string(&doc)
        .map_err(|e| Error::InvalidInput(format!("writing the import template: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_only_the_named_resources_and_their_tags() {
        let body = "Resources:\n  A:\n    Type: X\n    Properties:\n      Name: !Ref P\n  B:\n    Type: Y\nOutputs:\n  O:\n    Value: !Ref A\n";
        let out = super::only_resources(body, &["A"]).unwrap();
        assert!(out.contains("Name: !Ref P"), "{out}");
        assert!(!out.contains("B:") && !out.contains("Outputs"), "{out}");
    }
}
