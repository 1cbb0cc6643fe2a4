plugin "s" {
  kind   = "scaler"
  path   = "s"
  sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4"
}

plugin "p" {
  kind   = "placement"
  path   = "p"
  sha256 = "zzb0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}

node "node-a" {
  vcpus  = 8
  memory = "16GiB"
}
