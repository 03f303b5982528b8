//! The agents of a swarm's nodes, as their hellos (`POST /agent/hello`, every
//! few seconds) made them known. Kept in memory: after a server restart the
//! agents say hello again within seconds.

use super::Rack;
use berth_api::AgentHello;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// An agent whose last hello is older than this counts as lost.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One node's agent as last heard from.
#[derive(Debug, Clone)]
pub struct Agent {
    pub hello: AgentHello,
    /// The node token it introduced itself with.
    pub token: String,
    pub last_hello: Instant,
}

impl Agent {
    pub fn alive(&self) -> bool {
        self.last_hello.elapsed() < AGENT_TIMEOUT
    }
}

#[derive(Debug, Default)]
pub struct Agents {
    by_node: std::sync::Mutex<HashMap<String, Agent>>,
}

impl Agents {
    /// Records a hello; `true` when it is the first from this node or its
    /// address or key changed (the caller then has new work for it).
    pub fn hello(&self, token: &str, hello: AgentHello) -> bool {
        let mut agents = self.by_node.lock().unwrap_or_else(|p| p.into_inner());
        let changed = agents
            .get(&hello.node_id)
            .is_none_or(|a| a.hello.url != hello.url || a.hello.key != hello.key || !a.alive());
        agents.insert(
            hello.node_id.clone(),
            Agent {
                hello,
                token: token.to_string(),
                last_hello: Instant::now(),
            },
        );
        changed
    }

    pub fn get(&self, node_id: &str) -> Option<Agent> {
        self.by_node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node_id)
            .cloned()
    }

    /// Every agent heard from recently.
    pub fn alive(&self) -> Vec<Agent> {
        self.by_node
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|a| a.alive())
            .cloned()
            .collect()
    }
}

impl Rack {
    /// The agent of `node_id`, if one ever said hello.
    pub fn agent(&self, node_id: &str) -> Option<Agent> {
        self.agents.get(node_id)
    }
}
