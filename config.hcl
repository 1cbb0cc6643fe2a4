# Vertigo's default configuration: one machine running a small fleet of two
# logical nodes and two Postgres VMs. `make run` starts the host with it.
#
# Relative paths are resolved against this file's directory. Sizes are
# written "512MiB", "4GiB" (or a number of bytes); vCPUs are numbers and may
# be fractional (0.25 = a quarter of a vCPU); durations are "250ms", "5s",
# "1m". Run `vertigo run -config config.hcl` after editing: every mistake is
# reported with its file:line,column.

# Where the host keeps the fleet's state (VMs, decisions, the API token).
state_dir = "state"

# The local API the CLI talks to. It only ever listens on loopback.
# api {
#   address    = "127.0.0.1:7311"
#   token_file = "state/api-token"
# }

# The control loop. Only `interval` is set here; the rest shows the defaults.
loop {
  interval = "5s" # how often every VM's metrics are judged
  # metrics_window      = "1m"    # how much history the scaler sees
  # health_interval     = "2s"    # how often plugins are health-checked
  # call_timeout        = "2s"    # the longest any plugin call may take
  # consent_timeout     = "5s"    # how long a guest has to accept a downscale
  # restart_backoff_min = "200ms" # first wait before restarting a crashed plugin
  # restart_backoff_max = "30s"   # longest wait between restarts
  # migration_bandwidth = "1GiB"  # bytes per second a live migration may use
  # migration_downtime  = "300ms" # the pause a live migration may cause
}

# Plugins. Each is a separate binary (`make build` puts these in bin/); the
# label is the name the binary must report, so a wrong binary is refused.
# Add `sha256 = "..."` (the output of sha256sum) to pin a binary.

# The scaler decides each VM's goal size from its metrics.
plugin "vertigo-scaler" {
  kind = "scaler"
  path = "bin/vertigo-scaler"
  config {
    mode = "default"
  }
}

# Placement keeps every node below its watermark: it grants growth that
# fits, and chooses where VMs go.
plugin "vertigo-placement" {
  kind = "placement"
  path = "bin/vertigo-placement"
}

# The hypervisor runs the VMs: QEMU (under TCG on this machine), booting the
# guest images `make guest` and `make guest-pg` build: a VM's `image` names
# build/guest-NAME/ (no image: the small guest below). The QEMU processes outlive the host: stop
# the host and start it again, and it finds them running.
plugin "vertigo-qemu" {
  kind = "hypervisor"
  path = "bin/vertigo-qemu"
  config {
    run_dir    = "state/qemu"
    kernel     = "build/guest/vmlinux"
    initrd     = "build/guest/initramfs.cpio.gz"
    images_dir = "build"
  }
}

# The network: each node is a network namespace on this machine with a
# bridge, the nodes are joined by VXLAN over veth links, and each VM has a
# tap on its node's bridge and an address from `subnet` that it keeps for
# life, across migrations. Clients reach the VMs from the namespace
# vertigo-client: `ip netns exec vertigo-client psql -h <address> ...`.
plugin "vertigo-bridge" {
  kind = "network"
  path = "bin/vertigo-bridge"
  config {
    state_dir        = "state/net"
    netns_prefix     = "vertigo-"
    client_namespace = "client"
    subnet           = "10.77.0.0/24"
  }
}

# Nodes: the capacity VMs are placed on. Placement fills a node up to its
# watermark, the fraction of its capacity it may use (default 0.9).
node "node-a" {
  vcpus     = 4
  memory    = "8GiB"
  watermark = 0.9
}

node "node-b" {
  vcpus     = 4
  memory    = "8GiB"
  watermark = 0.9
}

# VMs. The scaler keeps each between its min and max, in steps of its unit.
# Both run PostgreSQL 15 (user, password and database "vertigo"); reach one
# from the client namespace, e.g.
#   ip netns exec vertigo-client pgbench -h ADDRESS -U vertigo -i vertigo
# with ADDRESS from `bin/vertigo status`.
# A VM starts at its minimum unless `vcpus` and `memory` say otherwise, and
# placement picks its node unless `node` names one.
vm "pg-1" {
  image       = "postgres"
  min_vcpus   = 1
  max_vcpus   = 4
  unit_vcpus  = 0.5
  min_memory  = "512MiB"
  max_memory  = "2GiB"
  unit_memory = "128MiB"
}

vm "pg-2" {
  image       = "postgres"
  min_vcpus   = 1
  max_vcpus   = 4
  unit_vcpus  = 0.5
  min_memory  = "512MiB"
  max_memory  = "2GiB"
  unit_memory = "128MiB"
}
