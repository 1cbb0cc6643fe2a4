package sdk

import (
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// Every Vertigo process talks gRPC through this package, so it sets the
// buffer pool for all of them. gRPC's default pool serves any buffer over
// 32KiB from its 1MiB tier and clears all of it on every use; a Decide for
// 100 VMs is about 60KiB, and a replay sends tens of thousands. A tier at
// every power of two clears at most twice what a message needs. It must be
// set before any connection, hence init.
func init() {
	pool, err := mem.NewBinaryTieredBufferPool(8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
	if err != nil {
		panic(err)
	}
	experimental.SetDefaultBufferPool(pool)
}
