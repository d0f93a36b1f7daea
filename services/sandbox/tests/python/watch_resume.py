"""The Python `kubernetes` client against the sandbox (pip package `kubernetes`).

Lists config maps, then watches resumed from the list's resourceVersion: it must replay the
change made after the list and then see a change made while the watch is open. Finally a
replace with the stale object gets 409 Conflict. Usage: python3 watch_resume.py http://127.0.0.1:PORT
"""

import sys

from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def main(url: str) -> None:
    cfg = client.Configuration()
    cfg.host = url
    api = client.CoreV1Api(client.ApiClient(cfg))
    ns = "default"

    api.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-a"), data={"k": "v"}))
    listed = api.list_namespaced_config_map(ns)
    rv = listed.metadata.resource_version
    stale = next(i for i in listed.items if i.metadata.name == "py-a")

    # Changed after the list: a watch resumed from `rv` must replay it.
    api.patch_namespaced_config_map("py-a", ns, {"data": {"k": "v2"}})

    seen = []
    w = watch.Watch()
    for event in w.stream(api.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=20):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 1:
            # Changed while the watch is open.
            api.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-b")))
        if len(seen) == 2:
            w.stop()
    assert seen == [("MODIFIED", "py-a"), ("ADDED", "py-b")], seen

    stale.data = {"k": "stale"}
    try:
        api.replace_namespaced_config_map("py-a", ns, stale)
    except ApiException as e:
        assert e.status == 409, e
        assert "Conflict" in e.body, e.body
    else:
        raise AssertionError("stale update was accepted")

    try:
        api.read_namespaced_config_map("missing", ns)
    except ApiException as e:
        assert e.status == 404, e
    else:
        raise AssertionError("missing object was found")
    print("OK")


if __name__ == "__main__":
    main(sys.argv[1])
