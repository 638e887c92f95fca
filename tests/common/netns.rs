//! A LAN of network namespaces made by the test itself: each host a namespace with its own
//! address on one bridge (in a namespace of its own), deleted on drop. Only namespaces this
//! process created are touched; their names carry its PID.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Lan {
    tag: String,
    switch: String,
    pub hosts: Vec<Host>,
}

pub struct Host {
    pub namespace: String,
    /// 10.77.0.K/24 for host K, when the LAN has IPv4.
    pub v4: Option<Ipv4Addr>,
    /// fd77::K/64.
    pub v6: Ipv6Addr,
}

impl Host {
    /// `program args...` run inside this host.
    pub fn command<'a>(&'a self, program: &'a str) -> Vec<&'a str> {
        vec!["netns", "exec", &self.namespace, program]
    }

    /// Shapes what this host sends with the kernel's token bucket (`tc ... tbf`), e.g.
    /// "8mbit".
    pub fn shape(&self, rate: &str) -> Result<(), String> {
        let ns = &self.namespace;
        tc(&[
            "-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate,
        ])
    }

    /// Bytes this host has sent through its shaped link (`tc -s qdisc`).
    pub fn shaped_bytes(&self) -> u64 {
        let out = Command::new("tc")
            .args(["-n", &self.namespace, "-s", "qdisc", "show", "dev", "eth0"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.split_whitespace()
            .skip_while(|w| *w != "Sent")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

fn tc(args: &[&str]) -> Result<(), String> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["burst", "32kbit", "latency", "50ms"]);
    run("tc", &all)
}

impl Lan {
    /// `hosts` namespaces on one bridge, with IPv6 addresses and, if `ipv4`, IPv4 ones too;
    /// an error (with what failed) where namespaces cannot be made, for a caller to report.
    pub fn try_new(hosts: usize, ipv4: bool) -> Result<Lan, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "btv{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("{tag}-sw");
        ip(&["netns", "add", &switch])?;
        let mut lan = Lan {
            tag: tag.clone(),
            switch,
            hosts: Vec::new(),
        };
        let sw = lan.switch.clone();
        // Snooping off: with no MLD/IGMP querier on this LAN the bridge floods groups.
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for k in 0..hosts {
            let host = Host {
                namespace: format!("{tag}-h{}", k + 1),
                v4: ipv4.then(|| Ipv4Addr::new(10, 77, 0, k as u8 + 1)),
                v6: Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, k as u16 + 1),
            };
            let ns = host.namespace.clone();
            ip(&["netns", "add", &ns])?;
            lan.hosts.push(host);
            let port = format!("p{k}");
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
            ])?;
            ip(&["link", "set", &port, "netns", &sw])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
            let v6 = format!("{}/64", lan.hosts[k].v6);
            ip(&["-n", &ns, "addr", "add", &v6, "dev", "eth0", "nodad"])?;
            if let Some(v4) = lan.hosts[k].v4 {
                ip(&["-n", &ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"])?;
            }
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lan)
    }
}

impl Lan {
    /// Host `{k}`'s namespace, as a `btvod experiment --host-cmd` template writes it.
    pub fn namespace_template(&self) -> String {
        format!("{}-h{{k}}", self.tag)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self
            .hosts
            .iter()
            .map(|h| &h.namespace)
            .chain([&self.switch])
        {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
