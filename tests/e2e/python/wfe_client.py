#!/usr/bin/env python3
"""A Python grpcio client of workflow-api, generated from proto/ at run time.

It compiles proto/ with grpc_tools.protoc into a temp dir, calls ExecuteWorkflow
and follows WatchWorkflowExecutions for that execution until it is terminal,
printing one JSON line per event: {"type", "name", "phase"}. The last line is
{"final": <phase>}. Used by the end-to-end suite; usable by hand against `wfe dev`:

    python3 tests/e2e/python/wfe_client.py --proto-dir proto \
        --addr 127.0.0.1:8443 --token dev-operator-token --target default/Deployment/web
"""

import argparse
import glob
import importlib
import json
import os
import sys
import tempfile

PKG = "kubernaut.workflowexecution.v1"
IMAGE = ("ghcr.io/kubernaut/workflows/restart-deployment@sha256:"
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
TERMINAL = {"PHASE_COMPLETED", "PHASE_FAILED", "PHASE_SKIPPED"}


def generate(proto_dir, out_dir):
    """Compiles the v1 protos into out_dir and makes them importable."""
    from grpc_tools import protoc
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = glob.glob(os.path.join(proto_dir, "kubernaut/workflowexecution/v1/*.proto"))
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out_dir)


def modules():
    base = "kubernaut.workflowexecution.v1."
    svc = base + "workflow_execution_service_pb2"
    return (importlib.import_module(base + "types_pb2"),
            importlib.import_module(svc),
            importlib.import_module(svc + "_grpc"))


def request(types, svc, target, outcome):
    spec = types.ExecutionSpec(
        remediation_request_ref=types.RemediationRequestReference(
            name="rr-python", namespace="kubernaut-system"),
        workflow_ref=types.WorkflowReference(
            workflow_id="restart-deployment", workflow_name="restart-deployment",
            action_type="RestartDeployment", version="1.0.0", container_image=IMAGE),
        execution_engine="job",
        target_resource=target,
        parameters={"SANDBOX_DURATION": "1s", "SANDBOX_OUTCOME": outcome},
    )
    return svc.ExecuteWorkflowRequest(idempotency_key="python-1", spec=spec)


def follow(stub, svc, types, name, target, auth):
    """Prints the execution's events until it is terminal; returns the final phase."""
    watch = svc.WatchWorkflowExecutionsRequest(target_resource=target)
    for ev in stub.WatchWorkflowExecutions(watch, metadata=auth, timeout=60):
        kind = svc.WatchEventType.Name(ev.type)
        if not ev.HasField("execution") or ev.execution.name != name:
            continue
        phase = types.Phase.Name(ev.execution.status.phase)
        print(json.dumps({"type": kind, "name": name, "phase": phase}), flush=True)
        if phase in TERMINAL:
            return phase
    return "STREAM_ENDED"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proto-dir", required=True)
    p.add_argument("--addr", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--target", default="default/Deployment/python")
    p.add_argument("--outcome", default="succeed")
    a = p.parse_args()
    import grpc

    with tempfile.TemporaryDirectory(prefix="wfe-py-") as out:
        generate(a.proto_dir, out)
        types, svc, grpc_mod = modules()
        auth = [("authorization", f"Bearer {a.token}")]
        with grpc.insecure_channel(a.addr) as ch:
            stub = grpc_mod.WorkflowExecutionServiceStub(ch)
            res = stub.ExecuteWorkflow(request(types, svc, a.target, a.outcome),
                                       metadata=auth, timeout=10)
            name = res.execution.name
            print(json.dumps({"accepted": name,
                              "disposition": svc.Disposition.Name(res.disposition)}), flush=True)
            print(json.dumps({"final": follow(stub, svc, types, name, a.target, auth)}))


if __name__ == "__main__":
    main()
