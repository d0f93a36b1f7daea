//! The codes of what tonic's codec refuses, for every service of the server.
//!
//! tonic answers a request it cannot decode (a string field that is not UTF-8, a truncated
//! message) with INTERNAL, and one larger than the decoding limit with OUT_OF_RANGE. Both
//! are the caller's fault, and gRPC's convention says so: bad input is INVALID_ARGUMENT
//! (here with a google.rpc.BadRequest naming the field, as for every other bad field), a
//! message over the limit RESOURCE_EXHAUSTED. The codec builds these statuses before any
//! handler runs, so [`CodecErrorsLayer`] rewrites them on the way out: a unary or
//! server-streaming request that does not decode ends in a trailers-only response, whose
//! headers carry the status. A streaming handler that reads a bad message itself (the
//! agent session) maps it with [`remap`].
//!
//! ```text
//!  request ──► GrpcMetricsLayer ──► CodecErrorsLayer ──► tonic codec ──► handler
//!                (sees the code)      grpc-status 13 "failed to decode …" → 3
//!                                     grpc-status 11 "… message length too large …" → 8
//! ```

use std::task::{Context, Poll};

use futures::TryFutureExt as _;
use futures::future::MapOk;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

/// How prost's decode errors begin (`prost::DecodeError`'s Display).
const DECODE_FAILED: &str = "failed to decode Protobuf message: ";
/// How tonic's size-limit errors begin (decoding a request, encoding a response).
const TOO_LARGE: [&str; 2] = [
    "Error, decoded message length too large",
    "Error, encoded message length too large",
];

/// The status a codec error should have had: INVALID_ARGUMENT (naming the field when the
/// message says which) for a message that does not decode, RESOURCE_EXHAUSTED for one
/// over the size limit; None for any other status, which is left alone.
pub fn remap(status: &Status) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::Internal if message.starts_with(DECODE_FAILED) => Some(invalid(message)),
        Code::OutOfRange if TOO_LARGE.iter().any(|p| message.starts_with(p)) => {
            Some(Status::resource_exhausted(message))
        }
        _ => None,
    }
}

fn invalid(message: &str) -> Status {
    let Some(field) = field_of(message) else {
        return Status::invalid_argument(message);
    };
    let details = ErrorDetails::with_bad_request_violation(field, message);
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// The field path of a prost decode error: its message lists `Message.field: ` from the
/// innermost field out, then the description (which may hold `: ` itself).
fn field_of(message: &str) -> Option<String> {
    let ident = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut fields: Vec<&str> = message
        .strip_prefix(DECODE_FAILED)?
        .split(": ")
        .map_while(|segment| {
            let (msg, field) = segment.split_once('.')?;
            (ident(msg) && ident(field)).then_some(field)
        })
        .collect();
    fields.reverse();
    (!fields.is_empty()).then(|| fields.join("."))
}

/// Rewrites the trailers-only responses of codec errors; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CodecErrorsLayer;

impl<S> tower::Layer<S> for CodecErrorsLayer {
    type Service = CodecErrors<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CodecErrors { inner }
    }
}

/// See [`CodecErrorsLayer`].
#[derive(Debug, Clone)]
pub struct CodecErrors<S> {
    inner: S,
}

type Rewrite<RB> = fn(http::Response<RB>) -> http::Response<RB>;

impl<S, B, RB> tower::Service<http::Request<B>> for CodecErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = MapOk<S::Future, Rewrite<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.inner.call(req).map_ok(rewrite as Rewrite<RB>)
    }
}

/// A trailers-only response carries its status in the headers (a successful one has
/// none there: its status comes in the trailers).
fn rewrite<B>(mut res: http::Response<B>) -> http::Response<B> {
    let code = res
        .headers()
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32);
    if !matches!(code, Some(Code::Internal | Code::OutOfRange)) {
        return res;
    }
    let Some(mapped) = Status::from_header_map(res.headers()).and_then(|s| remap(&s)) else {
        return res;
    };
    let headers = res.headers_mut();
    headers.remove(GRPC_MESSAGE);
    headers.remove(GRPC_STATUS_DETAILS);
    if let Err(e) = mapped.add_header(headers) {
        tracing::warn!(error = %e, "cannot rewrite a codec error's status");
    }
    if res.extensions().get::<Status>().is_some() {
        res.extensions_mut().insert(mapped);
    }
    res
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codec_errors_get_the_callers_codes() {
        let not_utf8 = "failed to decode Protobuf message: WorkflowRef.workflow_id: \
                        ExecuteWorkflowSpec.workflow_ref: ExecuteWorkflowRequest.spec: \
                        invalid string value: data is not UTF-8 encoded";
        type Want = Option<(Code, Option<&'static str>)>;
        #[rustfmt::skip]
        let table: Vec<(Status, Want)> = vec![
            (Status::internal(not_utf8),
             Some((Code::InvalidArgument, Some("spec.workflow_ref.workflow_id")))),
            (Status::internal("failed to decode Protobuf message: GetWorkflowExecutionRequest.name: invalid string value: data is not UTF-8 encoded"),
             Some((Code::InvalidArgument, Some("name")))),
            (Status::internal("failed to decode Protobuf message: buffer underflow"),
             Some((Code::InvalidArgument, None))),
            (Status::out_of_range("Error, decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes"),
             Some((Code::ResourceExhausted, None))),
            (Status::out_of_range("Error, encoded message length too large: found 9 bytes, the limit is: 8 bytes"),
             Some((Code::ResourceExhausted, None))),
            // Not the codec's: left alone.
            (Status::internal("the index is not synced"), None),
            (Status::out_of_range("page token past the end"), None),
            (Status::invalid_argument(not_utf8), None),
        ];
        for (status, want) in table {
            let got = remap(&status).map(|s| {
                let field = s
                    .get_error_details()
                    .bad_request()
                    .and_then(|b| b.field_violations.first().map(|v| v.field.clone()));
                assert_eq!(s.message(), status.message(), "the message is kept");
                (s.code(), field)
            });
            let want = want.map(|(c, f)| (c, f.map(str::to_owned)));
            assert_eq!(got, want, "{status:?}");
        }
    }

    #[test]
    fn only_trailers_only_codec_errors_are_rewritten() {
        let bad: http::Response<()> = Status::internal(
            "failed to decode Protobuf message: GetWorkflowExecutionRequest.name: invalid string value: data is not UTF-8 encoded",
        )
        .into_http();
        let res = rewrite(bad);
        let status = Status::from_header_map(res.headers()).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            res.extensions().get::<Status>().unwrap().code(),
            Code::InvalidArgument
        );
        let fine: http::Response<()> = Status::internal("boom").into_http();
        let res = rewrite(fine);
        assert_eq!(
            Status::from_header_map(res.headers()).unwrap().code(),
            Code::Internal
        );
        let ok = rewrite(http::Response::new(()));
        assert!(ok.headers().get(GRPC_STATUS).is_none());
    }
}
