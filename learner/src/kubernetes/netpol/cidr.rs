//! IP networks as NetworkPolicy `ipBlock`s name them. IPv4-mapped IPv6 addresses and networks
//! are held as IPv4, so `::ffff:10.0.0.1` and `10.0.0.1` are the same address.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// An IP network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A network that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {0:?}")]
pub struct CidrError(pub String);

/// `ip` as IPv4 when it is an IPv4-mapped IPv6 address, else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    let clear = |bits: u32| bits.saturating_sub(u32::from(prefix));
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(clear(32)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(clear(128)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

impl Cidr {
    /// The network of `ip` with a `prefix`-bit mask; `None` when the prefix is too long. An
    /// IPv4-mapped network of at least 96 bits becomes the IPv4 network it maps.
    pub fn new(ip: IpAddr, prefix: u8) -> Option<Cidr> {
        if prefix > max_prefix(ip) {
            return None;
        }
        let (ip, prefix) = match (ip, canonical(ip)) {
            (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if prefix >= 96 => (v4, prefix - 96),
            _ => (ip, prefix),
        };
        Some(Cidr {
            addr: masked(ip, prefix),
            prefix,
        })
    }

    /// The single address `ip` (/32 or /128).
    pub fn host(ip: IpAddr) -> Cidr {
        let ip = canonical(ip);
        Cidr {
            addr: ip,
            prefix: max_prefix(ip),
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for a single address (/32, /128).
    pub fn is_host(&self) -> bool {
        self.prefix == max_prefix(self.addr)
    }

    /// Whether `ip` lies in the network (IPv4-mapped addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && masked(ip, self.prefix) == self.addr
    }

    /// Whether `other` lies wholly in this network.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// True when the whole network is loopback (inside 127.0.0.0/8, or `::1`).
    pub fn is_loopback(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => self.prefix >= 8 && a.is_loopback(),
            IpAddr::V6(a) => self.prefix == 128 && a.is_loopback(),
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `addr/prefix`, or a bare address as a single-address network.
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let err = || CidrError(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix = match prefix {
            Some(p) => p.parse().map_err(|_| err())?,
            None => max_prefix(ip),
        };
        Cidr::new(ip, prefix).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().expect(s)
    }

    #[test]
    fn parses_masks_and_maps() {
        assert_eq!(c("10.1.2.3/24").to_string(), "10.1.2.0/24");
        assert_eq!(c("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(c("::ffff:10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(c("::ffff:10.1.2.0/120").to_string(), "10.1.2.0/24");
        assert_eq!(c("2001:db8::1/64").to_string(), "2001:db8::/64");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn containment_and_loopback() {
        assert!(c("10.0.0.0/8").contains("10.9.9.9".parse().unwrap()));
        assert!(c("10.0.0.0/8").contains("::ffff:10.9.9.9".parse().unwrap()));
        assert!(!c("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(!c("0.0.0.0/0").contains("::1".parse().unwrap()));
        assert!(c("0.0.0.0/0").covers(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/8").covers(&c("0.0.0.0/0")));
        assert!(c("127.0.0.0/8").is_loopback());
        assert!(c("127.0.0.1").is_loopback());
        assert!(c("::1").is_loopback());
        assert!(c("::ffff:127.0.0.1").is_loopback());
        assert!(!c("0.0.0.0/0").is_loopback());
        assert!(!c("::/0").is_loopback());
    }
}
