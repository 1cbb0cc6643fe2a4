plugin "s" {
  kind = "scaler"
  path = "s"

node "node-a" {
  vcpus = 8
  memory = "16GiB"
}
