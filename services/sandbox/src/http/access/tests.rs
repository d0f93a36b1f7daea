use serde_json::json;

use super::*;

fn sa(ns: &str, name: &str) -> User {
    with_authenticated(&format!("system:serviceaccount:{ns}:{name}"), Vec::new())
}

fn attrs<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    ns: Option<&'a str>,
) -> Attributes<'a> {
    Attributes {
        verb,
        group,
        resource,
        subresource: None,
        namespace: ns,
        name: None,
    }
}

/// Headers with this `Authorization` value.
fn authorization(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::AUTHORIZATION, value.parse().unwrap());
    h
}

fn put(store: &Store, plural: &str, ns: &str, obj: Value) {
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    store
        .create(
            &ResKey::new("rbac.authorization.k8s.io", plural),
            &ObjKey::new(ns, &name),
            obj,
        )
        .unwrap();
}

/// The job-agent's Role and RoleBinding as deploy/ has them.
fn job_agent_rbac() -> Store {
    let store = Store::new(100);
    put(
        &store,
        "roles",
        "work",
        json!({
            "metadata": {"name": "job-agent", "namespace": "work"},
            "rules": [
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch", "create"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["p1"]}
            ]
        }),
    );
    put(
        &store,
        "rolebindings",
        "work",
        json!({
            "metadata": {"name": "job-agent", "namespace": "work"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "job-agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "job-agent", "namespace": "system"}]
        }),
    );
    store
}

#[test]
fn a_role_binding_allows_its_rules_in_its_namespace_only() {
    let store = job_agent_rbac();
    let agent = sa("system", "job-agent");
    assert!(
        authorize(
            &store,
            &agent,
            &attrs("create", "batch", "jobs", Some("work"))
        )
        .is_ok()
    );
    assert!(
        authorize(
            &store,
            &agent,
            &attrs("watch", "batch", "jobs", Some("work"))
        )
        .is_ok()
    );
    let elsewhere = authorize(
        &store,
        &agent,
        &attrs("create", "batch", "jobs", Some("other")),
    );
    assert_eq!(
        elsewhere.unwrap_err().message,
        "jobs.batch is forbidden: User \"system:serviceaccount:system:job-agent\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"other\""
    );
    let delete = Attributes {
        name: Some("wfe-1"),
        ..attrs("delete", "batch", "jobs", Some("work"))
    };
    assert!(
        authorize(&store, &agent, &delete).is_err(),
        "no delete verb"
    );
    let everywhere = authorize(&store, &agent, &attrs("list", "batch", "jobs", None));
    assert!(
        everywhere
            .unwrap_err()
            .message
            .ends_with("at the cluster scope")
    );
    // Another service account of the same name in another namespace is not bound.
    assert!(
        authorize(
            &store,
            &sa("work", "job-agent"),
            &attrs("list", "batch", "jobs", Some("work"))
        )
        .is_err()
    );
}

#[test]
fn resource_names_and_subresources_must_match_exactly() {
    let store = job_agent_rbac();
    let agent = sa("system", "job-agent");
    let pod = |name| Attributes {
        name,
        ..attrs("get", "", "pods", Some("work"))
    };
    assert!(authorize(&store, &agent, &pod(Some("p1"))).is_ok());
    assert!(authorize(&store, &agent, &pod(Some("p2"))).is_err());
    let status = Attributes {
        subresource: Some("status"),
        name: Some("j"),
        ..attrs("get", "batch", "jobs", Some("work"))
    };
    let refused = authorize(&store, &agent, &status).unwrap_err();
    assert!(
        refused
            .message
            .contains("cannot get resource \"jobs/status\""),
        "{}",
        refused.message
    );

    let rule = json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]});
    assert!(allows(&rule, &status));
    assert!(!allows(&rule, &attrs("get", "batch", "jobs", Some("work"))));
}

#[test]
fn cluster_role_bindings_and_groups_bind_everywhere_and_masters_may_do_anything() {
    let store = Store::new(100);
    put(
        &store,
        "clusterroles",
        "",
        json!({
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
        }),
    );
    put(
        &store,
        "clusterrolebindings",
        "",
        json!({
            "metadata": {"name": "readers"},
            "roleRef": {"kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "Group", "name": "readers"}]
        }),
    );
    let reader = with_authenticated("ann", vec!["readers".into()]);
    assert!(authorize(&store, &reader, &attrs("list", "", "configmaps", Some("a"))).is_ok());
    assert!(authorize(&store, &reader, &attrs("list", "", "configmaps", None)).is_ok());
    assert!(
        authorize(
            &store,
            &reader,
            &attrs("create", "", "configmaps", Some("a"))
        )
        .is_err()
    );
    let stranger = with_authenticated("bob", Vec::new());
    assert!(authorize(&store, &stranger, &attrs("list", "", "configmaps", None)).is_err());
    let admin = with_authenticated("root", vec![MASTERS.into()]);
    assert!(authorize(&store, &admin, &attrs("delete", "x", "y", None)).is_ok());
}

#[test]
fn token_files_read_as_kube_apiserver_reads_them() {
    let access = Access::from_token_file(
        "# comment\nt1,alice,uid-1\nt2,system:serviceaccount:ns:sa,uid-2,\"system:masters,devs\"\n",
    )
    .unwrap();
    let user = |token: &str| access.authenticate(&authorization(&format!("Bearer {token}")));
    assert_eq!(user("t1").unwrap().groups, vec![AUTHENTICATED.to_owned()]);
    let t2 = user("t2").unwrap();
    assert_eq!(t2.name, "system:serviceaccount:ns:sa");
    assert!(t2.is_master() && t2.groups.contains(&"devs".to_owned()));
    assert_eq!(user("nope").unwrap_err().code, 401);
    let anonymous = access.authenticate(&HeaderMap::new()).unwrap();
    assert_eq!(anonymous.name, "system:anonymous");
    assert_eq!(anonymous.groups, vec!["system:unauthenticated".to_owned()]);
    let closed = access.clone().with_anonymous(false);
    assert_eq!(
        closed.authenticate(&HeaderMap::new()).unwrap_err().code,
        401
    );
    let bad = Access::from_token_file("t1\n").unwrap_err();
    assert!(bad.contains("line 1: missing user"), "{bad}");
    assert!(
        Access::from_token_file("t1,alice\n").is_ok(),
        "the uid may be missing"
    );
    let other_scheme = access.authenticate(&authorization("Basic YWxpY2U6cHc="));
    assert_eq!(other_scheme.unwrap().name, "system:anonymous");
    let lower = access.authenticate(&authorization("bearer t1"));
    assert_eq!(lower.unwrap().name, "alice");
}

#[test]
fn verbs_follow_method_name_and_watch() {
    assert_eq!(verb(&Method::GET, true, false), "get");
    assert_eq!(verb(&Method::GET, false, true), "watch");
    assert_eq!(verb(&Method::GET, false, false), "list");
    assert_eq!(verb(&Method::DELETE, false, false), "deletecollection");
    assert_eq!(verb(&Method::PATCH, true, false), "patch");
}
