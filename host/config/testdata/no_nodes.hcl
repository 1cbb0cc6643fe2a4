# Also: unknown top-level items, and a reference where a literal is expected.
state_dir = var.dir

plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "p" {
  kind = "placement"
  path = "p"
}

nodes "node-a" {
  vcpus  = 8
  memory = "16GiB"
}

stat_dir = "x"
