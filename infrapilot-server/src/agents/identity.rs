//! Who an agent is, read from its client certificate (which the instance CA signed, so its
//! names are ours).

use infrapilot_core::ids::{AgentId, OrgId};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{AGENT_URN, ORG_URN};

/// The agent and organization a client certificate names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentIdentity {
    /// The agent.
    pub agent: AgentId,
    /// Its organization.
    pub org: OrgId,
}

/// Reads the agent and organization from a client certificate's SAN URIs.
pub fn identity_from_der(der: &[u8]) -> Option<AgentIdentity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut agent = None;
    let mut org = None;
    for name in &san.value.general_names {
        if let GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(AGENT_URN) {
                agent = id.parse().ok();
            } else if let Some(id) = uri.strip_prefix(ORG_URN) {
                org = id.parse().ok();
            }
        }
    }
    Some(AgentIdentity {
        agent: agent?,
        org: org?,
    })
}
