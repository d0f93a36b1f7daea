//! The descriptor set served by reflection must describe both services, or
//! grpcurl cannot list or call them.

use prost::Message;
use prost_types::FileDescriptorSet;

#[test]
fn descriptor_set_describes_both_services() {
    let set =
        FileDescriptorSet::decode(wfe_proto::FILE_DESCRIPTOR_SET).expect("valid descriptor set");
    let services: Vec<String> = set
        .file
        .iter()
        .flat_map(|f| {
            let package = f.package().to_string();
            f.service
                .iter()
                .map(move |s| format!("{package}.{}", s.name()))
        })
        .collect();
    assert!(
        services.contains(&"kubernaut.workflowexecution.v1.WorkflowExecutionService".to_string()),
        "{services:?}"
    );
    assert!(
        services.contains(&"kubernaut.workflowexecution.agent.v1.AgentSessionService".to_string()),
        "{services:?}"
    );
}

#[test]
fn descriptor_set_lets_clients_decode_bad_request_details() {
    let set =
        FileDescriptorSet::decode(wfe_proto::FILE_DESCRIPTOR_SET).expect("valid descriptor set");
    let rpc = set
        .file
        .iter()
        .find(|f| f.package() == "google.rpc")
        .expect("google.rpc error details are in the descriptor set");
    assert!(rpc.message_type.iter().any(|m| m.name() == "BadRequest"));
}
