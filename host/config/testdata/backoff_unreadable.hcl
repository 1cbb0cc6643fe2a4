# restart_backoff_max does not read, so it is not compared with the minimum.
loop {
  restart_backoff_min = "1m"
  restart_backoff_max = "soon"
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
