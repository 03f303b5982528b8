//! The machines of the rack (`berth instances`): one engine, or the nodes of a
//! swarm with their agents; joining, draining and re-activating nodes.

use crate::error::{Error, Result};
use crate::rack::Rack;
use berth_api::{AgentHello, AgentTls, AgentWelcome, Instance, JoinInstructions};
use berth_store::access::NODE_ROLE;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    let mut command = format!("berth agent --server {} --token {secret}", rack.api_url);
    let trust = rack.agent_trust_flags();
    if !trust.is_empty() {
        command.push(' ');
        command.push_str(&trust);
    }
    Ok(JoinInstructions { token_id, command })
}

/// `drain` moves its processes to other nodes; `active` lets them back.
///
/// Swarm's own drain stops a node's tasks at once, while routers still send
/// to them. So berth first pauses the node (nothing new lands there), rolls
/// the services that have processes on it (health-gated, as `berth
/// restart`: the new processes start elsewhere before the old ones are
/// drained and stopped), and only then sets Swarm's `drain`. Processes that
/// cannot move (their volumes are on this node, or their placement names it)
/// make the drain refused unless `force`, which lets Swarm stop them until
/// the node is active again. A drain that fails leaves the node as it was.
pub async fn set_availability(
    rack: &Rack,
    node: &str,
    availability: &str,
    force: bool,
) -> Result<()> {
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
    if availability == "drain" && n.availability != "drain" {
        let on_node = services_on(rack, &n.hostname)?;
        let (stuck, movable): (Vec<_>, Vec<_>) =
            on_node.into_iter().partition(|s| s.stays_on_one_node);
        if !stuck.is_empty() && !force {
            let names: Vec<String> = stuck
                .iter()
                .map(|s| format!("{} of app {} ({})", s.service, s.app, s.why))
                .collect();
            return Err(Error::Conflict(format!(
                "instance {} runs processes that cannot move to another node: {}; \
                 drain it with --force to stop them until the node is active again, \
                 or change the service's placement (and move its data) first",
                n.hostname,
                names.join(", ")
            )));
        }
        rack.runtime.set_node_availability(&n.id, "pause").await?;
        if let Err(e) = move_processes_off(rack, &n.hostname, &movable).await {
            let back = rack
                .runtime
                .set_node_availability(&n.id, &n.availability)
                .await;
            let state = match back {
                Ok(()) => format!("it is {} again", n.availability),
                Err(b) => format!("and setting it back to {} failed too: {b}", n.availability),
            };
            return Err(Error::Conflict(format!(
                "instance {} was not drained, {state}: moving its processes failed: {e}",
                n.hostname
            )));
        }
    }
    rack.runtime
        .set_node_availability(&n.id, availability)
        .await?;
    rack.nudge.notify_one();
    Ok(())
}

/// A service with processes on the node being drained.
struct ServiceOnNode {
    app: String,
    service: String,
    stays_on_one_node: bool,
    /// Why it stays, when it does.
    why: String,
}

/// The services of the apps' current releases that have a process on
/// `hostname`.
fn services_on(rack: &Rack, hostname: &str) -> Result<Vec<ServiceOnNode>> {
    let mut here: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in rack.store.processes(None)? {
        let on_it = rack
            .observed(&row.app, &row.id)
            .and_then(|o| o.node)
            .is_some_and(|node| node == hostname);
        if on_it {
            here.entry(row.app).or_default().insert(row.service);
        }
    }
    let mut out = Vec::new();
    for (app, services) in here {
        let manifest = rack.current_manifest(&app)?;
        for service in services {
            let spec = manifest.as_ref().and_then(|m| m.services.get(&service));
            let (stays, why) = match spec {
                Some(s) if !s.volumes.is_empty() => (
                    true,
                    format!(
                        "its volume {} is on this node",
                        s.volumes
                            .iter()
                            .map(|v| v.volume.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(s) if s.stays_on_one_node() => (
                    true,
                    format!("its placement {} names this node", s.placement.join(", ")),
                ),
                _ => (false, String::new()),
            };
            out.push(ServiceOnNode {
                app: app.clone(),
                service,
                stays_on_one_node: stays,
                why,
            });
        }
    }
    Ok(out)
}

/// Rolls `services` (which have processes on `hostname`, which must take no
/// new work), so their processes come up elsewhere.
async fn move_processes_off(rack: &Rack, hostname: &str, services: &[ServiceOnNode]) -> Result<()> {
    let mut by_app: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in services {
        by_app
            .entry(s.app.as_str())
            .or_default()
            .insert(s.service.clone());
    }
    for (app, only) in by_app {
        let lock = rack.app_lock(app);
        let _guard = lock.lock().await;
        let Some(current) = rack.store.app(app)?.release else {
            continue;
        };
        let release = rack.store.release(app, &current)?;
        tracing::info!(%app, node = hostname, "moving processes off a node being drained");
        crate::lifecycle::rollout(rack, &release, Some(&only), &crate::progress::unobserved())
            .await?;
    }
    Ok(())
}

/// An agent's hello (its heartbeat): records it, links to the node in the
/// background, and answers how to run the node's router and the certificate
/// for the agent's tunnel.
pub async fn agent_hello(
    rack: &Arc<Rack>,
    token_id: &str,
    hello: AgentHello,
) -> Result<AgentWelcome> {
    let Some(router) = rack.agents.router_settings().cloned() else {
        return Err(Error::Conflict(
            "this server drives one engine and has no use for agents; start it with --swarm on a Swarm manager".into(),
        ));
    };
    let host = berth_agent::tunnel::url_host(&hello.url).ok_or_else(|| {
        Error::Invalid(format!(
            "the agent's URL {:?} is not https://HOST:PORT; give berth agent a valid --advertise",
            hello.url
        ))
    })?;
    let nodes = rack.runtime.nodes().await?;
    if !nodes.iter().any(|n| n.id == hello.node_id) {
        return Err(Error::Invalid(format!(
            "node {} ({}) is not a node of this server's swarm; run `docker swarm join` on it with this swarm's join token, then start the agent again",
            hello.node_id, hello.hostname
        )));
    }
    let tls = rack.agents.cert_for(&hello.node_id, &host, || {
        let issued = rack
            .ca
            .issue(
                &format!("berth agent {}", hello.hostname),
                std::slice::from_ref(&host),
            )
            .map_err(|e| Error::Internal(format!("cannot issue the agent's certificate: {e}")))?;
        Ok::<_, Error>(AgentTls {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            ca_pem: rack.ca.ca_pem().to_string(),
        })
    })?;
    let node_id = hello.node_id.clone();
    rack.agents.hello(token_id, hello);
    rack.agents.ensure_link(&node_id);
    Ok(AgentWelcome {
        rack_id: rack.rack_id.clone(),
        router,
        tls,
    })
}
