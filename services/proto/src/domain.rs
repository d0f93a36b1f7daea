//! The wire forms of wfe-core's enums, written once for every crate that speaks the
//! protocol (the API and the agents).

use wfe_core::FailureReason;

use crate::v1;

impl From<FailureReason> for v1::FailureReason {
    fn from(r: FailureReason) -> Self {
        use v1::FailureReason as P;
        match r {
            FailureReason::OOMKilled => P::OomKilled,
            FailureReason::DeadlineExceeded => P::DeadlineExceeded,
            FailureReason::Forbidden => P::Forbidden,
            FailureReason::ResourceExhausted => P::ResourceExhausted,
            FailureReason::ConfigurationError => P::ConfigurationError,
            FailureReason::ImagePullBackOff => P::ImagePullBackOff,
            FailureReason::TaskFailed => P::TaskFailed,
            FailureReason::UnsupportedEngine => P::UnsupportedEngine,
            FailureReason::Cancelled => P::Cancelled,
            FailureReason::AgentLost => P::AgentLost,
            FailureReason::Unknown => P::Unknown,
        }
    }
}

/// UNSPECIFIED (a sender that set none) is Unknown.
impl From<v1::FailureReason> for FailureReason {
    fn from(r: v1::FailureReason) -> Self {
        use v1::FailureReason as P;
        match r {
            P::OomKilled => FailureReason::OOMKilled,
            P::DeadlineExceeded => FailureReason::DeadlineExceeded,
            P::Forbidden => FailureReason::Forbidden,
            P::ResourceExhausted => FailureReason::ResourceExhausted,
            P::ConfigurationError => FailureReason::ConfigurationError,
            P::ImagePullBackOff => FailureReason::ImagePullBackOff,
            P::TaskFailed => FailureReason::TaskFailed,
            P::UnsupportedEngine => FailureReason::UnsupportedEngine,
            P::Cancelled => FailureReason::Cancelled,
            P::AgentLost => FailureReason::AgentLost,
            P::Unknown | P::Unspecified => FailureReason::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_survives_the_wire() {
        for r in FailureReason::ALL {
            let wire = v1::FailureReason::from(r);
            assert_ne!(wire, v1::FailureReason::Unspecified, "{r}");
            assert_eq!(FailureReason::from(wire), r);
        }
        assert_eq!(
            FailureReason::from(v1::FailureReason::Unspecified),
            FailureReason::Unknown
        );
    }
}
