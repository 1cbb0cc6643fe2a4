plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "s" {
  kind = "placement"
  path = "p"
}

node "node-a" {
  vcpus  = 8
  memory = "16GiB"
}

node "node-a" {
  vcpus  = 4
  memory = "8GiB"
}

vm "pg-1" {
  min_vcpus   = 1
  max_vcpus   = 2
  unit_vcpus  = 1
  min_memory  = "1GiB"
  max_memory  = "2GiB"
  unit_memory = "1GiB"
}

vm "pg-1" {
  min_vcpus   = 1
  max_vcpus   = 2
  unit_vcpus  = 1
  min_memory  = "1GiB"
  max_memory  = "2GiB"
  unit_memory = "1GiB"
}

vm "../etc" {
  min_vcpus   = 1
  max_vcpus   = 2
  unit_vcpus  = 1
  min_memory  = "1GiB"
  max_memory  = "2GiB"
  unit_memory = "1GiB"
}
