//! Looking up a socket's local address in /proc, for listen events whose bind the kernel side
//! did not see (bound before the agent started) or that bound port 0 (an ephemeral port).

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use profiles::{Endpoint, Family, Protocol};

/// The inode of the socket open as `fd` in process `pid`.
pub fn socket_inode(proc_root: &Path, pid: u32, fd: i32) -> Option<u64> {
    let link = fs::read_link(
        proc_root
            .join(pid.to_string())
            .join("fd")
            .join(fd.to_string()),
    )
    .ok()?;
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Parses `ADDR:PORT` of /proc/net/tcp: the address is printed as 32-bit words (one for IPv4,
/// four for IPv6), each the in-memory network-order bytes read as a native integer.
pub fn parse_hex_endpoint(s: &str) -> Option<(String, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if addr.len() % 8 != 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(16);
    for i in 0..addr.len() / 8 {
        let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
        bytes.extend_from_slice(&w.to_ne_bytes());
    }
    match bytes.len() {
        4 => Some((
            Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
            port,
        )),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&bytes);
            Some((Ipv6Addr::from(a).to_string(), port))
        }
        _ => None,
    }
}

/// Finds the socket with `inode` in a /proc/net/{tcp,udp}{,6} table text.
pub fn find_in_table(table: &str, inode: u64) -> Option<(String, u16)> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(9)?.parse::<u64>().ok()? == inode).then_some(())?;
        parse_hex_endpoint(f.get(1)?)
    })
}

/// The local endpoint of socket `fd` of `pid`, from /proc (TCP and UDP, IPv4 and IPv6).
pub fn local_endpoint(proc_root: &Path, pid: u32, fd: i32) -> Option<Endpoint> {
    let inode = socket_inode(proc_root, pid, fd)?;
    let net = proc_root.join(pid.to_string()).join("net");
    for (file, family, protocol) in [
        ("tcp", Family::Inet, Protocol::Tcp),
        ("tcp6", Family::Inet6, Protocol::Tcp),
        ("udp", Family::Inet, Protocol::Udp),
        ("udp6", Family::Inet6, Protocol::Udp),
    ] {
        let Ok(table) = fs::read_to_string(net.join(file)) else {
            continue;
        };
        if let Some((addr, port)) = find_in_table(&table, inode) {
            return Some(Endpoint {
                family,
                protocol,
                addr,
                port,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn parses_proc_net_addresses() {
        let lo = u32::from_ne_bytes([127, 0, 0, 1]);
        assert_eq!(
            parse_hex_endpoint(&format!("{lo:08X}:1F90")),
            Some(("127.0.0.1".into(), 8080))
        );
        let one = u32::from_ne_bytes([0, 0, 0, 1]);
        assert_eq!(
            parse_hex_endpoint(&format!("{:08X}{:08X}{:08X}{one:08X}:0050", 0, 0, 0)),
            Some(("::1".into(), 80))
        );
        assert_eq!(parse_hex_endpoint("zz:1"), None);
        assert_eq!(parse_hex_endpoint("0100007F"), None);
    }

    #[test]
    fn finds_this_process_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        use std::os::fd::AsRawFd;
        let ep = local_endpoint(Path::new("/proc"), std::process::id(), l.as_raw_fd())
            .expect("found in /proc");
        assert_eq!(
            ep,
            Endpoint {
                family: Family::Inet,
                protocol: Protocol::Tcp,
                addr: "127.0.0.1".into(),
                port
            }
        );
        assert_eq!(
            local_endpoint(Path::new("/proc"), std::process::id(), 9999),
            None
        );
    }
}
