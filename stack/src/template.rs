//! Reading CloudFormation templates back into data, short-form tags included.
//!
//! The renderer writes YAML with CloudFormation's short-form intrinsic functions (`!Ref`, `!GetAtt`, `!Sub`,
//! ...), which a plain YAML parser sees as custom tags. [`parse`] turns them into the long form
//! (`{"Ref": ..}`, `{"Fn::GetAtt": [..]}`), so the validator and the deployer (which diffs the deployed
//! template against the new one, resource by resource) work on one canonical JSON shape. JSON templates
//! (as `GetTemplate` may return them) are YAML too and parse the same way.

use serde_json::{Map, Number, Value as Json};
use serde_yaml::Value as Yaml;

/// A template that is not YAML/JSON, or uses a tag CloudFormation does not know.
///
/// ### Handling
/// For a freshly rendered template this is a bug in `templates/` (report it); for a deployed template,
/// treat the stack as unknown and show the full new template instead of a diff.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the template is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error(
        "unknown CloudFormation tag `!{0}`; expected one of the short forms like !Ref, !GetAtt, !Sub"
    )]
    UnknownTag(String),
    #[error("`!{tag}` has the wrong shape: {why}")]
    BadTag { tag: String, why: String },
    #[error("the template must be a mapping with a `Resources` section")]
    NotATemplate,
}

/// Short-form tags and the long form each becomes (`Ref` and `Condition` keep their names).
const FUNCTIONS: [&str; 18] = [
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "If",
    "Equals",
    "Join",
    "Select",
    "Split",
    "FindInMap",
    "Base64",
    "Cidr",
    "GetAZs",
    "ImportValue",
    "And",
    "Or",
    "Not",
    "Transform",
];

/// Parses a CloudFormation template (YAML with short-form tags, or JSON) into canonical long-form JSON.
pub fn parse(body: &str) -> Result<Json, TemplateError> {
    let yaml: Yaml = serde_yaml::from_str(body)?;
    let json = convert(yaml)?;
    match &json {
        Json::Object(m) if m.get("Resources").is_some_and(Json::is_object) => Ok(json),
        _ => Err(TemplateError::NotATemplate),
    }
}

/// The `Resources` section of a parsed template, by logical id (empty if absent).
pub fn resources(template: &Json) -> Map<String, Json> {
    template
        .get("Resources")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default()
}

fn convert(v: Yaml) -> Result<Json, TemplateError> {
    Ok(match v {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Json::Number(u.into())
            } else {
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map(Json::Number)
                    .unwrap_or(Json::Null)
            }
        }
        Yaml::String(s) => Json::String(s),
        Yaml::Sequence(seq) => Json::Array(seq.into_iter().map(convert).collect::<Result<_, _>>()?),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    other => serde_yaml::to_string(&other)?.trim().to_string(),
                };
                out.insert(key, convert(v)?);
            }
            Json::Object(out)
        }
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!').to_string();
            if !FUNCTIONS.contains(&name.as_str()) {
                return Err(TemplateError::UnknownTag(name));
            }
            let inner = convert(tagged.value)?;
            let inner = if name == "GetAtt" {
                match inner {
                    // `!GetAtt Res.Attr` -> ["Res", "Attr"] (the attribute itself may contain dots).
                    Json::String(s) => match s.split_once('.') {
                        Some((res, attr)) => Json::Array(vec![res.into(), attr.into()]),
                        None => {
                            return Err(TemplateError::BadTag {
                                tag: name,
                                why: format!("`{s}` is not `Resource.Attribute`"),
                            });
                        }
                    },
                    arr @ Json::Array(_) => arr,
                    other => {
                        return Err(TemplateError::BadTag {
                            tag: name,
                            why: format!("unexpected {other}"),
                        });
                    }
                }
            } else {
                inner
            };
            let long = match name.as_str() {
                "Ref" | "Condition" => name,
                _ => format!("Fn::{name}"),
            };
            let mut m = Map::new();
            m.insert(long, inner);
            Json::Object(m)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_forms_become_long_forms() {
        let t = parse(
            "Resources:\n  A:\n    Type: X\n    Properties:\n      R: !Ref B\n      G: !GetAtt B.StreamArn\n      S: !Sub 'x-${B}'\n      I: !If [C, !Ref B, !Ref AWS::NoValue]\n      J: !Join ['', [a, !Select [0, !Split [',', 'a,b']]]]\n",
        )
        .unwrap();
        let p = &t["Resources"]["A"]["Properties"];
        assert_eq!(p["R"], json!({"Ref": "B"}));
        assert_eq!(p["G"], json!({"Fn::GetAtt": ["B", "StreamArn"]}));
        assert_eq!(p["S"], json!({"Fn::Sub": "x-${B}"}));
        assert_eq!(
            p["I"],
            json!({"Fn::If": ["C", {"Ref": "B"}, {"Ref": "AWS::NoValue"}]})
        );
        assert_eq!(
            p["J"],
            json!({"Fn::Join": ["", ["a", {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}]]})
        );
    }

    #[test]
    fn json_templates_parse_too() {
        let t = parse(r#"{"Resources": {"A": {"Type": "X", "Properties": {"R": {"Ref": "B"}}}}}"#)
            .unwrap();
        assert_eq!(t["Resources"]["A"]["Properties"]["R"], json!({"Ref": "B"}));
    }

    #[test]
    fn unknown_tags_and_non_templates_are_errors() {
        assert!(
            matches!(parse("Resources:\n  A: !Bogus x\n"), Err(TemplateError::UnknownTag(t)) if t == "Bogus")
        );
        assert!(matches!(parse("a: 1\n"), Err(TemplateError::NotATemplate)));
    }
}
