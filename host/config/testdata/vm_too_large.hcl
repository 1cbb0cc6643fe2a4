plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "p" {
  kind = "placement"
  path = "p"
}

node "small" {
  vcpus  = 2
  memory = "4GiB"
}

node "big" {
  vcpus  = 16
  memory = "8GiB"
}

# Fits neither: too many vCPUs for "small", too much memory for "big".
vm "pg-1" {
  min_vcpus   = 4
  max_vcpus   = 8
  unit_vcpus  = 1
  min_memory  = "10GiB"
  max_memory  = "12GiB"
  unit_memory = "1GiB"
}

# Fits "big" but is pinned to "small".
vm "pg-2" {
  node        = "small"
  min_vcpus   = 4
  max_vcpus   = 8
  unit_vcpus  = 1
  min_memory  = "1GiB"
  max_memory  = "2GiB"
  unit_memory = "1GiB"
}
