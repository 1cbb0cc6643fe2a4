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
  memory = "16GiB"
}

vm "pg-1" {
  min_vcpus   = 1
  max_vcpus   = 2
  unit_vcpus  = 0.25
  min_memory  = "1GiB"
  max_memory  = "4GiB"
  unit_memory = "256MiB"
  image       = "../postgres"
}
