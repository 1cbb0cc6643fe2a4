// Command vertigo-scaler is Vertigo's scaler plugin: each VM's metrics,
// bounds and current size in, a goal size and the reason out. The algorithm
// lives in package policy; this binary serves it over the plugin protocol.
package main

import "github.com/vertigo-autoscaler/vertigo/sdk"

func main() {
	sdk.Serve(newPlugin())
}
