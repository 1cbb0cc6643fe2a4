# Every block and attribute the file accepts.
state_dir = "/var/lib/vertigo"

api {
  address    = "[::1]:7400"
  token_file = "secrets/token"
}

loop {
  interval            = "10s"
  metrics_window      = "2m"
  health_interval     = "1s"
  call_timeout        = "3s"
  consent_timeout     = "4s"
  restart_backoff_min = "100ms"
  restart_backoff_max = "1m"
  migration_bandwidth = "512MiB"
  migration_downtime  = "50ms"
}

plugin "vertigo-scaler" {
  kind   = "scaler"
  path   = "bin/vertigo-scaler"
  args   = ["-v", "--mode=x"]
  sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
  config {
    mode = "default"
  }
}

plugin "vertigo-placement" {
  kind = "placement"
  path = "/opt/vertigo/placement"
}

plugin "qemu" {
  kind = "hypervisor"
  path = "bin/hv"
}

plugin "bridge" {
  kind = "network"
  path = "bin/net"
}

node "node-a" {
  vcpus  = 8
  memory = "16GiB"
}

node "node-b" {
  vcpus     = 2.5
  memory    = 4294967296
  watermark = 1
}

vm "pg-1" {
  node        = "node-a"
  min_vcpus   = 0.5
  max_vcpus   = 4
  unit_vcpus  = 0.25
  min_memory  = "1GiB"
  max_memory  = "8GiB"
  unit_memory = "512MiB"
  vcpus       = 1.3
  memory      = "2GiB"
}

vm "pg-2" {
  min_vcpus   = 1
  max_vcpus   = 2
  unit_vcpus  = 0.5
  min_memory  = "1.5GiB"
  max_memory  = "4GiB"
  unit_memory = "256MiB"
}
