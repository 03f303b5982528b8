//! Address pools for app networks. Each app gets its own bridge network, and
//! dockerd's default pools hold only about 30 of them; a server given a pool
//! (`berth server --network-pool 10.210.0.0/16`) carves one /24 per app from it
//! instead, skipping every subnet the engine already uses.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Prefix length of each app network carved from a pool: 254 addresses.
pub const APP_PREFIX: u8 = 24;

/// An IPv4 network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    base: u32,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error(
        "network pool {0:?} is not an IPv4 CIDR such as 10.210.0.0/16; give the first address and a prefix length"
    )]
    Syntax(String),
    #[error(
        "network pool {0} is smaller than one app network (/{APP_PREFIX}); use a prefix of /{APP_PREFIX} or shorter, e.g. /16"
    )]
    TooSmall(Ipv4Net),
    #[error("network pool {0} has host bits set; did you mean {1}? Give the pool's first address")]
    NotAligned(String, Ipv4Net),
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then(|| Ipv4Net {
            base: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    fn last(&self) -> u32 {
        self.base | !mask(self.prefix)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = PoolError;

    /// Strict: the address must be the network's first (`10.0.0.5/8` is refused).
    fn from_str(text: &str) -> Result<Self, PoolError> {
        let syntax = || PoolError::Syntax(text.to_string());
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        let net = Ipv4Net::new(addr, prefix).ok_or_else(syntax)?;
        if u32::from(addr) != net.base {
            return Err(PoolError::NotAligned(text.to_string(), net));
        }
        Ok(net)
    }
}

/// A pool that app networks are carved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkPool(Ipv4Net);

impl FromStr for NetworkPool {
    type Err = PoolError;

    fn from_str(text: &str) -> Result<Self, PoolError> {
        let net: Ipv4Net = text.parse()?;
        if net.prefix > APP_PREFIX {
            return Err(PoolError::TooSmall(net));
        }
        Ok(NetworkPool(net))
    }
}

impl fmt::Display for NetworkPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl NetworkPool {
    /// The first /24 of the pool that overlaps none of `used`; `None` when the
    /// pool is full.
    pub fn free_subnet(&self, used: &[Ipv4Net]) -> Option<Ipv4Net> {
        let step = 1u64 << (32 - APP_PREFIX);
        (0..self.capacity())
            .filter_map(|i| u32::try_from(u64::from(self.0.base) + i * step).ok())
            .map(|base| Ipv4Net {
                base,
                prefix: APP_PREFIX,
            })
            .find(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
    }

    /// How many app networks the pool holds.
    pub fn capacity(&self) -> u64 {
        1u64 << (APP_PREFIX - self.0.prefix)
    }
}

/// Parses the subnets the engine reports, skipping IPv6 and anything odd.
pub fn parse_used<'a>(subnets: impl IntoIterator<Item = &'a str>) -> Vec<Ipv4Net> {
    subnets
        .into_iter()
        .filter_map(|s| {
            let (addr, prefix) = s.split_once('/')?;
            Ipv4Net::new(addr.parse().ok()?, prefix.parse().ok()?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("a valid CIDR")
    }

    #[test]
    fn pools_parse_strictly_with_clear_errors() {
        let pool: NetworkPool = "10.210.0.0/16".parse().expect("valid");
        assert_eq!(pool.to_string(), "10.210.0.0/16");
        assert_eq!(pool.capacity(), 256);
        let err = "10.210.0.0/25".parse::<NetworkPool>().unwrap_err();
        assert!(err.to_string().contains("/24 or shorter"), "{err}");
        let err = "10.210.3.0/16".parse::<NetworkPool>().unwrap_err();
        assert!(
            err.to_string().contains("did you mean 10.210.0.0/16"),
            "{err}"
        );
        for bad in ["10.210.0.0", "10.210.0/16", "ten/8", "10.0.0.0/33", ""] {
            let err = bad.parse::<NetworkPool>().unwrap_err();
            assert!(err.to_string().contains("10.210.0.0/16"), "{bad}: {err}");
        }
    }

    #[test]
    fn subnets_in_use_are_skipped() {
        let pool: NetworkPool = "10.210.0.0/22".parse().expect("valid");
        assert_eq!(pool.free_subnet(&[]), Some(net("10.210.0.0/24")));
        let used = [net("10.210.0.0/24"), net("10.210.1.0/24")];
        assert_eq!(pool.free_subnet(&used), Some(net("10.210.2.0/24")));
        // A wider network in use covers several candidates at once.
        let used = [net("10.210.0.0/23"), net("172.17.0.0/16")];
        assert_eq!(pool.free_subnet(&used), Some(net("10.210.2.0/24")));
        let used = [net("10.0.0.0/8")];
        assert_eq!(pool.free_subnet(&used), None);
    }

    #[test]
    fn engine_subnets_parse_and_ipv6_is_ignored() {
        let used = parse_used(["172.18.0.0/16", "fd00::/64", "junk", "10.1.2.0/24"]);
        assert_eq!(used, vec![net("172.18.0.0/16"), net("10.1.2.0/24")]);
    }
}
