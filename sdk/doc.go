// Package sdk is what a third party needs to write, serve and check a
// Vertigo plugin: the handshake, the Base contract every plugin serves, Serve
// for plugin authors, a typed client for hosts, and API-version negotiation.
//
// A plugin is one binary serving Base plus one kind's gRPC service
// (Scaler, Placement, Hypervisor or Network, in package vertigov1). Kind
// services use the generated server interfaces directly, so a plugin embeds
// vertigov1.Unimplemented<Kind>Server and stays source-compatible when the
// protocol grows.
//
// This module imports go-plugin, gRPC/protobuf, go-hclog and hcl/cty only;
// never the host, a plugin, Kubernetes or QEMU libraries.
package sdk
