loop {
  interval            = "5 seconds"
  call_timeout        = 2
  consent_timeout     = "-1s"
  migration_downtime  = "0s"
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
