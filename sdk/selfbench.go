package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/vertigo-autoscaler/vertigo/sdk/proto/vertigov1"
)

// SelfBenchEnv, set to a number of calls N, makes Serve time the plugin's
// own Decide in-process instead of serving: it reads one binary
// DecideRequest from stdin, calls Decide N times, writes {"ns":[...]} to
// stdout and exits. `vertigo bench plugin-call` uses it as the in-process
// baseline of the very same binary and request it then calls through
// go-plugin, without the host ever importing a plugin's code.
const SelfBenchEnv = "VERTIGO_SELF_BENCH"

func selfBench(impl Base, n string) error {
	calls, err := strconv.Atoi(n)
	if err != nil || calls <= 0 {
		return fmt.Errorf("%s=%q: want a positive number of calls", SelfBenchEnv, n)
	}
	s, ok := impl.(pb.ScalerServer)
	if !ok {
		return fmt.Errorf("%s: plugin %q is not a scaler", SelfBenchEnv, impl.Info().Name)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	req := &pb.DecideRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		return fmt.Errorf("%s: decoding the request on stdin: %w", SelfBenchEnv, err)
	}
	ctx := context.Background()
	ns := make([]int64, calls)
	for i := range ns {
		start := time.Now()
		if _, err := s.Decide(ctx, req); err != nil {
			return fmt.Errorf("%s: Decide: %w", SelfBenchEnv, err)
		}
		ns[i] = time.Since(start).Nanoseconds()
	}
	return json.NewEncoder(os.Stdout).Encode(map[string][]int64{"ns": ns})
}
