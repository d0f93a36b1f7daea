//! Domain model and decisions of the WorkflowExecution service.
