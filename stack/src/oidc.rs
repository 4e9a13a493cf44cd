//! Rendering the CI bootstrap, `templates/oidc-roles.yaml.hbs`: GitHub's OIDC provider and one deploy role per
//! `aws` environment of an account, with the permissions boundary of its function roles.
//!
//! It lives here, beside [`crate::render`], so every template of the project is rendered by one crate with one
//! escaping rule: no value reaches the YAML unquoted. Plain values go through the `json` helper (a JSON string
//! literal is valid YAML); ARNs that name `${AWS::Partition}` or `${AWS::AccountId}` go through the `sub`
//! helper, which writes `!Sub "<JSON string>"` and escapes a `${` inside a value so `Fn::Sub` reads it as text.
//! A test reads the template's source and fails on any `{{value}}` written without one of them.
//!
//! The input is data: the caller (`deployer::promote`) checks the configs' `role_arn`s and computes the deploy
//! role's statements for the tool's own calls (`deployer::permissions`), which are rendered as given.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::plan::Plan;

/// `templates/oidc-roles.yaml.hbs`, embedded so rendering does not depend on the working directory.
pub const TEMPLATE: &str = include_str!("../../templates/oidc-roles.yaml.hbs");

/// The bootstrap of one account.
#[derive(Debug, Clone)]
pub struct Bootstrap<'a> {
    /// `owner/name` of the GitHub repository whose workflow assumes the roles.
    pub github_repo: &'a str,
    pub account_id: &'a str,
    /// One per `aws` environment of the account; never empty.
    pub roles: Vec<DeployRole<'a>>,
}

/// One environment's deploy role, as its config's `role_arn` names it.
#[derive(Debug, Clone)]
pub struct DeployRole<'a> {
    pub plan: &'a Plan,
    pub artifact_bucket: String,
    /// `role_arn` itself, and its IAM path (`/` or `/a/b/`) and name.
    pub role_arn: String,
    pub role_path: String,
    pub role_name: String,
    /// The roles of the environments that promote from this one (this role trusts them).
    pub promoters: Vec<Peer>,
    /// The statements for the tool's own calls (assuming the role itself and a promotion source's role among
    /// them), rendered first in the role's policy as given.
    pub tool_statements: Vec<Statement>,
}

/// Another environment's deploy role.
#[derive(Debug, Clone, Serialize)]
pub struct Peer {
    pub env: String,
    pub account_id: String,
    pub role_arn: String,
}

/// One `Allow` statement of an IAM policy, with literal ARNs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub sid: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub condition: Option<Condition>,
}

/// A one-key condition: `<operator>: { <key>: <value> }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub value: String,
}

/// The GitHub environment whose jobs deploy `env`: the workflow runs prod in the protected `production`
/// environment (manual approval), every other environment under its own name.
pub fn github_environment(env: &str) -> String {
    match env {
        "prod" => "production".to_string(),
        other => other.to_string(),
    }
}

/// `dev` -> `DevDeployRole`, `my-env` -> `MyEnvDeployRole`: a CloudFormation-safe logical id.
pub fn deploy_role_logical_id(env: &str) -> String {
    let words: String = env
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut cs = p.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{words}DeployRole")
}

/// Renders the bootstrap template (strict mode: a missing value fails instead of leaving a hole).
pub fn render(bootstrap: &Bootstrap<'_>) -> Result<String, crate::RenderError> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("json", Box::new(crate::render::json_helper));
    hb.register_helper("sub", Box::new(SubHelper));
    hb.register_template_string("oidc-roles", TEMPLATE)
        .map_err(|e| crate::RenderError::Compile {
            name: "oidc-roles".into(),
            source: Box::new(e),
        })?;
    Ok(hb
        .render("oidc-roles", &view_model(bootstrap))
        .map_err(Box::new)?)
}

fn view_model(b: &Bootstrap<'_>) -> Json {
    let app = b
        .roles
        .first()
        .map(|r| r.plan.app.clone())
        .unwrap_or_default();
    let roles: Vec<Json> = b
        .roles
        .iter()
        .map(|r| {
            let plan = r.plan;
            let stack = &plan.stack_name;
            let logical_id = deploy_role_logical_id(&plan.env);
            let github_environment = github_environment(&plan.env);
            json!({
                "env": plan.env,
                "logical_id": logical_id,
                "arn_attribute": format!("{logical_id}.Arn"),
                "boundary_logical_id": format!("{logical_id}FunctionBoundary"),
                "output_logical_id": format!("{logical_id}Arn"),
                "stack_name": stack,
                "region": plan.region,
                "role_arn": r.role_arn,
                "role_name": r.role_name,
                "role_path": r.role_path,
                "github_environment": github_environment,
                "subject": format!("repo:{}:environment:{github_environment}", b.github_repo),
                "policy_name": format!("deploy-{stack}"),
                "artifact_bucket": r.artifact_bucket,
                "permissions_boundary": crate::plan::permissions_boundary_name(stack),
                "boundary_description": format!("Permissions boundary of the {stack} function roles"),
                "function_role_path": crate::plan::function_role_path(stack),
                "codedeploy_application": crate::plan::codedeploy_application_name(stack),
                "codedeploy_role_name": crate::plan::codedeploy_role_name(stack),
                "output_description": format!(
                    "role-to-assume for the `{github_environment}` jobs (must equal role_arn in config/{}.yaml)",
                    plan.env
                ),
                "promoters": r.promoters,
                "tool_statements": r.tool_statements,
            })
        })
        .collect();
    json!({
        "github_repo": b.github_repo,
        "account_id": b.account_id,
        "app": app,
        "description": format!("GitHub Actions OIDC deploy roles for {} ({app}, account {})", b.github_repo, b.account_id),
        "stack_name": format!("{app}-ci-oidc"),
        "roles": roles,
    })
}

/// `{{sub "arn:${AWS::Partition}:sqs:<region>:${AWS::AccountId}:<stack_name>-*"}}` writes
/// `!Sub "arn:${AWS::Partition}:sqs:eu-west-1:${AWS::AccountId}:cqrs-dev-*"`: each `<path>` is looked up in the
/// current scope (strictly: a missing or non-scalar value fails the render), a `${` inside a value becomes
/// `${!` (`Fn::Sub`'s literal), and the whole string is written as a JSON string literal.
struct SubHelper;

impl HelperDef for SubHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let pattern = h
            .param(0)
            .filter(|p| p.relative_path().is_none())
            .and_then(|p| p.value().as_str())
            .ok_or_else(|| RenderErrorReason::Other("`sub` takes one literal string".into()))?;
        let mut body = String::new();
        let mut rest = pattern;
        while let Some(open) = rest.find('<') {
            body.push_str(&rest[..open]);
            let close = rest[open..].find('>').map(|c| open + c).ok_or_else(|| {
                RenderErrorReason::Other(format!("`sub` pattern `{pattern}`: unclosed `<`"))
            })?;
            let path = &rest[open + 1..close];
            let value = rc.evaluate(ctx, path)?;
            let text = match value.as_json() {
                Json::String(s) if !value.is_missing() => s.clone(),
                Json::Number(n) => n.to_string(),
                _ => {
                    return Err(RenderError::from(RenderErrorReason::Other(format!(
                        "`sub` pattern `{pattern}`: `{path}` is not a string in scope"
                    ))));
                }
            };
            body.push_str(&text.replace("${", "${!"));
            rest = &rest[close + 1..];
        }
        body.push_str(rest);
        let literal = serde_json::to_string(&body).map_err(RenderErrorReason::from)?;
        out.write(&format!("!Sub {literal}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `{{...}}` of the template is a block, a comment, or a `json` / `sub` call: nothing is written raw.
    #[test]
    fn the_template_writes_no_value_unescaped() {
        let mut raw = Vec::new();
        for (n, line) in TEMPLATE.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("{{") {
                let inner = &rest[i + 2..];
                let end = inner.find("}}").unwrap_or(inner.len());
                let expr = inner[..end].trim();
                let ok = ["#", "/", "!", "else", "json ", "sub "]
                    .iter()
                    .any(|p| expr.starts_with(p));
                if !ok {
                    raw.push(format!("line {}: {{{{{expr}}}}}", n + 1));
                }
                rest = &inner[end..];
            }
        }
        assert!(
            raw.is_empty(),
            "values written without `json` or `sub`:\n{}",
            raw.join("\n")
        );
    }

    /// Every field a config or the caller gives, set to text full of YAML, JSON and `Fn::Sub` syntax: the
    /// template keeps its three resources, and each value arrives as the one string it was.
    #[test]
    fn a_value_with_yaml_or_sub_syntax_stays_one_string_and_adds_nothing() {
        let evil = "x\n  Evil:\n    Type: AWS::IAM::User\n# \": ' [${AWS::AccountId}] {a: b} &x *x !Ref y |\n- z";
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        let mut plan = crate::config::load(&dir, "dev").expect("config/dev.yaml loads");
        plan.env = evil.into();
        plan.stack_name = evil.into();
        plan.region = evil.into();
        plan.app = evil.into();
        let statement = Statement {
            sid: evil.into(),
            actions: vec![evil.into()],
            resources: vec![evil.into()],
            condition: Some(Condition {
                operator: evil.into(),
                key: evil.into(),
                value: evil.into(),
            }),
        };
        let peer = Peer {
            env: evil.into(),
            account_id: evil.into(),
            role_arn: evil.into(),
        };
        let role = DeployRole {
            plan: &plan,
            artifact_bucket: evil.into(),
            role_arn: evil.into(),
            role_path: evil.into(),
            role_name: evil.into(),
            promoters: vec![peer],
            tool_statements: vec![statement],
        };
        let body = render(&Bootstrap {
            github_repo: evil,
            account_id: evil,
            roles: vec![role],
        })
        .expect("renders");
        let t = crate::template::parse(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let logical = deploy_role_logical_id(evil);
        let mut keys: Vec<&str> = t["Resources"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let boundary = format!("{logical}FunctionBoundary");
        let mut expected = vec!["GitHubOidcProvider", logical.as_str(), boundary.as_str()];
        expected.sort_unstable();
        assert_eq!(keys, expected, "{body}");
        assert_eq!(
            t["Description"],
            format!("GitHub Actions OIDC deploy roles for {evil} ({evil}, account {evil})")
        );
        let props = &t["Resources"][&logical]["Properties"];
        assert_eq!(props["RoleName"], evil);
        assert_eq!(props["Path"], evil);
        let trust = props["AssumeRolePolicyDocument"]["Statement"]
            .as_array()
            .unwrap();
        assert_eq!(trust.len(), 3, "{body}");
        assert_eq!(
            trust[0]["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"],
            format!("repo:{evil}:environment:{evil}")
        );
        assert_eq!(trust[1]["Condition"]["ArnEquals"]["aws:PrincipalArn"], evil);
        // In `Fn::Sub` a value's `${` is written `${!`: CloudFormation reads it as the text `${`.
        let escaped = evil.replace("${", "${!");
        assert_eq!(
            trust[2]["Principal"]["AWS"]["Fn::Sub"],
            format!("arn:${{AWS::Partition}}:iam::{escaped}:root")
        );
        let policy = &props["Policies"][0];
        assert_eq!(policy["PolicyName"], format!("deploy-{evil}"));
        let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
        assert_eq!(statements[0]["Sid"], evil);
        assert_eq!(statements[0]["Action"], json!([evil]));
        assert_eq!(statements[0]["Resource"], json!([evil]));
        assert_eq!(statements[0]["Condition"], json!({ evil: { evil: evil } }));
        assert_eq!(
            statements[1]["Resource"]["Fn::Sub"],
            format!("arn:${{AWS::Partition}}:s3:::{escaped}/*")
        );
        let tables = statements.iter().find(|s| s["Sid"] == "Tables").unwrap();
        assert_eq!(
            tables["Resource"][0]["Fn::Sub"],
            format!(
                "arn:${{AWS::Partition}}:dynamodb:{escaped}:${{AWS::AccountId}}:table/{escaped}-*"
            )
        );
        let boundary = &t["Resources"][&boundary]["Properties"];
        assert_eq!(
            boundary["ManagedPolicyName"],
            format!("{evil}-function-boundary")
        );
    }

    #[test]
    fn logical_ids_are_pascal_case() {
        assert_eq!(deploy_role_logical_id("dev"), "DevDeployRole");
        assert_eq!(deploy_role_logical_id("my-env_2"), "MyEnv2DeployRole");
    }
}
