"""Network namespaces as stand-in hosts for black-box tests.

Owns creating "hosts" (one network namespace each, joined to the machine by a
veth pair with a /30 of its own in 10.200.0.0/16) and always removing them
again. Names carry the test process's pid, so parallel runs never collide,
and a leftover of a crashed run that had the same pid is removed first.

Creating them needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN (`ip netns exec`
mounts a fresh /sys). Where the machine refuses, `NetnsHosts.create` raises
`NetnsUnavailable` with the reason and leaves nothing behind, so the caller
can fall back to something weaker and say so."""
import ipaddress
import os
import shutil
import subprocess

SUPERNET = ipaddress.ip_network("10.200.0.0/16")


class NetnsUnavailable(Exception):
    """The machine does not let us create or enter network namespaces."""


def ip(*args, netns=None, check=True):
    """Runs `ip [-n NETNS] ARGS...`; raises NetnsUnavailable with ip's own
    message when check is set and it fails."""
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if check and proc.returncode != 0:
        raise NetnsUnavailable(f"`{' '.join(cmd)}`: {proc.stderr.strip() or proc.returncode}")
    return proc


class Host:
    """One namespace: `addr` is its own address, `gateway` the machine's end
    of the veth pair (where servers for it must listen)."""

    def __init__(self, label, netns, veth_out, veth_in, net):
        self.label, self.netns, self.veth_out, self.veth_in = label, netns, veth_out, veth_in
        hosts = list(net.hosts())
        self.gateway, self.addr = str(hosts[0]), str(hosts[1])

    def exec_prefix(self):
        """Prefix for a command to run inside the namespace. `ip netns exec`
        execs the command itself (no fork), so the pid Popen reports is the
        command's."""
        return ["ip", "netns", "exec", self.netns]


def _used_networks():
    out = ip("-4", "-o", "addr", "show", check=False).stdout
    nets = []
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            nets.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    return nets


def _free_subnets(count):
    """count /30s of SUPERNET that no local address overlaps, starting at a
    pid-derived index so that concurrent runs pick different ones."""
    used = _used_networks()
    slots = SUPERNET.num_addresses // 4
    start = (os.getpid() * count) % slots
    found = []
    for i in range(slots):
        net = ipaddress.ip_network(
            (int(SUPERNET.network_address) + ((start + i) % slots) * 4, 30))
        if not any(net.overlaps(u) for u in used):
            found.append(net)
            if len(found) == count:
                return found
    raise NetnsUnavailable(f"no free /30 left in {SUPERNET}")


class NetnsHosts:
    """A set of namespace hosts; `create()` builds them, `close()` removes
    everything it made (safe to call after a partial create, and twice)."""

    def __init__(self, labels):
        self.labels = list(labels)
        self.hosts = []
        self._made = []  # (netns, veth_out) in creation order

    def create(self):
        if os.environ.get("ENMS_TEST_NO_NETNS"):
            raise NetnsUnavailable("ENMS_TEST_NO_NETNS is set")
        if shutil.which("ip") is None:
            raise NetnsUnavailable("the ip command (iproute2) is not installed")
        if os.geteuid() != 0:
            raise NetnsUnavailable("not running as root")
        pid = os.getpid()
        try:
            nets = _free_subnets(len(self.labels))
            for label, net in zip(self.labels, nets):
                netns = f"enms-{label}-{pid}"
                # Interface names are at most 15 bytes: "enms" + label + pid + o/i.
                veth_out, veth_in = f"enms{label}{pid}o", f"enms{label}{pid}i"
                if len(veth_out) > 15:
                    raise NetnsUnavailable(f"interface name {veth_out} is too long")
                ip("netns", "del", netns, check=False)  # a crashed run with our pid
                ip("link", "del", veth_out, check=False)
                ip("netns", "add", netns)
                self._made.append((netns, veth_out))
                host = Host(label, netns, veth_out, veth_in, net)
                ip("link", "add", veth_out, "type", "veth", "peer", "name", veth_in)
                ip("link", "set", veth_in, "netns", netns)
                ip("addr", "add", f"{host.gateway}/30", "dev", veth_out)
                ip("link", "set", veth_out, "up")
                ip("addr", "add", f"{host.addr}/30", "dev", veth_in, netns=netns)
                ip("link", "set", veth_in, "up", netns=netns)
                ip("link", "set", "lo", "up", netns=netns)
                # Entering needs more than creating (a private /sys mount):
                # prove it works before anyone relies on it.
                probe = subprocess.run([*host.exec_prefix(), "true"], capture_output=True,
                                       text=True, timeout=20)
                if probe.returncode != 0:
                    raise NetnsUnavailable(f"`ip netns exec {netns} true`: "
                                           f"{probe.stderr.strip() or probe.returncode}")
                self.hosts.append(host)
        except BaseException:
            self.close()
            raise
        return self.hosts

    def close(self):
        """Deletes every namespace and veth this object made. Deleting the
        namespace takes its end of the veth pair and with it the pair; the
        explicit link delete covers a namespace that was still busy."""
        errors = []
        while self._made:
            netns, veth_out = self._made.pop()
            ip("netns", "del", netns, check=False)
            ip("link", "del", veth_out, check=False)
            if netns in ip("netns", "list", check=False).stdout.split():
                errors.append(netns)
        self.hosts = []
        if errors:
            raise AssertionError(f"network namespaces left behind: {errors}")
