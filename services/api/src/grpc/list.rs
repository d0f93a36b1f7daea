//! ListWorkflowExecutions: filters and opaque page tokens over the index, newest first.

use std::sync::Arc;

use kube::ResourceExt;
use wfe_core::Engine;
use wfe_k8s::WorkflowExecution;
use wfe_proto::v1;

use crate::convert::{execution_to_proto, phase_from_proto};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::store::phase_of;

/// Default and largest page sizes.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// The ordering key: newest first, then by name.
fn sort_key(o: &WorkflowExecution) -> (i128, String) {
    let t = o
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_nanosecond())
        .unwrap_or(0);
    (-t, o.name_any())
}

/// Encodes the position after `o`.
fn token(o: &WorkflowExecution) -> String {
    let (t, name) = sort_key(o);
    hex::encode(format!("{t}|{name}"))
}

fn parse_token(s: &str) -> Result<(i128, String)> {
    let bad = || Error::field("page_token", "invalid page token");
    let raw = String::from_utf8(hex::decode(s).map_err(|_| bad())?).map_err(|_| bad())?;
    let (t, name) = raw.split_once('|').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, name.to_owned()))
}

/// Handles ListWorkflowExecutions.
pub fn list(
    ctx: &Ctx,
    r: v1::ListWorkflowExecutionsRequest,
) -> Result<v1::ListWorkflowExecutionsResponse> {
    let ns = ctx.namespace_of(&r.namespace)?;
    let size = match r.page_size {
        n if n < 0 => return Err(Error::field("page_size", "page_size must not be negative")),
        0 => DEFAULT_PAGE,
        n => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
    };
    if !r.execution_engine.is_empty() && Engine::parse(&r.execution_engine).is_err() {
        return Err(Error::field(
            "execution_engine",
            "must be \"job\" or \"tekton\"",
        ));
    }
    let phase = v1::Phase::try_from(r.phase).map_err(|_| Error::field("phase", "unknown phase"))?;
    let phase = phase_from_proto(phase);
    let after = if r.page_token.is_empty() {
        None
    } else {
        Some(parse_token(&r.page_token)?)
    };
    let keep = |o: &Arc<WorkflowExecution>| {
        (r.target_resource.is_empty() || o.spec.target_resource == r.target_resource)
            && r.cluster_id
                .as_ref()
                .is_none_or(|c| o.spec.cluster_id == *c)
            && phase.is_none_or(|p| phase_of(o) == p)
            && (r.execution_engine.is_empty() || o.spec.execution_engine == r.execution_engine)
            && (r.workflow_id.is_empty() || o.spec.workflow_ref.workflow_id == r.workflow_id)
            && (r.remediation_request_name.is_empty()
                || o.spec.remediation_request_ref.name == r.remediation_request_name)
            && after.as_ref().is_none_or(|a| sort_key(o) > *a)
    };
    let mut items: Vec<_> = ctx.index.all_in(&ns).into_iter().filter(keep).collect();
    items.sort_by_key(|o| sort_key(o));
    let more = items.len() > size;
    items.truncate(size);
    let next_page_token = match (more, items.last()) {
        (true, Some(last)) => token(last),
        _ => String::new(),
    };
    Ok(v1::ListWorkflowExecutionsResponse {
        executions: items.iter().map(|o| execution_to_proto(o)).collect(),
        next_page_token,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let mut w = WorkflowExecution::new("we-1", Default::default());
        w.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_second(5).unwrap(),
        ));
        assert_eq!(parse_token(&token(&w)).unwrap(), sort_key(&w));
        assert!(parse_token("zz").is_err());
    }
}
