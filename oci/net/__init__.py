"""Container networking: bridges, veths, addresses, NAT, published ports, names.

One implementation behind three ways in (the `oci-net` commands, the OCI hook and the
CNI plugin), one concern per module:

* `links`     netlink work: bridge, veth pair, eth0 inside the netns
* `rtnl`      the rtnetlink socket: pyroute2's message classes without its asyncio IPRoute
* `ipam`      address allocation from a subnet, in a locked file store
* `nat`       masquerade, published ports and isolation in an nftables table of our own
* `networks`  named networks stored as JSON, validated by `network.schema.json`
* `hosts`     the managed /etc/hosts of each connected container
* `endpoint`  connect, disconnect, check and gc: the four verbs built from the above
* `cni`       the CNI protocol (ADD, DEL, CHECK, VERSION, STATUS, GC)
* `validation` our own JSON schemas (network, CNI configuration), remembered by digest

README.md beside this file documents the state directory, the schemas and the rules.
"""
