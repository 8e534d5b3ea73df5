//! Local source addresses for the connections (`--source-addrs 127.0.0.2-127.0.0.9` or a
//! comma-separated list): one host can then open more connections to one target than one
//! address's ephemeral ports allow. Parsing only; the connections bind (see [`crate::conn`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Most addresses one range may name, to catch a typo such as `10.0.0.1-10.9.0.1`.
pub const MAX_ADDRS: usize = 65_536;

/// The local addresses connections are opened from, used round-robin; empty: the kernel's
/// choice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceAddrs(Vec<IpAddr>);

impl SourceAddrs {
    /// The address of connection number `i`, if any were given.
    pub fn pick(&self, i: usize) -> Option<IpAddr> {
        (!self.0.is_empty()).then(|| self.0[i % self.0.len()])
    }

    /// The addresses, in order.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.0
    }
}

impl FromStr for SourceAddrs {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut addrs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                None => addrs.push(ip(part)?),
                Some((a, b)) => {
                    range(ip(a)?, ip(b)?, &mut addrs).map_err(|why| format!("{part:?}: {why}"))?
                }
            }
            if addrs.len() > MAX_ADDRS {
                return Err(format!("{s:?}: more than {MAX_ADDRS} addresses"));
            }
        }
        if addrs.is_empty() {
            return Err(
                "expected addresses such as 127.0.0.2-127.0.0.9 or 10.0.0.5,10.0.0.6".into(),
            );
        }
        Ok(SourceAddrs(addrs))
    }
}

impl fmt::Display for SourceAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("any"),
            [one] => write!(f, "{one}"),
            [first, .., last] if is_range(&self.0) => write!(f, "{first}-{last}"),
            all => {
                let text: Vec<String> = all.iter().map(IpAddr::to_string).collect();
                f.write_str(&text.join(","))
            }
        }
    }
}

fn ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))
}

/// Appends `a` through `b` (same family, `a <= b`) to `out`.
fn range(a: IpAddr, b: IpAddr, out: &mut Vec<IpAddr>) -> Result<(), String> {
    let (lo, hi) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
        _ => return Err("both ends must be IPv4 or both IPv6".into()),
    };
    if lo > hi {
        return Err("the range runs backwards".into());
    }
    if hi - lo >= MAX_ADDRS as u128 {
        return Err(format!("more than {MAX_ADDRS} addresses"));
    }
    out.extend((lo..=hi).map(|n| match a {
        // INVARIANT: an IPv4 range stays within u32.
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(n)),
    }));
    Ok(())
}

/// True when the addresses are consecutive, as a range writes them.
fn is_range(addrs: &[IpAddr]) -> bool {
    let num = |a: &IpAddr| match a {
        IpAddr::V4(v) => (4, u128::from(u32::from(*v))),
        IpAddr::V6(v) => (6, u128::from(*v)),
    };
    addrs.windows(2).all(|w| {
        let (a, b) = (num(&w[0]), num(&w[1]));
        a.0 == b.0 && a.1 + 1 == b.1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists_parse_and_print() {
        let r: SourceAddrs = "127.0.0.2-127.0.0.9".parse().unwrap();
        assert_eq!(r.addrs().len(), 8);
        assert_eq!(r.pick(0), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(r.pick(9), Some("127.0.0.3".parse().unwrap()));
        assert_eq!(r.to_string(), "127.0.0.2-127.0.0.9");
        let l: SourceAddrs = "10.0.0.5, 10.0.0.9,::1".parse().unwrap();
        assert_eq!(l.to_string(), "10.0.0.5,10.0.0.9,::1");
        let wrap: SourceAddrs = "10.0.0.255-10.0.1.1".parse().unwrap();
        assert_eq!(wrap.addrs().len(), 3);
        assert_eq!(SourceAddrs::default().pick(3), None);
        assert_eq!(SourceAddrs::default().to_string(), "any");
        for bad in [
            "",
            "127.0.0.9-127.0.0.2",
            "127.0.0.1-::1",
            "localhost",
            "10.0.0.0-10.2.0.0",
        ] {
            assert!(bad.parse::<SourceAddrs>().is_err(), "{bad:?}");
        }
    }
}
