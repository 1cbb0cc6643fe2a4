# The smallest valid file: everything optional is left to its default.
plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "p" {
  kind = "placement"
  path = "p"
}

node "n" {
  vcpus  = 1
  memory = "1GiB"
}
