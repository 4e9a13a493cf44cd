//! IAM policies of the rendered templates as data, for the contract tests (`tests/tests/iam_contract.rs`,
//! `tests/tests/iam_function_roles.rs`): statements with their actions, resources and conditions, matched the
//! way IAM matches them (case-insensitive actions, `*`/`?` wildcards), and the templates rendered for every
//! environment.
//!
//! Why it exists: moto enforces no IAM, so whether the deploy role and the function roles allow what the
//! code does can only be proven by reading the policies; both test files read them through this one model.

use std::collections::BTreeMap;

use serde_json::Value;

/// One `Allow` or `Deny` statement, its intrinsic functions resolved for one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub allow: bool,
    pub actions: Vec<String>,
    /// ARN patterns; `Fn::GetAtt`/`Fn::Sub` of the template's own resources stay symbolic
    /// (`EventsTable`, `EventsTable.StreamArn`, `EventsTable/index/EventTypeTimestampIndex`).
    pub resources: Vec<String>,
    pub condition: Value,
}

/// An IAM role of a template: its logical id, inline policy statements and permissions boundary.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub logical_id: String,
    pub role_name: Option<String>,
    /// The role's IAM path (`/cqrs/<stack>/` for the function roles); `None` when the template sets none (`/`).
    pub path: Option<String>,
    pub statements: Vec<Statement>,
    pub boundary: Option<String>,
    /// `ManagedPolicyArns`: policies attached as they are, outside the inline statements this model reads.
    pub managed_policies: Vec<String>,
}

impl Role {
    /// Whether an `Allow` statement grants `action` on `resource` (conditions ignored: they only narrow).
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.statements.iter().any(|s| {
            s.allow
                && s.actions.iter().any(|a| glob(a, action, true))
                && s.resources.iter().any(|r| glob(r, resource, false))
        })
    }

    /// Whether an `Allow` statement grants `action` on any resource.
    pub fn allows_action(&self, action: &str) -> bool {
        self.statements
            .iter()
            .any(|s| s.allow && s.actions.iter().any(|a| glob(a, action, true)))
    }

    /// Every action pattern an `Allow` statement names.
    pub fn actions(&self) -> Vec<String> {
        self.statements
            .iter()
            .filter(|s| s.allow)
            .flat_map(|s| s.actions.iter().cloned())
            .collect()
    }
}

/// IAM's wildcard match: `*` any run of characters, `?` one character; actions match case-insensitively.
pub fn glob(pattern: &str, value: &str, case_insensitive: bool) -> bool {
    let (p, v) = if case_insensitive {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_string(), value.to_string())
    };
    fn rec(p: &[u8], v: &[u8]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some(b'*') => (0..=v.len()).any(|i| rec(&p[1..], &v[i..])),
            Some(b'?') => !v.is_empty() && rec(&p[1..], &v[1..]),
            Some(c) => v.first() == Some(c) && rec(&p[1..], &v[1..]),
        }
    }
    rec(p.as_bytes(), v.as_bytes())
}

fn strings(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A resource or condition value as a string: literals as they are, `Fn::Sub` with the pseudo parameters
/// replaced, `Fn::GetAtt X.Arn` as `X`, other attributes as `X.Attr`.
pub fn resolve(v: &Value, account: &str) -> String {
    let sub = |s: &str| {
        s.replace("${AWS::Partition}", "aws")
            .replace("${AWS::AccountId}", account)
            .replace("${AWS::URLSuffix}", "amazonaws.com")
    };
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("Fn::Sub") => {
            let body = sub(o["Fn::Sub"].as_str().unwrap_or_default());
            // `${X.Arn}/index/I` -> `X/index/I`
            let mut out = String::new();
            let mut rest = body.as_str();
            while let Some(i) = rest.find("${") {
                out.push_str(&rest[..i]);
                let end = rest[i..].find('}').map(|e| i + e).unwrap_or(rest.len() - 1);
                let inner = &rest[i + 2..end];
                out.push_str(inner.strip_suffix(".Arn").unwrap_or(inner));
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            out
        }
        Value::Object(o) if o.contains_key("Fn::GetAtt") => {
            let parts = strings(&o["Fn::GetAtt"]);
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            match parts.as_slice() {
                [r, "Arn"] => r.to_string(),
                [r, a] => format!("{r}.{a}"),
                [one] => one.strip_suffix(".Arn").unwrap_or(one).to_string(),
                _ => format!("{o:?}"),
            }
        }
        other => other.to_string(),
    }
}

/// Resolves every string in a condition block (so `Fn::Sub` values compare as ARNs).
fn resolve_condition(v: &Value, account: &str) -> Value {
    match v {
        Value::Object(o) if o.contains_key("Fn::Sub") || o.contains_key("Fn::GetAtt") => {
            Value::String(resolve(v, account))
        }
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), resolve_condition(v, account)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve_condition(v, account)).collect()),
        other => other.clone(),
    }
}

/// The statements of one policy document.
pub fn statements(document: &Value, account: &str) -> Vec<Statement> {
    strings(&document["Statement"])
        .iter()
        .map(|s| Statement {
            sid: s["Sid"].as_str().map(str::to_string),
            allow: s["Effect"] == "Allow",
            actions: strings(&s["Action"])
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            resources: strings(&s["Resource"])
                .iter()
                .map(|r| resolve(r, account))
                .collect(),
            condition: resolve_condition(&s["Condition"], account),
        })
        .collect()
}

/// Every `AWS::IAM::Role` of a parsed template (long-form JSON), by logical id.
pub fn roles(template: &Value, account: &str) -> BTreeMap<String, Role> {
    let mut out = BTreeMap::new();
    let Some(resources) = template["Resources"].as_object() else {
        return out;
    };
    for (id, r) in resources {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let p = &r["Properties"];
        let statements = strings(&p["Policies"])
            .iter()
            .flat_map(|pol| statements(&pol["PolicyDocument"], account))
            .collect();
        out.insert(
            id.clone(),
            Role {
                logical_id: id.clone(),
                role_name: (!p["RoleName"].is_null()).then(|| resolve(&p["RoleName"], account)),
                path: p["Path"].as_str().map(str::to_string),
                statements,
                boundary: (!p["PermissionsBoundary"].is_null())
                    .then(|| resolve(&p["PermissionsBoundary"], account)),
                managed_policies: strings(&p["ManagedPolicyArns"])
                    .iter()
                    .map(|m| resolve(m, account))
                    .collect(),
            },
        );
    }
    out
}

/// The `aws` environments' plans of the repository's `config/`.
pub fn aws_plans() -> Vec<stack::Plan> {
    all_plans()
        .into_iter()
        .filter(|p| p.kind == stack::EnvKind::Aws)
        .collect()
}

/// Every environment's plan of the repository's `config/`.
pub fn all_plans() -> Vec<stack::Plan> {
    let dir = crate::repo_root().join("config");
    stack::config::environments(&dir)
        .unwrap()
        .into_iter()
        .map(|env| stack::config::load(&dir, &env).unwrap())
        .collect()
}

/// The account the examples deploy into (the plan's, or a stand-in for `local`).
pub fn account(plan: &stack::Plan) -> String {
    plan.account_id
        .clone()
        .unwrap_or_else(|| "000000000000".into())
}

/// The artifact bucket of a plan.
pub fn bucket(plan: &stack::Plan) -> String {
    deployer::artifacts::bucket_name(plan, Some(&account(plan)))
}

/// The CI bootstrap template (`templates/oidc-roles.yaml.hbs`) of the plan's account, rendered for every
/// `aws` environment of that account, parsed to long-form JSON.
pub fn oidc_template(plan: &stack::Plan, plans: &[stack::Plan]) -> Value {
    use deployer::promote::OidcEnvironment;
    let all: Vec<OidcEnvironment<'_>> = plans
        .iter()
        .map(|p| OidcEnvironment {
            plan: p,
            artifact_bucket: bucket(p),
        })
        .collect();
    let account = account(plan);
    let mine: Vec<_> = all
        .iter()
        .filter(|e| e.plan.account_id.as_deref() == Some(account.as_str()))
        .cloned()
        .collect();
    let body = deployer::promote::render_oidc_roles("acme/cqrs", &account, &mine, &all)
        .unwrap_or_else(|e| panic!("rendering the OIDC roles: {e}"));
    stack::template::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// The deploy role of `plan` in its bootstrap template.
pub fn deploy_role(plan: &stack::Plan, oidc: &Value) -> Role {
    let name = plan
        .role_arn
        .as_deref()
        .and_then(|a| a.rsplit('/').next())
        .expect("aws environments have a role_arn");
    roles(oidc, &account(plan))
        .into_values()
        .find(|r| r.role_name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no deploy role named {name} for {}", plan.env))
}

/// The stack template of a plan, rendered and checked, parsed to long-form JSON.
pub fn stack_template(plan: &stack::Plan) -> Value {
    let dir = crate::repo_root().join("config");
    let (_, t) = stack::load_checked(&dir, &plan.env).unwrap_or_else(|e| panic!("{e}"));
    stack::template::parse(&t.body).unwrap()
}

/// The stack of `plan` as it renders with a canary `deployment` (whatever its config says): every role a
/// deployment strategy can add (CodeDeploy's) is there, so the boundary, which is bootstrapped once, can be
/// checked against all of them.
pub fn stack_template_with_every_role(plan: &stack::Plan) -> Value {
    let mut plan = plan.clone();
    plan.deployment = stack::TrafficShift::Canary {
        percent: 10,
        interval_seconds: 300,
    };
    let t = stack::render::render(&plan).unwrap_or_else(|e| panic!("{e}"));
    stack::template::parse(&t.body).unwrap()
}
