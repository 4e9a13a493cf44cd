//! The deploy preview: what a change set will do to each resource (add / modify / remove, and whether it
//! replaces it), and the data-loss guard over it.
//!
//! Two sources are merged because neither is enough alone: the change set's `Changes` are authoritative on AWS
//! (replacement is decided by the service), but the local endpoint lists no `Changes` for updates; a
//! per-resource diff of the deployed and the new template (plus the resources that reference a changed
//! parameter) fills the gaps, and marks replacement for the properties known to force it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Logical ids whose loss loses data: the event log and the read models.
pub const PROTECTED_TABLES: [&str; 2] = ["EventsTable", "ProjectionsTable"];

/// Table properties whose change breaks readers or writers of the data even without a replacement.
pub const PROTECTED_PROPERTIES: [&str; 3] = ["KeySchema", "StreamSpecification", "TableName"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Add,
    Modify,
    Remove,
    Import,
}

/// Whether a change replaces the physical resource (a new one is created and the old one deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    Never,
    Conditional,
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    pub action: Action,
    pub replacement: Replacement,
    /// The top-level properties that change (when known).
    pub properties: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParameterChange {
    pub name: String,
    pub old: Option<String>,
    pub new: String,
}

/// What a change set will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub changes: Vec<ResourceChange>,
    pub parameters: Vec<ParameterChange>,
}

impl Preview {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.parameters.is_empty()
    }

    /// The data-loss risks in this preview, one sentence each; empty when the change is safe.
    pub fn data_loss_risks(&self) -> Vec<String> {
        let mut risks = Vec::new();
        for c in self
            .changes
            .iter()
            .filter(|c| PROTECTED_TABLES.contains(&c.logical_id.as_str()))
        {
            if c.action == Action::Remove {
                risks.push(format!("{} would be removed from the stack", c.logical_id));
            } else if c.action == Action::Modify && c.replacement != Replacement::Never {
                let how = if c.replacement == Replacement::Always {
                    "replaced"
                } else {
                    "possibly replaced"
                };
                risks.push(format!(
                    "{} would be {how} (a new, empty table)",
                    c.logical_id
                ));
            }
            let touched: Vec<&str> = c
                .properties
                .iter()
                .map(String::as_str)
                .filter(|p| PROTECTED_PROPERTIES.contains(p))
                .collect();
            if c.action == Action::Modify && !touched.is_empty() {
                risks.push(format!(
                    "{} would change {}",
                    c.logical_id,
                    touched.join(" and ")
                ));
            }
        }
        risks
    }
}

impl std::fmt::Display for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return writeln!(f, "  no changes");
        }
        for c in &self.changes {
            let sign = match c.action {
                Action::Add => '+',
                Action::Modify => '~',
                Action::Remove => '-',
                Action::Import => '>',
            };
            let replacement = match (c.action, c.replacement) {
                (Action::Modify, Replacement::Always) => "  REPLACEMENT",
                (Action::Modify, Replacement::Conditional) => "  replacement: conditional",
                _ => "",
            };
            let props = if c.properties.is_empty() {
                String::new()
            } else {
                format!("  ({})", c.properties.join(", "))
            };
            writeln!(
                f,
                "  {sign} {:<28} {:<32}{props}{replacement}",
                c.logical_id, c.resource_type
            )?;
        }
        for p in &self.parameters {
            let short = |v: &str| {
                if v.len() > 40 {
                    format!("{}…", &v[..40])
                } else {
                    v.to_string()
                }
            };
            match &p.old {
                Some(old) => writeln!(
                    f,
                    "  ~ parameter {}: {} -> {}",
                    p.name,
                    short(old),
                    short(&p.new)
                )?,
                None => writeln!(f, "  + parameter {}: {}", p.name, short(&p.new))?,
            }
        }
        Ok(())
    }
}

/// Per-resource diff of the deployed template (`None` before the first deploy) and the new one, given the
/// parameter values before and after (resources referencing a changed parameter are modified).
pub fn template_diff(
    old_body: Option<&str>,
    new_body: &str,
    old_params: &BTreeMap<String, String>,
    new_params: &BTreeMap<String, String>,
) -> Result<Vec<ResourceChange>> {
    let old = match old_body {
        Some(b) => resources(b)?,
        None => BTreeMap::new(),
    };
    let new = resources(new_body)?;
    let changed_params: BTreeSet<&str> = new_params
        .iter()
        .filter(|(k, v)| old_params.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut out = Vec::new();
    for (id, res) in &new {
        match old.get(id) {
            None => out.push(ResourceChange {
                logical_id: id.clone(),
                resource_type: res.kind.clone(),
                action: Action::Add,
                replacement: Replacement::Never,
                properties: Vec::new(),
            }),
            Some(before) => {
                let mut props: BTreeSet<String> = BTreeSet::new();
                let keys: BTreeSet<&String> = before
                    .properties
                    .keys()
                    .chain(res.properties.keys())
                    .collect();
                for k in keys {
                    let (a, b) = (before.properties.get(k), res.properties.get(k));
                    if a != b || b.is_some_and(|v| changed_params.iter().any(|p| references(v, p)))
                    {
                        props.insert(k.clone());
                    }
                }
                if before.kind != res.kind || !props.is_empty() || before.other != res.other {
                    let replacement = if before.kind != res.kind {
                        Replacement::Always
                    } else {
                        props
                            .iter()
                            .map(|p| replacement_of(&res.kind, p))
                            .max()
                            .unwrap_or(Replacement::Never)
                    };
                    out.push(ResourceChange {
                        logical_id: id.clone(),
                        resource_type: res.kind.clone(),
                        action: Action::Modify,
                        replacement,
                        properties: props.into_iter().collect(),
                    });
                }
            }
        }
    }
    for (id, res) in &old {
        if !new.contains_key(id) {
            out.push(ResourceChange {
                logical_id: id.clone(),
                resource_type: res.kind.clone(),
                action: Action::Remove,
                replacement: Replacement::Never,
                properties: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// Merges the change set's view (authoritative where present) with the template diff.
pub fn merge(
    from_change_set: Vec<ResourceChange>,
    from_template: Vec<ResourceChange>,
) -> Vec<ResourceChange> {
    let mut by_id: BTreeMap<String, ResourceChange> = BTreeMap::new();
    for c in from_change_set {
        by_id.insert(c.logical_id.clone(), c);
    }
    for t in from_template {
        match by_id.get_mut(&t.logical_id) {
            Some(c) => {
                let mut props: BTreeSet<String> = c.properties.iter().cloned().collect();
                props.extend(t.properties);
                c.properties = props.into_iter().collect();
                c.replacement = c.replacement.max(t.replacement);
            }
            None => {
                by_id.insert(t.logical_id.clone(), t);
            }
        }
    }
    let mut changes: Vec<ResourceChange> = by_id.into_values().collect();
    changes.sort_by(|a, b| {
        a.action
            .cmp(&b.action)
            .then(a.logical_id.cmp(&b.logical_id))
    });
    changes
}

/// Parameter differences, for the preview.
pub fn parameter_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<ParameterChange> {
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| ParameterChange {
            name: k.clone(),
            old: old.get(k).cloned(),
            new: v.clone(),
        })
        .collect()
}

struct Resource {
    kind: String,
    properties: BTreeMap<String, Value>,
    /// Everything besides Type and Properties (DeletionPolicy, DependsOn, ...).
    other: BTreeMap<String, Value>,
}

/// The resources of a template, read with [`stack::template::parse`]: short and long forms of the intrinsic
/// functions compare equal, so a deployed template that comes back in another form diffs as unchanged.
fn resources(body: &str) -> Result<BTreeMap<String, Resource>> {
    let doc = stack::template::parse(body).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (id, def) in stack::template::resources(&doc) {
        let kind = def
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let properties = def
            .get("Properties")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let other = def
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "Type" && *k != "Properties")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            id,
            Resource {
                kind,
                properties,
                other,
            },
        );
    }
    Ok(out)
}

/// Whether `value` references parameter `name`: `{"Ref": name}` or `${name}` in a `Fn::Sub` string (the
/// long forms [`stack::template::parse`] gives).
fn references(value: &Value, name: &str) -> bool {
    match value {
        Value::String(s) => s.contains(&format!("${{{name}}}")),
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| (k == "Ref" && v.as_str() == Some(name)) || references(v, name)),
        Value::Array(a) => a.iter().any(|v| references(v, name)),
        _ => false,
    }
}

/// The properties known to force a replacement, per resource type (from the CloudFormation resource
/// reference: "Update requires: Replacement").
fn replacement_of(kind: &str, property: &str) -> Replacement {
    let always: &[&str] = match kind {
        "AWS::DynamoDB::Table" => &["TableName", "KeySchema", "LocalSecondaryIndexes"],
        "AWS::Lambda::Function" => &["FunctionName", "PackageType"],
        "AWS::IAM::Role" => &["RoleName", "Path"],
        "AWS::SQS::Queue" => &["QueueName", "FifoQueue"],
        "AWS::Logs::LogGroup" => &["LogGroupName"],
        "AWS::S3::Bucket" => &["BucketName"],
        "AWS::Lambda::EventSourceMapping" => &["EventSourceArn", "StartingPosition"],
        _ => &[],
    };
    if always.contains(&property) {
        Replacement::Always
    } else {
        Replacement::Never
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
Parameters:
  CommandCodeKey: {Type: String}
Resources:
  EventsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-events"
      KeySchema: [{AttributeName: aggregate_id, KeyType: HASH}]
  CommandFunction:
    Type: AWS::Lambda::Function
    Properties:
      MemorySize: 128
      Code: {S3Key: !Ref CommandCodeKey}
  Queue:
    Type: AWS::SQS::Queue
"#;

    fn params(key: &str) -> BTreeMap<String, String> {
        [("CommandCodeKey".to_string(), key.to_string())].into()
    }

    #[test]
    fn diff_finds_adds_modifies_removes_and_parameter_driven_changes() {
        let new = OLD.replace("MemorySize: 128", "MemorySize: 256").replace(
            "  Queue:\n    Type: AWS::SQS::Queue\n",
            "  Topic:\n    Type: AWS::SNS::Topic\n",
        );
        let changes = merge(
            Vec::new(),
            template_diff(Some(OLD), &new, &params("a"), &params("b")).unwrap(),
        );
        let summary: Vec<(String, Action, Vec<String>)> = changes
            .iter()
            .map(|c| (c.logical_id.clone(), c.action, c.properties.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Topic".into(), Action::Add, vec![]),
                (
                    "CommandFunction".into(),
                    Action::Modify,
                    vec!["Code".into(), "MemorySize".into()]
                ),
                ("Queue".into(), Action::Remove, vec![]),
            ]
        );
        assert!(
            Preview {
                changes,
                parameters: vec![]
            }
            .data_loss_risks()
            .is_empty()
        );
    }

    #[test]
    fn key_schema_change_is_a_replacement_and_a_risk() {
        let new = OLD.replace("aggregate_id, KeyType: HASH", "id, KeyType: HASH");
        let changes = template_diff(Some(OLD), &new, &params("a"), &params("a")).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].replacement, Replacement::Always);
        let risks = Preview {
            changes,
            parameters: vec![],
        }
        .data_loss_risks();
        assert_eq!(
            risks,
            vec![
                "EventsTable would be replaced (a new, empty table)",
                "EventsTable would change KeySchema"
            ]
        );
    }

    #[test]
    fn a_template_read_back_in_long_form_json_is_unchanged() {
        // GetTemplate may return the deployed template as JSON with long-form functions.
        let json = serde_json::to_string(&stack::template::parse(OLD).unwrap()).unwrap();
        assert!(json.contains("\"Ref\""), "{json}");
        let changes = template_diff(Some(&json), OLD, &params("a"), &params("a")).unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        let changes = template_diff(Some(&json), OLD, &params("a"), &params("b")).unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].properties, vec!["Code".to_string()]);
    }
}
