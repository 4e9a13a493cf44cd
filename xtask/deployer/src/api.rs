//! Reads the deployed HTTP API back from API Gateway (endpoint, stage, routes) and checks that every planned
//! route exists: the stack reporting success is not the same as the API serving the routes we expect.
//! The local endpoint has no API Gateway; the local gateway's URL stands in there.

use serde::Serialize;
use stack::Plan;

use crate::aws::Clients;
use crate::error::{Error, Result};

/// The HTTP API as API Gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiReport {
    pub api_id: String,
    pub endpoint: String,
    pub stages: Vec<String>,
    pub routes: Vec<String>,
    /// Planned route keys that API Gateway does not have.
    pub missing_routes: Vec<String>,
}

impl std::fmt::Display for ApiReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "http api {} at {} (stages: {})",
            self.api_id,
            self.endpoint,
            self.stages.join(", ")
        )?;
        for r in &self.routes {
            writeln!(f, "  route {r}")?;
        }
        for r in &self.missing_routes {
            writeln!(f, "  MISSING route {r}")?;
        }
        Ok(())
    }
}

/// Finds the stack's `HttpApi` resource and reads it back. A planned route that is missing is an error.
pub async fn read_back(clients: &Clients, plan: &Plan) -> Result<ApiReport> {
    let resource = clients
        .cfn
        .describe_stack_resource()
        .stack_name(&plan.stack_name)
        .logical_resource_id("HttpApi")
        .send()
        .await
        .map_err(Error::aws("finding the stack's HttpApi"))?;
    let api_id = resource
        .stack_resource_detail()
        .and_then(|d| d.physical_resource_id())
        .unwrap_or_default()
        .to_string();
    let api = clients
        .apigw
        .get_api()
        .api_id(&api_id)
        .send()
        .await
        .map_err(Error::aws(format!("reading HTTP API `{api_id}`")))?;
    let stages = clients
        .apigw
        .get_stages()
        .api_id(&api_id)
        .send()
        .await
        .map_err(Error::aws("reading the API's stages"))?;
    let mut routes = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = clients
            .apigw
            .get_routes()
            .api_id(&api_id)
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(Error::aws("reading the API's routes"))?;
        routes.extend(
            page.items()
                .iter()
                .filter_map(|r| r.route_key().map(String::from)),
        );
        next = page.next_token().map(String::from);
        if next.is_none() {
            break;
        }
    }
    routes.sort();
    let missing_routes: Vec<String> = plan
        .api
        .routes
        .iter()
        .map(|r| r.route_key())
        .filter(|k| !routes.contains(k))
        .collect();
    let report = ApiReport {
        api_id,
        endpoint: api.api_endpoint().unwrap_or_default().to_string(),
        stages: stages
            .items()
            .iter()
            .filter_map(|s| s.stage_name().map(String::from))
            .collect(),
        routes,
        missing_routes,
    };
    if !report.missing_routes.is_empty() {
        return Err(Error::StackFailed(format!(
            "the deployed HTTP API {} lacks planned routes: {}; check the template's route resources",
            report.api_id,
            report.missing_routes.join(", ")
        )));
    }
    Ok(report)
}
