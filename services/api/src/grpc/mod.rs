//! `WorkflowExecutionService`: the orchestrator-facing RPCs.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use wfe_proto::v1;
use wfe_proto::v1::workflow_execution_service_server::WorkflowExecutionService;

use crate::auth::CallerIdentity;
use crate::convert::execution_to_proto;
use crate::ctx::SharedCtx;
use crate::error::{Error, Result};
use crate::store::ExecKey;

pub mod codec_errors;
pub mod list;
pub mod ops;
pub mod watch;

/// The service implementation.
#[derive(Debug, Clone)]
pub struct ExecutionService {
    ctx: SharedCtx,
    dispatcher: std::sync::Arc<crate::dispatch::Dispatcher>,
    shutdown: tokio_util::sync::CancellationToken,
}

impl ExecutionService {
    /// A service over the shared state (ExecuteWorkflow assigns through `dispatcher` when an
    /// agent is free); Watch streams end at `shutdown`.
    pub fn new(
        ctx: SharedCtx,
        dispatcher: std::sync::Arc<crate::dispatch::Dispatcher>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Self {
        Self {
            ctx,
            dispatcher,
            shutdown,
        }
    }

    fn caller<T>(&self, req: &Request<T>) -> Result<CallerIdentity> {
        self.ctx.caller_auth.authenticate(req.metadata())
    }
}

/// `name` is required; the namespace defaults.
pub fn exec_key(ctx: &crate::ctx::Ctx, namespace: &str, name: &str) -> Result<ExecKey> {
    let namespace = ctx.namespace_of(namespace)?;
    if name.is_empty() {
        return Err(Error::field("name", "name is required"));
    }
    Ok(ExecKey {
        namespace,
        name: name.to_owned(),
    })
}

fn traceparent<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<v1::WatchWorkflowExecutionsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl WorkflowExecutionService for ExecutionService {
    async fn execute_workflow(
        &self,
        request: Request<v1::ExecuteWorkflowRequest>,
    ) -> Result<Response<v1::ExecuteWorkflowResponse>, Status> {
        let span = tracing::info_span!("ExecuteWorkflow", otel.kind = "server");
        wfe_telemetry::set_parent_from_metadata(&span, request.metadata());
        async {
            let _who = self.caller(&request)?;
            // Without the caller's context, the agent joins this span's trace.
            let trace = traceparent(&request).or_else(wfe_telemetry::current_traceparent);
            let res =
                crate::execute::execute(&self.ctx, &self.dispatcher, request.into_inner(), trace)
                    .await?;
            Ok(Response::new(res))
        }
        .instrument(span)
        .await
    }

    async fn get_workflow_execution(
        &self,
        request: Request<v1::GetWorkflowExecutionRequest>,
    ) -> Result<Response<v1::GetWorkflowExecutionResponse>, Status> {
        self.caller(&request)?;
        self.ctx.ensure_synced()?;
        let r = request.into_inner();
        let key = exec_key(&self.ctx, &r.namespace, &r.name)?;
        let obj = self.ctx.index.get(&key).ok_or(Error::NotFound {
            namespace: key.namespace,
            name: key.name,
        })?;
        Ok(Response::new(v1::GetWorkflowExecutionResponse {
            execution: Some(execution_to_proto(&obj)),
        }))
    }

    async fn list_workflow_executions(
        &self,
        request: Request<v1::ListWorkflowExecutionsRequest>,
    ) -> Result<Response<v1::ListWorkflowExecutionsResponse>, Status> {
        self.caller(&request)?;
        self.ctx.ensure_synced()?;
        Ok(Response::new(list::list(&self.ctx, request.into_inner())?))
    }

    type WatchWorkflowExecutionsStream = WatchStream;

    async fn watch_workflow_executions(
        &self,
        request: Request<v1::WatchWorkflowExecutionsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        self.caller(&request)?;
        self.ctx.ensure_synced()?;
        let stream = watch::watch(
            self.ctx.clone(),
            request.into_inner(),
            self.shutdown.clone(),
        )?;
        Ok(Response::new(stream))
    }

    async fn cancel_workflow_execution(
        &self,
        request: Request<v1::CancelWorkflowExecutionRequest>,
    ) -> Result<Response<v1::CancelWorkflowExecutionResponse>, Status> {
        let who = self.caller(&request)?;
        self.ctx.ensure_synced()?;
        Ok(Response::new(
            ops::cancel(&self.ctx, &who, request.into_inner()).await?,
        ))
    }

    async fn preflight_workflow(
        &self,
        request: Request<v1::PreflightWorkflowRequest>,
    ) -> Result<Response<v1::PreflightWorkflowResponse>, Status> {
        self.caller(&request)?;
        self.ctx.ensure_synced()?;
        Ok(Response::new(ops::preflight(
            &self.ctx,
            request.into_inner(),
        )?))
    }

    async fn clear_block(
        &self,
        request: Request<v1::ClearBlockRequest>,
    ) -> Result<Response<v1::ClearBlockResponse>, Status> {
        let who = self.caller(&request)?;
        self.ctx.ensure_synced()?;
        Ok(Response::new(
            ops::clear_block(&self.ctx, &who, request.into_inner()).await?,
        ))
    }
}
