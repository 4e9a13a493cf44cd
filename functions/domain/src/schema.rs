//! Event contracts derived from the event types: each event's `eventData` JSON Schema comes from its Rust type
//! (schemars, OpenAPI 3.0 flavour, subschemas inlined), and the command side checks new events against that
//! same schema, so the API document and the server can never disagree.
//!
//! The checker is deliberately small: it enforces exactly the keywords schemars emits for plain data types
//! (objects, strings, integers, booleans, arrays, enums, options). [`unsupported`] lists any other keyword an
//! event's schema uses, and the registry refuses such an event type at start (and in the suite), because a
//! keyword the server does not enforce would make the document promise what the server does not check.
//! Free-form data ([`FreeForm`], the seed's user events) refers to the shared `EventData` schema: any object
//! DynamoDB can store, checked by [`crate::validate::validate_event_data`] for every event anyway.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a free-form payload's schema lives in the API document.
pub const EVENT_DATA_REF: &str = "#/components/schemas/EventData";

/// Keywords that describe but do not constrain.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "example",
    "examples",
    "format",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords [`validate`] enforces.
const ENFORCED: &[&str] = &[
    "$ref",
    "type",
    "nullable",
    "properties",
    "required",
    "additionalProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "enum",
    "oneOf",
    "anyOf",
    "allOf",
    "items",
    "minItems",
    "maxItems",
    "const",
];

/// Any JSON object DynamoDB can store: the seed's free-form `eventData`. Its schema is the API document's
/// shared `EventData`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FreeForm(pub Map<String, Value>);

impl JsonSchema for FreeForm {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EventData".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "$ref": EVENT_DATA_REF })
    }
}

/// The JSON Schema of `T` as the API document states it: OpenAPI 3.0 keywords, subschemas inlined, no
/// `$schema` or `title`.
pub fn derive<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut schema {
        map.remove("title");
        map.remove("$schema");
        map.remove("definitions");
        map.remove("$defs");
    }
    schema
}

/// The keywords in `schema` that [`validate`] would not enforce, as `path: keyword` lines (empty when the
/// schema is fully enforced). A `$ref` other than [`EVENT_DATA_REF`] counts as unsupported.
pub fn unsupported(schema: &Value) -> Vec<String> {
    fn walk(path: &str, schema: &Value, out: &mut Vec<String>) {
        let Value::Object(map) = schema else {
            if !schema.is_boolean() {
                out.push(format!("{path}: not a schema"));
            }
            return;
        };
        for (key, value) in map {
            if ANNOTATIONS.contains(&key.as_str()) {
                continue;
            }
            if !ENFORCED.contains(&key.as_str()) {
                out.push(format!("{path}: `{key}`"));
                continue;
            }
            match key.as_str() {
                "$ref" if value != EVENT_DATA_REF => out.push(format!("{path}: `$ref` {value}")),
                "properties" => {
                    for (name, sub) in value.as_object().into_iter().flatten() {
                        walk(&format!("{path}.{name}"), sub, out);
                    }
                }
                "additionalProperties" | "items" => walk(&format!("{path}[*]"), value, out),
                "oneOf" | "anyOf" | "allOf" => {
                    for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                        walk(&format!("{path}/{key}[{i}]"), sub, out);
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk("eventData", schema, &mut out);
    out
}

/// Checks `value` against `schema`; the error names the first offending field by its path from `field`
/// (e.g. `` `eventData.amount` must be at least 1 ``).
pub fn validate(schema: &Value, field: &str, value: &Value) -> Result<(), String> {
    let Value::Object(s) = schema else {
        return match schema {
            Value::Bool(false) => Err(format!("`{field}` is not allowed here")),
            _ => Ok(()),
        };
    };
    if value.is_null() && s.get("nullable") == Some(&Value::Bool(true)) {
        return Ok(());
    }
    if let Some(reference) = s.get("$ref") {
        if reference != EVENT_DATA_REF {
            return Err(format!(
                "`{field}`: the schema refers to {reference}, which this server does not know"
            ));
        }
        return match value {
            Value::Object(map) => crate::validate::validate_event_data(field, map),
            other => Err(format!(
                "`{field}` must be a JSON object, got {}",
                kind(other)
            )),
        };
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        check_type(t, field, value)?;
    }
    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(format!(
            "`{field}` must be one of {}, got {value}",
            list.join(", ")
        ));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return Err(format!("`{field}` must be {c}, got {value}"));
    }
    check_bounds(s, field, value)?;
    match value {
        Value::Object(map) => check_object(s, field, map)?,
        Value::Array(items) => {
            if let Some(n) = s.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < n
            {
                return Err(format!("`{field}` must hold at least {n} items"));
            }
            if let Some(n) = s.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > n
            {
                return Err(format!("`{field}` must hold at most {n} items"));
            }
            if let Some(item) = s.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate(item, &format!("{field}[{i}]"), v)?;
                }
            }
        }
        _ => {}
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            validate(sub, field, value)?;
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(Value::Array(options)) = s.get(key) {
            let mut errors = Vec::new();
            let mut matched = 0;
            for sub in options {
                match validate(sub, field, value) {
                    Ok(()) => matched += 1,
                    Err(e) => errors.push(e),
                }
            }
            if matched == 0 {
                return Err(errors
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| format!("`{field}` matches none of its allowed shapes")));
            }
            if exactly_one && matched > 1 {
                return Err(format!(
                    "`{field}` matches more than one of its allowed shapes"
                ));
            }
        }
    }
    Ok(())
}

fn check_type(t: &str, field: &str, value: &Value) -> Result<(), String> {
    let ok = match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "null" => value.is_null(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        Err(format!(
            "`{field}` must be {article} {t}, got {}",
            kind(value)
        ))
    }
}

fn check_bounds(s: &Map<String, Value>, field: &str, value: &Value) -> Result<(), String> {
    if let Some(x) = value.as_f64() {
        let exclusive = |k: &str| s.get(k) == Some(&Value::Bool(true));
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && (x < min || (exclusive("exclusiveMinimum") && x == min))
        {
            let rel = if exclusive("exclusiveMinimum") {
                "greater than"
            } else {
                "at least"
            };
            return Err(format!(
                "`{field}` must be {rel} {}, got {value}",
                s["minimum"]
            ));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && (x > max || (exclusive("exclusiveMaximum") && x == max))
        {
            let rel = if exclusive("exclusiveMaximum") {
                "less than"
            } else {
                "at most"
            };
            return Err(format!(
                "`{field}` must be {rel} {}, got {value}",
                s["maximum"]
            ));
        }
    }
    if let Some(text) = value.as_str() {
        let chars = text.chars().count() as u64;
        if let Some(n) = s.get("minLength").and_then(Value::as_u64)
            && chars < n
        {
            return Err(format!("`{field}` must be at least {n} characters long"));
        }
        if let Some(n) = s.get("maxLength").and_then(Value::as_u64)
            && chars > n
        {
            return Err(format!("`{field}` must be at most {n} characters long"));
        }
    }
    Ok(())
}

fn check_object(
    s: &Map<String, Value>,
    field: &str,
    map: &Map<String, Value>,
) -> Result<(), String> {
    let properties = s.get("properties").and_then(Value::as_object);
    for name in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = name.as_str()
            && !map.contains_key(name)
        {
            return Err(format!("`{field}.{name}` is required"));
        }
    }
    for (key, v) in map {
        let path = format!("{field}.{key}");
        match properties.and_then(|p| p.get(key)) {
            Some(sub) => validate(sub, &path, v)?,
            None => match s.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    let known: Vec<&str> = properties
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return Err(format!(
                        "`{path}` is not a field of this event; its fields are: {}",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                Some(sub @ Value::Object(_)) => validate(sub, &path, v)?,
                _ => {}
            },
        }
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[schemars(length(min = 1, max = 8))]
        name: String,
        #[schemars(range(min = 1, max = 100))]
        amount: u64,
        note: Option<String>,
        data: FreeForm,
    }

    fn schema() -> Value {
        derive::<Sample>()
    }

    #[test]
    fn derived_schemas_use_only_enforced_keywords() {
        assert_eq!(
            unsupported(&schema()),
            Vec::<String>::new(),
            "{:#}",
            schema()
        );
    }

    #[test]
    fn valid_data_passes() {
        let v = json!({"name": "a", "amount": 5, "data": {"x": [1, "y"]}});
        assert_eq!(validate(&schema(), "eventData", &v), Ok(()));
        let v = json!({"name": "a", "amount": 5, "note": null, "data": {}});
        assert_eq!(validate(&schema(), "eventData", &v), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"amount": 5, "data": {}}),
                "`eventData.name` is required",
            ),
            (
                json!({"name": "a", "amount": "5", "data": {}}),
                "`eventData.amount` must be an integer",
            ),
            (
                json!({"name": "a", "amount": 0, "data": {}}),
                "`eventData.amount` must be at least 1",
            ),
            (
                json!({"name": "a", "amount": 1.5, "data": {}}),
                "`eventData.amount` must be an integer",
            ),
            (
                json!({"name": "", "amount": 1, "data": {}}),
                "`eventData.name` must be at least 1 characters",
            ),
            (
                json!({"name": "a", "amount": 1, "data": {}, "x": 1}),
                "`eventData.x` is not a field",
            ),
            (
                json!({"name": "a", "amount": 1, "data": {"": 1}}),
                "`eventData.data` has an empty key",
            ),
        ];
        for (value, expected) in cases {
            let err = validate(&schema(), "eventData", &value).unwrap_err();
            assert!(err.starts_with(expected), "{value}: {err}");
        }
    }

    #[test]
    fn unenforced_keywords_are_reported() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}});
        assert_eq!(unsupported(&s), vec!["eventData.a: `pattern`".to_string()]);
    }
}
