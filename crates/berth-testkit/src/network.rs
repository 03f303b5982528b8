//! App networks on loopback. Each network gets a /24 of 127.0.0.0/8 that no
//! other network of this process has, so a program really listens on its
//! container's address (Linux routes all of 127/8 to `lo`) and a health check
//! or router on the host reaches it there.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Subnets are 127.<FIRST_OCTET + n / 256>.<n % 256>.0/24: clear of 127.0.0.0/16,
/// where the host's own loopback names (127.0.0.1, 127.0.0.53, 127.0.1.1) live.
const FIRST_OCTET: u32 = 64;
const SUBNETS: u32 = (256 - FIRST_OCTET) * 256;
/// .0 is the network, .1 its gateway, .255 broadcast.
const FIRST_HOST: u8 = 2;
const LAST_HOST: u8 = 254;

/// The next subnet of this process. It starts at a random one, so that test
/// processes running side by side on one machine rarely share addresses.
fn next_subnet() -> [u8; 3] {
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let counter = NEXT.get_or_init(|| AtomicU32::new(rand::random::<u32>() % SUBNETS));
    let n = counter.fetch_add(1, Ordering::Relaxed) % SUBNETS;
    // Both parts fit a byte: n / 256 < 256 - FIRST_OCTET.
    [127, (FIRST_OCTET + n / 256) as u8, (n % 256) as u8]
}

pub(crate) struct Network {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    subnet: [u8; 3],
    in_use: BTreeSet<u8>,
    /// Addresses are handed out in turn, as the engine's allocator does, so a
    /// freed one is not reused at once (a client may still hold it).
    last: u8,
}

impl Network {
    pub(crate) fn new(id: String, labels: BTreeMap<String, String>) -> Network {
        Network {
            id,
            labels,
            subnet: next_subnet(),
            in_use: BTreeSet::new(),
            last: FIRST_HOST - 1,
        }
    }

    pub(crate) fn subnet(&self) -> String {
        let [a, b, c] = self.subnet;
        format!("{a}.{b}.{c}.0/24")
    }

    pub(crate) fn allocate(&mut self) -> Option<Ipv4Addr> {
        let hosts = FIRST_HOST..=LAST_HOST;
        let count = usize::from(LAST_HOST - FIRST_HOST) + 1;
        let start = if self.last >= LAST_HOST {
            FIRST_HOST
        } else {
            self.last + 1
        };
        let host = hosts
            .clone()
            .cycle()
            .skip(usize::from(start - FIRST_HOST))
            .take(count)
            .find(|h| !self.in_use.contains(h))?;
        self.in_use.insert(host);
        self.last = host;
        let [a, b, c] = self.subnet;
        Some(Ipv4Addr::new(a, b, c, host))
    }

    pub(crate) fn release(&mut self, ip: Ipv4Addr) {
        let [a, b, c, host] = ip.octets();
        if [a, b, c] == self.subnet {
            self.in_use.remove(&host);
        }
    }

    pub(crate) fn has_endpoints(&self) -> bool {
        !self.in_use.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_get_their_own_subnets_and_hand_out_addresses_in_turn() {
        let mut a = Network::new("a".into(), BTreeMap::new());
        let b = Network::new("b".into(), BTreeMap::new());
        assert_ne!(a.subnet(), b.subnet());
        let first = a.allocate().unwrap();
        assert_eq!(first.octets()[3], 2);
        let second = a.allocate().unwrap();
        assert_eq!(second.octets()[3], 3);
        a.release(first);
        assert_eq!(a.allocate().unwrap().octets()[3], 4, "not reused at once");
        for _ in 5..=254 {
            a.allocate().unwrap();
        }
        assert_eq!(a.allocate(), Some(first), "wraps to what is free");
        assert_eq!(a.allocate(), None);
        assert!(a.has_endpoints());
    }
}
