//! Test hosts with real network faults: each node in its own network namespace, wired by a
//! veth pair to a bridge the test creates, on an address of the test's own subnet
//! (198.18.K.0/24, the range RFC 2544 sets aside for such tests; K is picked free per test).
//! The test process stays in the root namespace with 198.18.K.1 on the bridge, so it reaches
//! every node as a client does, and daemons are entered with `nsenter --net` only (their
//! mounts stay visible to the test).
//!
//! Faults are `iptables` rules in a host's own namespace (the kernels here have no `tc`
//! netem or drop actions), so they cut peer traffic between hosts while the test (the
//! clients) still reaches every host:
//! - [`Net::cut`]: host A's packets to host B are dropped (one way);
//! - [`Net::partition`] / [`Net::isolate`]: both ways, between groups;
//! - [`Net::loss`]: random loss of a host's packets to other hosts;
//! - [`Net::heal`]: every rule removed.
//!
//! Everything made is removed on drop (namespaces take their veth ends with them, then the
//! bridge), also when the test panics. Tests that need this call [`Net::available`] first and
//! skip with a visible line where the machine lacks root, `ip`, `iptables` or `nsenter`.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

/// The test hosts of one test.
#[derive(Debug)]
pub struct Net {
    subnet: u8,
    hosts: Vec<usize>,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    run(args).unwrap_or_else(|e| panic!("netns: {e}"));
}

impl Net {
    /// Whether this machine can make test hosts; prints a SKIP line for `test` if not.
    pub fn available(test: &str) -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let tools = ["ip", "iptables", "nsenter"]
            .iter()
            .all(|t| Command::new(t).arg("-V").output().is_ok());
        if !(root && tools) {
            println!("SKIP {test}: needs root with ip, iptables and nsenter (network namespaces)");
            return false;
        }
        true
    }

    /// Makes hosts `1..=n` on a fresh subnet.
    pub fn new(n: usize) -> Net {
        // Pick a subnet whose bridge does not exist yet: creating the bridge claims it.
        let start = (std::process::id() % 200) as u8;
        let subnet = (0..200u8)
            .map(|i| 20 + (start.wrapping_add(i) % 200))
            .find(|k| {
                run(&[
                    "ip",
                    "link",
                    "add",
                    &Self::bridge_name(*k),
                    "type",
                    "bridge",
                ])
                .is_ok()
            })
            .expect("netns: no free test subnet");
        let net = Net {
            subnet,
            hosts: (1..=n).collect(),
        };
        let bridge = Self::bridge_name(subnet);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("198.18.{subnet}.1/24"),
            "dev",
            &bridge,
        ]);
        must(&["ip", "link", "set", &bridge, "up"]);
        for &h in &net.hosts {
            let ns = net.ns_name(h);
            let _ = run(&["ip", "netns", "del", &ns]); // left by a killed run
            must(&["ip", "netns", "add", &ns]);
            let veth = format!("qfs{subnet}v{h}");
            must(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            must(&["ip", "link", "set", &veth, "master", &bridge]);
            must(&["ip", "link", "set", &veth, "up"]);
            net.in_ns(h, &["ip", "link", "set", "lo", "up"]);
            net.in_ns(
                h,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", net.ip(h)),
                    "dev",
                    "eth0",
                ],
            );
            net.in_ns(h, &["ip", "link", "set", "eth0", "up"]);
        }
        net
    }

    fn bridge_name(subnet: u8) -> String {
        format!("qfs{subnet}br")
    }

    fn ns_name(&self, host: usize) -> String {
        format!("qfs{}h{host}", self.subnet)
    }

    /// Host `host`'s address.
    pub fn ip(&self, host: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 10 + host as u8)
    }

    /// The file `nsenter --net=` takes for host `host`.
    pub fn ns_path(&self, host: usize) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.ns_name(host)))
    }

    /// `program args…` run inside host `host`'s network namespace (same process: `nsenter`
    /// execs it, so its PID is the program's).
    pub fn command(&self, host: usize, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns_path(host).display()))
            .arg("--")
            .arg(program);
        cmd
    }

    fn in_ns(&self, host: usize, args: &[&str]) {
        let path = format!("--net={}", self.ns_path(host).display());
        let mut full = vec!["nsenter", path.as_str(), "--"];
        full.extend_from_slice(args);
        must(&full);
    }

    /// Drops every packet host `from` sends to host `to` (one way).
    pub fn cut(&self, from: usize, to: usize) {
        let dst = self.ip(to).to_string();
        self.in_ns(
            from,
            &["iptables", "-A", "OUTPUT", "-d", &dst, "-j", "DROP"],
        );
    }

    /// Cuts every host of `a` from every host of `b`, both ways.
    pub fn partition(&self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.cut(x, y);
                self.cut(y, x);
            }
        }
    }

    /// Cuts `host` from every other host, both ways; the test still reaches it.
    pub fn isolate(&self, host: usize) {
        let others: Vec<usize> = self.hosts.iter().copied().filter(|h| *h != host).collect();
        self.partition(&[host], &others);
    }

    /// Drops each packet host `host` sends to another host with probability `p` (0..1).
    /// (Added delay needs `tc netem`, which the kernels here do not have.)
    pub fn loss(&self, host: usize, p: f64) {
        let net = format!("198.18.{}.0/24", self.subnet);
        let test = format!("198.18.{}.1", self.subnet);
        let p = format!("{p}");
        self.in_ns(
            host,
            &[
                "iptables",
                "-A",
                "OUTPUT",
                "-d",
                &net,
                "!",
                "-d",
                &test,
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                &p,
                "-j",
                "DROP",
            ],
        );
    }

    /// Removes every fault.
    pub fn heal(&self) {
        for &h in &self.hosts {
            self.in_ns(h, &["iptables", "-F", "OUTPUT"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for &h in &self.hosts {
            let _ = run(&["ip", "netns", "del", &self.ns_name(h)]);
        }
        let _ = run(&["ip", "link", "del", &Self::bridge_name(self.subnet)]);
    }
}
