plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "p" {
  kind = "placement"
  path = "p"
}

node "node-a" {
  vcpus  = 8
  memory = "16 gigs"
}

vm "pg-1" {
  min_vcpus   = 1
  max_vcpus   = 2
  unit_vcpus  = 1
  min_memory  = "1GiB"
  max_memory  = -5
  unit_memory = 0
  memory      = "1.5B"
}
