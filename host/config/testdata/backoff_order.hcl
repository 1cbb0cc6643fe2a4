loop {
  restart_backoff_min = "1m"
}

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
