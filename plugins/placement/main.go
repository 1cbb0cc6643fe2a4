// Command vertigo-placement is Vertigo's placement policy as a plugin: it
// keeps the fleet's accounting, grants growth, places new VMs and plans
// migrations off nodes above their watermark. See README.md.
package main

import "github.com/vertigo-autoscaler/vertigo/sdk"

func main() {
	sdk.Serve(newPlugin(sdk.Logger(pluginName)))
}
