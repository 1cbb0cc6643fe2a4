# The network plugin's config for `make test`'s conformance run: namespaces,
# subnets and a VNI of its own, so it never meets `make run`'s fleet (prefix
# "vertigo-", 10.77.0.0/24, VNI 77). The suite deletes the namespaces named
# "vtconf-*" when it is done. Paths are relative to this file.
mode             = "namespaces"
state_dir        = "../../build/conformance/net"
netns_prefix     = "vtconf-"
client_namespace = "client"
subnet           = "10.78.0.0/24"
underlay_subnet  = "10.253.0.0/24"
vni              = 78
