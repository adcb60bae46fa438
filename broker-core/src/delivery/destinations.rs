//! Which addresses webhooks may reach. A participant's webhook URL must not become a way
//! into the platform's own network: loopback, private, link-local (cloud metadata at
//! 169.254.169.254 included), shared, multicast and reserved addresses are refused,
//! however they are written (decimal or hex IPv4, IPv4-mapped or NAT64 IPv6) and whatever
//! a name resolves to. The check applies to the addresses actually connected to, so a
//! name that resolves differently the second time (DNS rebinding) gains nothing. Test
//! environments may allow-list ranges explicitly (e.g. loopback for local sinks).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The addresses webhooks may connect to: public ones, and any allow-listed range.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allowed: Vec<IpNet>,
}

impl Destinations {
    /// Public addresses only.
    pub fn public() -> Self {
        Self::default()
    }

    /// Public addresses and the given ranges (test environments only).
    pub fn allowing(ranges: Vec<IpNet>) -> Self {
        Self { allowed: ranges }
    }

    /// The allow-listed ranges.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a connection to `ip` is permitted.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|n| n.contains(&ip)) || is_public(ip)
    }

    /// Checks a URL before it is used: an `http`/`https` URL whose host, if it is an
    /// address, is permitted (names are checked when they are resolved).
    pub fn check_url(&self, url: &url::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {} is not allowed", url.scheme()));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err("no host".into()),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(format!("{ip} is not a public address"))
        }
    }
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0                                  // "this network"
        || (a == 100 && (64..128).contains(&b))   // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)          // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))      // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        // NAT64 (64:ff9b::/96).
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        // 6to4 (2002::/16) embeds an IPv4 address.
        return is_public_v4(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || s[0..6] == [0, 0, 0, 0, 0, 0]          // IPv4-compatible (deprecated) and ::/96
        || (s[0] & 0xfe00) == 0xfc00               // unique local (fc00::/7)
        || (s[0] & 0xffc0) == 0xfe80               // link-local (fe80::/10)
        || (s[0] & 0xffc0) == 0xfec0               // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8)      // documentation
        || (s[0] == 0x2001 && s[1] == 0)           // Teredo
        || s[0] == 0x0100) // discard-only (100::/64)
}

/// A resolver for the webhook client that drops every address `destinations` does not
/// permit; a name left with none fails to resolve, so nothing connects to it.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    destinations: Arc<Destinations>,
}

impl GuardedResolver {
    /// A resolver enforcing `destinations`.
    pub fn new(destinations: Arc<Destinations>) -> Self {
        Self { destinations }
    }
}

/// Why a name was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.destinations.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = all.iter().copied().filter(|a| destinations.permits(a.ip())).collect();
            if permitted.is_empty() {
                let found: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(Box::new(Refused(format!(
                    "destination refused: {host} resolves to no public address ({})",
                    found.join(", ")
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        Destinations::public()
            .check_url(&url::Url::parse(url).expect("url"))
            .is_err()
    }

    #[test]
    fn internal_addresses_are_refused_however_written() {
        for url in [
            "http://127.0.0.1/hook",
            "http://127.1/hook",
            "http://2130706433/hook", // decimal 127.0.0.1
            "http://0x7f000001/hook", // hex
            "http://0x7f.0.0.1/hook", // mixed
            "http://0177.0.0.1/hook", // octal
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook", // IPv4-mapped
            "http://[::ffff:a9fe:a9fe]/hook", // mapped metadata address
            "http://10.1.2.3/hook",
            "http://172.16.0.1/hook",
            "http://192.168.1.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/hook",
            "http://0.0.0.0/hook",
            "http://[fd00:ec2::254]/hook",
            "http://[fe80::1]/hook",
            "http://[64:ff9b::a00:1]/hook", // NAT64 of 10.0.0.1
            "http://[2002:7f00:1::1]/hook", // 6to4 of 127.0.0.1
            "http://224.0.0.1/hook",
            "http://255.255.255.255/hook",
            "ftp://93.184.216.34/hook",
        ] {
            assert!(refused(url), "{url} was allowed");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_url_check() {
        for url in [
            "https://93.184.216.34/hook",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
            "https://[64:ff9b::5db8:d822]/hook", // NAT64 of a public address
            "https://dip.example.com/hook",      // checked at resolution
        ] {
            assert!(!refused(url), "{url} was refused");
        }
    }

    #[test]
    fn allow_listed_ranges_are_permitted() {
        let d = Destinations::allowing(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert!(d.permits("127.0.0.1".parse().unwrap()));
        assert!(d.permits("::1".parse().unwrap()));
        assert!(!d.permits("10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn names_resolving_to_internal_addresses_are_refused() {
        use reqwest::dns::Resolve;
        let resolver = GuardedResolver::new(Arc::new(Destinations::public()));
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        let err = resolver.resolve(name).await.err().expect("refused");
        assert!(err.to_string().contains("destination refused"), "{err}");
        let allowing = GuardedResolver::new(Arc::new(Destinations::allowing(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])));
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        assert!(allowing.resolve(name).await.is_ok());
    }
}
