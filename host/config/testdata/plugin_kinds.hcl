plugin "s" {
  kind = "scaler"
  path = "s"
}

plugin "s2" {
  kind = "scaler"
  path = "s2"
}

plugin "p" {
  kind = "placement"
  path = "p"
}

plugin "h1" {
  kind = "hypervisor"
  path = "h1"
}

plugin "h2" {
  kind = "hypervisor"
  path = "h2"
}

plugin "x" {
  kind = "autoscaler"
  path = ""
  args = "-v"
}

plugin "y" {
  path = "y"
  config = { a = 1 }
}
