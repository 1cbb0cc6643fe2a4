// Command vertigo-bridge is Vertigo's network plugin: a Linux bridge per
// node, a tap per VM with a stable MAC and address, and a VXLAN overlay
// between the nodes, so a VM keeps its address across migrations. See
// README.md.
package main

import "github.com/vertigo-autoscaler/vertigo/sdk"

func main() {
	sdk.Serve(newPlugin(sdk.Logger(pluginName)))
}
