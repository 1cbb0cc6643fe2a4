api {
  address = "localhost"
}

api {
  address = "127.0.0.1:7311"
}

loop {}
loop {}

plugin "s" {
  kind = "scaler"
  path = "s"
  config {}
  config {}
}

plugin "p" {
  kind = "placement"
  path = "p"
}

node "node-a" {
  vcpus  = 8
  memory = "16GiB"
}
