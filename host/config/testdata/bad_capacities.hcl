plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "p" {
  kind = "placement"
  path = "p"
}

node "zero" {
  vcpus     = 0
  memory    = "0GiB"
  watermark = 0
}

node "negative" {
  vcpus     = -2
  memory    = "8GiB"
  watermark = 1.5
}

node "fraction" {
  vcpus  = 1.0005
  memory = "8GiB"
}

node "typed" {
  vcpus  = "eight"
  memory = true
}
