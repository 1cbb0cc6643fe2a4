package sdk

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// maxMessageBytes lifts gRPC's 4 MiB default: a placement snapshot or a
// replay of a large fleet is bigger than that.
const maxMessageBytes = 256 << 20

// A plugin's peer is a process on the same machine, so flow control only
// costs: a fixed 4 MiB window is never the limit, and turns off gRPC's
// bandwidth probing and most window-update frames. Buffers big enough for
// a tick's Decide (about 60 KiB for 100 VMs) move it in one write and one
// read instead of four of each.
const (
	windowBytes   = 4 << 20
	ioBufferBytes = 256 << 10
)

// Serve runs impl as a plugin: it speaks go-plugin's handshake on stdout, so
// the plugin must print nothing else there. Logs go to stderr as JSON and
// the host re-emits them under its own logger. Serve returns when the host
// is done with the plugin.
func Serve(impl Base) {
	info := impl.Info()
	logger := Logger(info.Name)
	// Fail before the handshake, where the host reports it clearly, rather
	// than inside GRPCServer.
	if err := Register(grpc.NewServer(), impl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if n := os.Getenv(SelfBenchEnv); n != "" {
		if err := selfBench(impl, n); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	go exitWithHost(logger, os.Getppid(), time.Second)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(impl),
		Logger:          logger,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes),
				grpc.InitialWindowSize(windowBytes), grpc.InitialConnWindowSize(windowBytes),
				grpc.WriteBufferSize(ioBufferBytes), grpc.ReadBufferSize(ioBufferBytes))
			return grpc.NewServer(opts...)
		},
	})
}

// exitWithHost ends the plugin when the host that started it is gone (its
// parent changed: it was re-parented). A plugin left behind by a host that
// was SIGKILLed would otherwise live on, holding what the next host's
// plugin needs, such as a VM's single QMP connection.
func exitWithHost(logger hclog.Logger, host int, every time.Duration) {
	for range time.Tick(every) {
		if os.Getppid() != host {
			logger.Warn("the host that started this plugin is gone; exiting", "host_pid", host)
			os.Exit(0)
		}
	}
}

// PluginSet is go-plugin's plugin set for impl (nil on the host side).
func PluginSet(impl Base) goplugin.PluginSet {
	return goplugin.PluginSet{pluginSetName: &grpcPlugin{impl: impl}}
}

// logOutput is the process's real stderr, taken before Serve: go-plugin
// then swaps os.Stderr for a pipe that it streams to the host as plain
// output, where hclog's JSON would not be parsed into levels and fields.
var logOutput = os.Stderr

// Logger returns a logger for plugin code whose lines the host re-emits
// under its own logger, with their levels and fields.
func Logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Trace, Output: logOutput, JSONFormat: true})
}
