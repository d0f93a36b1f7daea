use super::*;
use wfe_proto::agent::ExecutionKey;

fn owner(uid: &str, token: u64, attempt: u32) -> Owner {
    Owner {
        key: ExecutionKey {
            name: "we-1".into(),
            namespace: "ns".into(),
            uid: uid.into(),
        },
        attempt,
        fencing_token: token,
        workflow_id: "wf".into(),
        target: "t".into(),
    }
}

fn assign(uid: &str, token: u64, attempt: u32) -> Assign {
    Assign {
        execution: Some(ExecutionKey {
            name: "we-1".into(),
            namespace: "ns".into(),
            uid: uid.into(),
        }),
        attempt,
        fencing_token: token,
        ..Default::default()
    }
}

#[test]
fn collision_adopts_only_this_executions_primitive() {
    let foreign = |o: &str| Collision::Foreign { other: o.into() };
    let cases = [
        (Some(owner("u1", 1, 1)), "u1", Collision::Adopt),
        (Some(owner("u2", 1, 1)), "u1", foreign("u2")),
        (None, "u1", foreign("nobody")),
    ];
    for (existing, uid, want) in cases {
        assert_eq!(
            collision(existing.as_ref(), uid),
            want,
            "{existing:?} vs {uid}"
        );
    }
}

#[test]
fn collision_message_names_the_other_owner() {
    assert_eq!(
        collision_message("PipelineRun", "wfe-a", "u2"),
        "PipelineRun wfe-a already exists and belongs to execution u2"
    );
}

#[test]
fn fencing_patch_only_for_a_newer_token() {
    let cases = [
        (Some(owner("u1", 5, 1)), 6, true),
        (Some(owner("u1", 5, 1)), 5, false),
        (Some(owner("u1", 5, 1)), 4, false),
        (None, 1, true),
        (None, 0, false),
    ];
    for (existing, token, want) in cases {
        let a = assign("u1", token, 2);
        assert_eq!(needs_fencing_patch(existing.as_ref(), &a), want, "{token}");
    }
}

#[test]
fn adopted_owner_keeps_the_newer_token_and_takes_the_attempt() {
    let cases = [
        (Some(owner("u1", 5, 1)), 7, 7),
        (Some(owner("u1", 9, 1)), 7, 9),
        (None, 7, 7),
    ];
    for (existing, token, want) in cases {
        let got = adopted_owner(existing, &assign("u1", token, 3));
        assert_eq!((got.fencing_token, got.attempt), (want, 3));
        assert_eq!(got.key.uid, "u1");
    }
}

#[test]
fn release_never_deletes_another_executions_primitive() {
    let cases = [
        (Some(owner("u1", 1, 1)), "u1", true),
        (Some(owner("u2", 1, 1)), "u1", false),
        (None, "u1", true),
    ];
    for (cached, uid, want) in cases {
        assert_eq!(may_release(cached.as_ref(), uid), want, "{cached:?}");
    }
}

#[test]
fn namespace_refusal_only_for_another_namespace() {
    assert_eq!(namespace_refusal("Job", "wf", ""), None);
    assert_eq!(namespace_refusal("Job", "wf", "wf"), None);
    assert_eq!(
        namespace_refusal("Job", "wf", "other").as_deref(),
        Some("this agent runs Jobs in namespace wf, not other")
    );
}
