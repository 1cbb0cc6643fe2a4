plugin "vertigo-scaler" {
  kind = "scaler"
  path = "bin/vertigo-scaler"
}

node "node-a" {
  vcpus  = 8
  memory = "16GiB"
}
