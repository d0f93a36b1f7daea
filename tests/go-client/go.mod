module github.com/kubernaut/workflowexecution/tests/go-client

go 1.26.0

// The stubs of this checkout, not a published version: the test checks them.
replace github.com/kubernaut/workflowexecution/services/proto/go => ../../services/proto/go

require (
	github.com/kubernaut/workflowexecution/services/proto/go v0.0.0-00010101000000-000000000000
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261123191846-1e707ab9fbc2
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)
