//! The machines of the rack (`berth instances`): one engine, or the nodes of a
//! swarm with their agents; joining, draining and re-activating nodes.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_api::{Instance, JoinInstructions};
use berth_store::access::NODE_ROLE;

/// Every node with its agent and the berth processes it runs.
pub async fn list(rack: &Rack) -> Result<Vec<Instance>> {
    let nodes = rack.runtime.nodes().await?;
    let running = rack.running_processes();
    let swarm = rack.swarm;
    Ok(nodes
        .into_iter()
        .map(|n| {
            // On one engine every process is on its one node.
            let processes = running
                .iter()
                .filter(|(app, id, _)| {
                    rack.observed(app, id)
                        .and_then(|o| o.node)
                        .is_none_or(|node| node == n.hostname)
                })
                .count() as u32;
            let agent = swarm.then(|| match rack.agent(&n.id) {
                Some(a) if a.alive() => "connected".to_string(),
                Some(_) => "lost".to_string(),
                None => "missing".to_string(),
            });
            Instance {
                id: n.id,
                hostname: n.hostname,
                role: n.role,
                status: n.status,
                availability: n.availability,
                agent,
                processes,
                cpus: n.cpus,
                memory: n.memory,
            }
        })
        .collect())
}

/// A new node token and the command that starts an agent with it.
pub fn join(rack: &Rack) -> Result<JoinInstructions> {
    if !rack.swarm {
        return Err(Error::Conflict(
            "this server drives one engine and needs no agents; start it with --swarm on a Swarm manager to add nodes".into(),
        ));
    }
    let (token_id, secret) = rack.store.create_token(NODE_ROLE, None)?;
    let command = format!(
        "berth agent --server {} --token {secret}{}",
        rack.api_url,
        rack.agent_trust_flags()
    );
    Ok(JoinInstructions { token_id, command })
}

/// `drain` moves its processes to other nodes; `active` lets them back.
pub async fn set_availability(rack: &Rack, node: &str, availability: &str) -> Result<()> {
    if !rack.swarm {
        return Err(Error::Conflict(
            "this server drives one engine, which has no nodes to drain; start it with --swarm on a Swarm manager to spread apps over several".into(),
        ));
    }
    let known = rack.runtime.nodes().await?;
    let Some(n) = known
        .iter()
        .find(|n| n.id == node || n.id.starts_with(node) || n.hostname == node)
    else {
        return Err(Error::NotFound(format!(
            "no instance {node}; list them with `berth instances`"
        )));
    };
    rack.runtime
        .set_node_availability(&n.id, availability)
        .await?;
    rack.nudge.notify_one();
    Ok(())
}
